"""Test-side MQTT publishing: QoS 1, waits for every PUBACK so "published" means the broker has it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from heatwatch.core.mqtt import make_client
from heatwatch.core.settings import MqttUrl


def publish_all(url: str, messages: Iterable[tuple[str, bytes]], *, qos: int = 1, window: int = 500) -> int:
    """Publish with at most ``window`` unacknowledged messages; return how many the broker acknowledged."""
    target = MqttUrl.parse(url)
    client = make_client(target, "")
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    slots = threading.Semaphore(window)
    acked = [0]

    def on_publish(_c: object, _u: object, _mid: int, _rc: object, _p: object) -> None:
        acked[0] += 1
        slots.release()

    client.on_publish = on_publish
    client.connect(target.host, target.port)
    client.loop_start()
    sent = 0
    try:
        for topic, payload in messages:
            if not slots.acquire(timeout=60):
                raise TimeoutError("broker stopped acknowledging publishes")
            client.publish(topic, payload, qos=qos)
            sent += 1
        deadline = time.monotonic() + 60
        while acked[0] < sent and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        client.disconnect()
        client.loop_stop()
    return acked[0]


@contextmanager
def subscribed(url: str, topic: str, *, qos: int = 1,
               decode: Callable[[bytes], Any] | None = None) -> Iterator[list[Any]]:
    """What arrives on ``topic`` while the block runs: the messages, or ``decode(payload)`` of each.

    The block starts only once the subscription is acknowledged, so nothing published in it is missed.
    """
    target = MqttUrl.parse(url)
    got: list[Any] = []
    ready = threading.Event()
    client = make_client(target, "")
    client.on_connect = lambda c, *_a: c.subscribe(topic, qos=qos)
    client.on_subscribe = lambda *_a: ready.set()
    client.on_message = lambda _c, _u, m: got.append(decode(m.payload) if decode else m)
    client.connect(target.host, target.port)
    client.loop_start()
    try:
        assert ready.wait(10), f"test subscriber not subscribed to {topic}"
        yield got
    finally:
        client.loop_stop()
        client.disconnect()
