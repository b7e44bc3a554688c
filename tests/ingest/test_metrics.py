"""The ingester's Prometheus /metrics: every family the runbook relies on, with counts that add up."""

from __future__ import annotations

import json
import time

from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import free_port
from support.faults import ResilientPublisher, scrape, wait_count
from support.streams import native_stream
from support.wait import wait_until


def test_metrics_count_received_stored_rejected_and_batches(ingest_env, influxd, mosquitto, db_name, tmp_path):
    port = free_port()
    ingest = ServiceProcess(["ingest"], {**ingest_env, "HEATWATCH_METRICS_PORT": str(port)},
                            tmp_path / "ingest.log").start(ready_marker="mqtt.subscribed")
    try:
        m = scrape(port)
        # Families exist before the first message, so dashboards and alerts have series from the start.
        for name in ("heatwatch_ingest_messages_received_total", "heatwatch_ingest_readings_stored_total",
                     "heatwatch_ingest_messages_acked_total", "heatwatch_ingest_spool_batches",
                     "heatwatch_ingest_spool_bytes", "heatwatch_ingest_spool_full", "heatwatch_ingest_inbox",
                     "heatwatch_ingest_write_seconds_count", "heatwatch_ingest_batch_readings_count",
                     "heatwatch_ingest_mqtt_connects_total"):
            assert name in m, name
        assert m["heatwatch_ingest_mqtt_connects_total"] == 1

        stream = native_stream(n_sensors=20, per_sensor=10)
        now = int(time.time() * 1000)
        bad = [
            ("heat/vitre/m-bad", b"{not json"),
            ("heat/vitre/m-bad", json.dumps({"ts": now, "temperature": 99}).encode()),
            ("heat/vitre/m-bad", json.dumps({"ts": now, "temperature": 20, "humidity": 150}).encode()),
        ]
        messages = [(t, p) for t, p, _ in stream] + bad
        assert ResilientPublisher(mosquitto.url, messages).run() == len(messages)
        assert wait_count(influxd.url, db_name, len(stream)) == len(stream)
        wait_until(lambda: scrape(port)["heatwatch_ingest_messages_acked_total"] == len(messages), 10, "all acked")

        m = scrape(port)
        assert m["heatwatch_ingest_messages_received_total"] == len(messages)
        assert m["heatwatch_ingest_readings_stored_total"] == len(stream)
        assert m['heatwatch_ingest_rejected_total{reason="invalid_json"}'] == 1
        assert m['heatwatch_ingest_rejected_total{reason="temperature_range"}'] == 1
        assert m['heatwatch_ingest_rejected_total{reason="humidity_range"}'] == 1
        assert m["heatwatch_ingest_spool_batches"] == 0 and m["heatwatch_ingest_spool_bytes"] == 0
        assert m["heatwatch_ingest_spool_full"] == 0
        assert m["heatwatch_ingest_inbox"] == 0
        assert m["heatwatch_ingest_write_seconds_count"] >= 1
        assert m["heatwatch_ingest_batch_readings_sum"] == len(stream)
        assert m["heatwatch_ingest_batch_readings_count"] >= 1
    finally:
        ingest.stop()
