"""Test-side MQTT publishing: QoS 1, waits for every PUBACK so "published" means the broker has it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

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
