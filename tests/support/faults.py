"""Helpers for the fault and scale-out tests: a publisher that survives broker restarts, metric scraping,
dead-letter counts, and waiting for InfluxDB to hold a given number of readings."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from prometheus_client.parser import text_string_to_metric_families

from heatwatch.core.deadletters import FILENAME as DEADLETTER_FILE
from heatwatch.core.deadletters import DeadLetterStore
from heatwatch.core.mqtt import make_client
from heatwatch.core.settings import MqttUrl
from support.influx import count_readings
from support.wait import settled_count


class ResilientPublisher:
    """QoS 1 publisher that keeps going through broker restarts.

    Each connection is a fresh clean-start client. When it drops, every message sent on it but not
    PUBACKed goes back to the front of the queue and is published again on the next connection:
    legitimate at-least-once behaviour, which the ingester must absorb (points are idempotent).
    ``acked`` counts distinct messages the broker confirmed; ``republished`` how many went twice.
    """

    def __init__(self, url: str, messages: Sequence[tuple[str, bytes]], *, window: int = 500,
                 rate: float | None = None, timeout: float = 120.0) -> None:
        self.target = MqttUrl.parse(url)
        self.messages = messages
        self.window = window
        self.rate = rate  # messages/s, None = as fast as the broker acknowledges
        self.timeout = timeout
        self.acked = 0
        self.republished = 0
        self.connections = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run_guarded, name="resilient-publisher", daemon=True)

    # Public --------------------------------------------------------------------------------

    def start(self) -> ResilientPublisher:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> int:
        self._thread.join(timeout if timeout is not None else self.timeout + 10)
        if self._thread.is_alive():
            raise TimeoutError(f"publisher still running: {self.acked}/{len(self.messages)} acknowledged")
        if self.error is not None:
            raise self.error
        return self.acked

    def run(self) -> int:
        self._run()
        return self.acked

    # Internals ------------------------------------------------------------------------------

    def _run_guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def _run(self) -> None:
        todo: deque[int] = deque(range(len(self.messages)))
        done = bytearray(len(self.messages))
        deadline = time.monotonic() + self.timeout
        t0 = time.monotonic()
        sent_total = 0
        while todo and time.monotonic() < deadline:
            lock = threading.Lock()
            by_mid: dict[int, int] = {}
            early: set[int] = set()  # PUBACKs that beat publish() returning the mid
            slots = threading.Semaphore(self.window)
            lost = threading.Event()
            connected = threading.Event()

            def on_connect(_c: object, _u: object, _f: object, rc: object, _p: object,
                           connected: threading.Event = connected) -> None:
                if not getattr(rc, "is_failure", False):
                    connected.set()

            def on_publish(_c: object, _u: object, mid: int, _rc: object, _p: object, lock: threading.Lock = lock,
                           by_mid: dict[int, int] = by_mid, early: set[int] = early,
                           slots: threading.Semaphore = slots) -> None:
                with lock:
                    idx = by_mid.pop(mid, None)
                    if idx is None:
                        early.add(mid)
                    elif not done[idx]:
                        done[idx] = 1
                        self.acked += 1
                slots.release()

            def on_disconnect(*_a: object, lost: threading.Event = lost) -> None:
                lost.set()

            client = make_client(self.target, "")
            client.max_inflight_messages_set(self.window)
            client.max_queued_messages_set(0)
            client.on_connect = on_connect
            client.on_publish = on_publish
            client.on_disconnect = on_disconnect
            try:
                client.connect(self.target.host, self.target.port, keepalive=10)
            except OSError:
                time.sleep(0.2)  # broker down: try again
                continue
            self.connections += 1
            client.loop_start()
            try:
                if not connected.wait(5):
                    continue
                while todo and not lost.is_set():
                    if not slots.acquire(timeout=0.5):
                        continue
                    idx = todo.popleft()
                    if self.rate:
                        pause = t0 + sent_total / self.rate - time.monotonic()
                        if pause > 0:
                            time.sleep(pause)
                    topic, payload = self.messages[idx]
                    info = client.publish(topic, payload, qos=1)
                    sent_total += 1
                    if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
                        raise RuntimeError(f"publish failed: {info.rc}")
                    with lock:
                        if info.mid in early:
                            early.discard(info.mid)
                            if not done[idx]:
                                done[idx] = 1
                                self.acked += 1
                        else:
                            by_mid[info.mid] = idx
                # Wait for the last PUBACKs of this connection (or its loss).
                while by_mid and not lost.is_set() and time.monotonic() < deadline:
                    time.sleep(0.01)
            finally:
                client.loop_stop()  # no automatic reconnect: the next round builds a fresh client
                client.disconnect()
                with lock:
                    pending = sorted(i for i in by_mid.values() if not done[i])
                    by_mid.clear()
                if pending:
                    self.republished += len(pending)
                    todo.extendleft(reversed(pending))
        if todo:
            raise TimeoutError(f"{len(todo)} messages never acknowledged by the broker")


def scrape(port: int) -> dict[str, float]:
    """Prometheus samples of an ingester, ``name{label="v"}`` -> value."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def deadletter_counts(data_dir: Path) -> dict[str, int]:
    try:
        with DeadLetterStore(data_dir / "deadletter" / DEADLETTER_FILE, create=False) as store:
            return store.counts()
    except FileNotFoundError:
        return {}


def wait_count(influx_url: str, db: str, expected: int, timeout: float = 90) -> int:
    """Wait until ``expected`` readings are stored, then a little longer so a duplicate would show."""

    def count() -> int:
        try:
            return count_readings(influx_url, db)
        except httpx.HTTPError:  # influxd restarting in a fault test
            return 0

    return settled_count(count, expected, timeout)


def ingester_env(mqtt_url: str, influx_url: str, db: str, data_dir: Path, client_id: str, *,
                 metrics_port: int | None = None, **extra: str) -> dict[str, str]:
    """Environment of one test ingester; ``extra`` are more HEATWATCH_* settings (key without the prefix)."""
    env = {
        "HEATWATCH_MQTT_URL": mqtt_url,
        "HEATWATCH_INFLUX_URL": influx_url,
        "HEATWATCH_INFLUX_DB": db,
        "HEATWATCH_DATA_DIR": str(data_dir),
        "HEATWATCH_MQTT_CLIENT_ID": client_id,
        "HEATWATCH_BATCH_SIZE": "1000",
        "HEATWATCH_BATCH_INTERVAL_S": "0.2",
    }
    if metrics_port is not None:
        env["HEATWATCH_METRICS_PORT"] = str(metrics_port)
    env.update({f"HEATWATCH_{k.upper()}": v for k, v in extra.items()})
    return env
