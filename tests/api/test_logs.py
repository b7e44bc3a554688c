"""``heatwatch api`` with HEATWATCH_LOG_JSON: every line it writes is JSON, uvicorn's included."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import free_port


def test_api_logs_are_json_lines_access_log_included(influxd, db_name: str, tmp_path: Path) -> None:
    port = free_port()
    env = {"HEATWATCH_INFLUX_URL": influxd.url, "HEATWATCH_INFLUX_DB": db_name,
           "HEATWATCH_DATA_DIR": str(tmp_path / "var"), "HEATWATCH_LOG_JSON": "true",
           "HEATWATCH_LIVE_ENABLED": "false", "HEATWATCH_DASHBOARD_FRONTEND_DIR": str(tmp_path / "nowhere")}
    api = ServiceProcess(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api.log", name="api")
    api.start(ready_marker="Application startup complete", timeout=60)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/v1/towns", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/v1/towns/lille", timeout=10).status_code == 404
        api.wait_for('"/v1/towns/lille"', timeout=10)
    finally:
        api.stop()
    records = [json.loads(line) for line in api.log_text().splitlines() if line.strip()]  # every line parses
    events = {(r["logger"], r["event"]) for r in records}
    assert ("uvicorn.error", "Application startup complete.") in events
    assert ("heatwatch.api.dashboard", "dashboard.libraries_missing") in events  # the api's own, structured
    access = [r for r in records if r["event"] == "http.request"]
    assert [(r["method"], r["path"], r["status"]) for r in access] == [("GET", "/v1/towns", 200),
                                                                       ("GET", "/v1/towns/lille", 404)]
    assert all({"timestamp", "level"} <= set(r) for r in records)
