"""``heatwatch ingest`` with HEATWATCH_LOG_JSON: every line is a JSON object, its events with their fields."""

from __future__ import annotations

import json
from pathlib import Path

from heatwatch.stack.children import ServiceProcess
from support.mqtt import publish_all


def test_ingest_logs_are_json_lines(ingest_env: dict[str, str], mosquitto, tmp_path: Path) -> None:
    ingest = ServiceProcess(["ingest"], ingest_env | {"HEATWATCH_LOG_JSON": "true"}, tmp_path / "ingest.log",
                            name="ingest")
    ingest.start(ready_marker="mqtt.subscribed", timeout=60)
    try:
        assert publish_all(mosquitto.url, [("heat/vitre/json-log-1", b"{not json")]) == 1
        ingest.wait_for("ingest.rejected", timeout=30)
    finally:
        ingest.stop()
    records = [json.loads(line) for line in ingest.log_text().splitlines() if line.strip()]
    by_event = {r["event"]: r for r in records}
    assert by_event["mqtt.subscribed"]["logger"] == "heatwatch.ingest.mqtt"
    assert by_event["ingest.rejected"]["counts"] == {"invalid_json": 1}
    assert "ingest.stopped" in by_event
