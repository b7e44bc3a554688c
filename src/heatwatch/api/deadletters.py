"""The admin side of the dead letters: read and trim the kernel's store, and replay letters to MQTT.

The store is :mod:`heatwatch.core.deadletters` (written by ingest). Replay republishes each message's
original bytes on its original topic (QoS 1) so the ingester decodes it again — typically after a
registry or decoder fix — and then deletes the replayed rows; a message that fails again is simply
dead-lettered anew. Publishing on sensor topics is beyond the api's own MQTT account: replay uses the
``replay`` account when the operator gives it one (``HEATWATCH_REPLAY_MQTT_*``). A letter kept truncated
(longer than the store keeps) is never replayed: its bytes are not all there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from heatwatch.core.deadletters import DeadLetter, DeadLetterStore
from heatwatch.core.logging import get_logger
from heatwatch.core.mqtt import make_client
from heatwatch.core.settings import MqttUrl

from .errors import ApiError

T = TypeVar("T")
log = get_logger("heatwatch.api.deadletters")


def with_store(path: Path, work: Callable[[DeadLetterStore], T], empty: T) -> T:
    """``work`` on the store, or ``empty`` when ingest has not created it yet; a 503 when it cannot be read."""
    try:
        store = DeadLetterStore(path, create=False)
    except FileNotFoundError:
        return empty
    except sqlite3.Error as exc:
        log.warning("deadletters.open_failed", path=str(path), error=str(exc))
        raise ApiError(503, "deadletters_unavailable", "cannot open the dead-letter store, retry later") from None
    try:
        return work(store)
    except sqlite3.Error as exc:
        log.warning("deadletters.read_failed", path=str(path), error=str(exc))
        raise ApiError(503, "deadletters_unavailable", "cannot read the dead-letter store, retry later") from None
    finally:
        store.close()


def republish(url: MqttUrl, letters: list[DeadLetter], timeout_s: float = 10.0) -> tuple[list[int], list[int]]:
    """Publish each letter at QoS 1 and wait for the broker's PUBACK: (ids it took, ids it refused).

    MQTT 5 brokers answer a publish their ACL forbids with a PUBACK carrying reason 0x87 (not authorised):
    such a letter was not replayed and must stay in the store.
    """
    client = make_client(url, client_id="")
    refused_mids: set[int] = set()
    acked_mids: set[int] = set()

    def on_publish(_c: object, _u: object, mid: int, reason: Any, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            refused_mids.add(mid)
        else:
            acked_mids.add(mid)

    client.on_publish = on_publish
    try:
        client.connect(url.host, url.port, keepalive=30)
    except OSError as exc:
        log.warning("replay.broker_unreachable", error=str(exc))
        raise ApiError(503, "broker_unavailable", "cannot reach the MQTT broker to replay, retry later") from None
    client.loop_start()
    done: list[int] = []
    refused: list[int] = []
    try:
        infos = [(letter.id, client.publish(letter.topic, letter.payload, qos=1)) for letter in letters]
        for lid, info in infos:
            info.wait_for_publish(timeout_s)
            if lid is None:
                continue
            if info.mid in refused_mids:
                refused.append(lid)
            elif info.is_published() and info.mid in acked_mids:
                done.append(lid)
    finally:
        client.disconnect()
        client.loop_stop()
    return done, refused
