"""The admin side of the dead letters: read and trim the kernel's store, and replay letters to MQTT.

The store is :mod:`heatwatch.core.deadletters` (written by ingest). Replay republishes each message's
original bytes on its original topic (QoS 1) so the ingester decodes it again — typically after a
registry or decoder fix — and then deletes the replayed rows; a message that fails again is simply
dead-lettered anew.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from heatwatch.core.deadletters import DeadLetter, DeadLetterStore
from heatwatch.core.mqtt import make_client
from heatwatch.core.settings import MqttUrl

from .errors import ApiError

T = TypeVar("T")


def with_store(path: Path, work: Callable[[DeadLetterStore], T], empty: T) -> T:
    """``work`` on the store, or ``empty`` when ingest has not created it yet; a 503 when it cannot be read."""
    try:
        store = DeadLetterStore(path, create=False)
    except FileNotFoundError:
        return empty
    except sqlite3.Error as exc:
        raise ApiError(503, "deadletters_unavailable", f"cannot open the dead-letter store: {exc}") from None
    try:
        return work(store)
    except sqlite3.Error as exc:
        raise ApiError(503, "deadletters_unavailable", f"cannot read the dead-letter store: {exc}") from None
    finally:
        store.close()


def republish(url: MqttUrl, letters: list[DeadLetter], timeout_s: float = 10.0) -> list[int]:
    """Publish each letter at QoS 1 and wait for the broker's PUBACK; the ids that made it."""
    client = make_client(url, client_id="")
    try:
        client.connect(url.host, url.port, keepalive=30)
    except OSError as exc:
        raise ApiError(503, "broker_unavailable", f"cannot reach the MQTT broker to replay: {exc}") from None
    client.loop_start()
    done: list[int] = []
    try:
        infos = [(letter.id, client.publish(letter.topic, letter.payload, qos=1)) for letter in letters]
        for lid, info in infos:
            info.wait_for_publish(timeout_s)
            if info.is_published() and lid is not None:
                done.append(lid)
    finally:
        client.disconnect()
        client.loop_stop()
    return done
