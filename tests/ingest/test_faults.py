"""Fault injection against the real broker and database (deploy/README.md, "Delivery per failure").

Every test ends with the same check: the set of keys (town, sensor, time) stored in InfluxDB is
exactly the set published, and the stored count equals the distinct published count, so nothing
was lost and nothing stored twice (InfluxDB keys a point by measurement + tags + time, so a
duplicate would only show as an extra key if it differed; the count check covers the rest).
The dead-letter store must hold nothing we did not deliberately provoke.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from heatwatch.core.deadletters import FILENAME as DEADLETTER_FILE
from heatwatch.core.deadletters import DeadLetterStore
from heatwatch.core.influx import InfluxClient
from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import Influxd, Mosquitto, free_port
from support.faults import (
    ResilientPublisher,
    deadletter_counts,
    ingester_env,
    scrape,
    wait_count,
)
from support.influx import count_readings, stored_keys
from support.streams import native_stream
from support.wait import wait_until

pytestmark = pytest.mark.slow

Stream = list[tuple[str, bytes, tuple]]


def _messages(stream: Stream) -> list[tuple[str, bytes]]:
    return [(t, p) for t, p, _ in stream]


def _assert_exactly_once(influx_url: str, db: str, stream: Stream) -> None:
    expected = sorted(k for _, _, k in stream)
    assert len(set(expected)) == len(expected)
    assert wait_count(influx_url, db, len(expected)) == len(expected)
    stored = sorted(stored_keys(influx_url, db))
    missing = set(expected) - set(stored)
    extra = set(stored) - set(expected)
    assert not missing and not extra, f"{len(missing)} lost, {len(extra)} unexpected"
    assert stored == expected  # same multiset: nothing twice


def _start(env: dict[str, str], log: Path, name: str = "ingest") -> ServiceProcess:
    return ServiceProcess(["ingest"], env, log, name=name).start(ready_marker="mqtt.subscribed")


def _spool_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "spool").glob("*.lp"))


def test_influxd_down_60s_mid_stream_is_absorbed_by_the_spool(mosquitto, db_name, tmp_path):
    influx = Influxd(tmp_path / "influxd").start()
    port = free_port()
    data = tmp_path / "var"
    ingest = _start(ingester_env(mosquitto.url, influx.url, db_name, data, f"faults-a-{db_name}",
                                 metrics_port=port), tmp_path / "ingest.log")
    try:
        # ~67 s of stream at 150 readings/s: it runs before, through and after the 60 s outage.
        stream = native_stream(n_sensors=100, per_sensor=100)
        pub = ResilientPublisher(mosquitto.url, _messages(stream), rate=150, timeout=150).start()
        wait_until(lambda: count_readings(influx.url, db_name) >= 200, 30, "first readings stored")
        influx.stop()
        outage_end = time.monotonic() + 60
        peak_depth = 0.0
        while time.monotonic() < outage_end:
            peak_depth = max(peak_depth, scrape(port)["heatwatch_ingest_spool_batches"])
            time.sleep(1)
        assert pub.acked < len(stream), "the stream ended before InfluxDB came back"
        # Batches kept being acknowledged to the broker during the outage: they were durable in the spool.
        m = scrape(port)
        assert peak_depth > 0 and m["heatwatch_ingest_spool_bytes"] > 0
        assert m["heatwatch_ingest_messages_acked_total"] > 1000
        assert "influx.write_failed_spooling" in ingest.log_text()
        influx.start()

        assert pub.join() == len(stream)
        _assert_exactly_once(influx.url, db_name, stream)
        wait_until(lambda: scrape(port)["heatwatch_ingest_spool_batches"] == 0, 30, "spool drained")
        m = scrape(port)
        assert m["heatwatch_ingest_spool_bytes"] == 0
        assert m["heatwatch_ingest_spool_full"] == 0
        assert _spool_files(data) == []
        assert "spool.drained" in ingest.log_text()
        assert deadletter_counts(data) == {}
    finally:
        ingest.stop()
        influx.stop()


def test_broker_restart_mid_stream(influxd, db_name, tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto").start()
    port = free_port()
    data = tmp_path / "var"
    ingest = _start(ingester_env(broker.url, influxd.url, db_name, data, f"faults-b-{db_name}",
                                 metrics_port=port), tmp_path / "ingest.log")
    try:
        stream = native_stream(n_sensors=200, per_sensor=100)
        pub = ResilientPublisher(broker.url, _messages(stream), rate=3000).start()
        wait_until(lambda: count_readings(influxd.url, db_name) >= len(stream) // 5, 30, "a fifth stored")
        # SIGTERM: mosquitto writes its persistence file on the way out, then comes back on the same port.
        broker.stop()
        assert pub.acked < len(stream), "the stream ended before the broker restart"
        time.sleep(1)
        broker.start()

        assert pub.join() == len(stream)
        assert pub.connections >= 2  # the publisher really had to reconnect
        _assert_exactly_once(influxd.url, db_name, stream)
        m = scrape(port)
        assert m["heatwatch_ingest_mqtt_connects_total"] >= 2
        assert deadletter_counts(data) == {}
    finally:
        ingest.stop()
        broker.stop()


def test_shared_subscription_member_sigkilled_mid_stream(influxd, db_name, tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto").start()
    ports = {"a": free_port(), "b": free_port()}
    ingesters = {
        name: _start(
            ingester_env(broker.url, influxd.url, db_name, tmp_path / f"var-{name}", f"faults-c-{name}-{db_name}",
                         metrics_port=ports[name], mqtt_shared_group="heatwatch"),
            tmp_path / f"ingest-{name}.log", name=f"ingest-{name}",
        )
        for name in ports
    }
    try:
        stream = native_stream(n_sensors=200, per_sensor=100)
        pub = ResilientPublisher(broker.url, _messages(stream), rate=3000).start()
        wait_until(lambda: count_readings(influxd.url, db_name) >= len(stream) // 4, 30, "a quarter stored")
        assert scrape(ports["b"])["heatwatch_ingest_messages_received_total"] > 0
        ingesters["b"].kill()
        a_at_kill = scrape(ports["a"])["heatwatch_ingest_messages_received_total"]
        assert pub.acked < len(stream), "the stream ended before the kill"
        assert pub.join() == len(stream)
        # The survivor kept ingesting its share after the kill...
        wait_until(lambda: scrape(ports["a"])["heatwatch_ingest_messages_received_total"] > a_at_kill, 30,
                   "survivor receiving")
        # ...while mosquitto keeps queueing the killed member's share in its persistent session (it does
        # not hand a disconnected member's messages to the others). Restarted, it gets them all.
        ingesters["b"].start(ready_marker="mqtt.subscribed")
        _assert_exactly_once(influxd.url, db_name, stream)
        for name in ports:
            assert deadletter_counts(tmp_path / f"var-{name}") == {}
    finally:
        for proc in ingesters.values():
            proc.stop()
        broker.stop()


def test_spool_full_holds_acks_until_influxdb_returns(mosquitto, db_name, tmp_path):
    influx = Influxd(tmp_path / "influxd").start()
    port = free_port()
    data = tmp_path / "var"
    ingest = _start(ingester_env(mosquitto.url, influx.url, db_name, data, f"faults-d-{db_name}",
                                 metrics_port=port, spool_max_bytes="20000", batch_size="100",
                                 batch_interval_s="0.1"), tmp_path / "ingest.log")
    try:
        stream = native_stream(n_sensors=100, per_sensor=40)
        head, tail = stream[:100], stream[100:]
        assert ResilientPublisher(mosquitto.url, _messages(head)).run() == len(head)
        assert wait_count(influx.url, db_name, len(head)) == len(head)
        influx.stop()

        # 3900 readings of ~90 bytes of line protocol: far more than the 20 kB spool.
        assert ResilientPublisher(mosquitto.url, _messages(tail)).run() == len(tail)
        ingest.wait_for("spool.full_holding_acks", timeout=30)
        wait_until(lambda: scrape(port)["heatwatch_ingest_spool_full"] == 1, 10, "spool_full gauge")
        time.sleep(1)
        m = scrape(port)
        assert m["heatwatch_ingest_spool_bytes"] <= 20000 + 100 * 120  # bounded (plus one batch)
        # The broker holds what was not acknowledged: the ingester took at most its Receive Maximum more.
        assert m["heatwatch_ingest_messages_acked_total"] < len(stream)
        assert m["heatwatch_ingest_messages_received_total"] < len(stream)

        influx.start()
        _assert_exactly_once(influx.url, db_name, stream)
        wait_until(lambda: scrape(port)["heatwatch_ingest_spool_batches"] == 0, 30, "spool drained")
        m = scrape(port)
        assert m["heatwatch_ingest_spool_full"] == 0
        assert m["heatwatch_ingest_messages_acked_total"] == len(stream)
        assert "spool.room_again" in ingest.log_text()
        assert deadletter_counts(data) == {}
    finally:
        ingest.stop()
        influx.stop()


def test_partial_400_good_lines_land_bad_line_dead_lettered(mosquitto, influxd, db_name, tmp_path):
    stream = native_stream(n_sensors=50, per_sensor=40)
    poison_ts = min(k[2] for _, _, k in stream) - 1000

    async def poison() -> None:
        # A float field that already exists as a string in the shard (schema drift, another writer):
        # InfluxDB then refuses that one line of a batch with a 400 "partial write: field type conflict".
        async with InfluxClient(influxd.url, db_name) as c:
            await c.setup()
            await c.write_lines([f'reading,town=vitre,sensor=legacy battery_v="low" {poison_ts}'])

    asyncio.run(poison())
    bad_ts = poison_ts + 1  # same shard as the poison point
    bad = ("heat/vitre/s-batt", json.dumps({"ts": bad_ts, "temperature": 20.5, "humidity": 50,
                                             "battery_v": 3.1}).encode())
    messages = _messages(stream)
    messages.insert(len(messages) // 2, bad)

    port = free_port()
    data = tmp_path / "var"
    ingest = _start(ingester_env(mosquitto.url, influxd.url, db_name, data, f"faults-e-{db_name}",
                                 metrics_port=port), tmp_path / "ingest.log")
    try:
        assert ResilientPublisher(mosquitto.url, messages).run() == len(messages)
        _assert_exactly_once(influxd.url, db_name, stream)
        wait_until(lambda: deadletter_counts(data) == {"influx_rejected": 1}, 10, "dead letter")
        m = scrape(port)
        assert m['heatwatch_ingest_rejected_total{reason="influx_rejected"}'] == 1
        assert m["heatwatch_ingest_messages_acked_total"] == len(messages)
        with DeadLetterStore(data / "deadletter" / DEADLETTER_FILE, create=False) as store:
            (payload, detail), = [(x.payload, x.detail) for x in store.list()]
        assert b"sensor=s-batt" in payload and f" {bad_ts}".encode() in payload
        assert "field type conflict" in detail
        r = httpx.post(f"{influxd.url}/query", data={
            "db": db_name, "q": "SELECT COUNT(\"temperature\") FROM \"raw\".\"reading\" WHERE \"sensor\" = 's-batt'"})
        assert "series" not in r.json()["results"][0]
    finally:
        ingest.stop()
