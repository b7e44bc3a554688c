"""Recompute requests over MQTT, end to end: ``POST /v1/admin/recompute`` on the api publishes on
``heatwatch/recompute``; ``heatwatch analytics`` (a child process, real mosquitto and influxd) takes it
from its persistent session, recomputes the range and announces it on ``heatwatch/recompute/done``.

The readings are of July 2025, more than ``analytics_catchup_max_days`` back: the start-up catch-up
never touches them, so any aggregate of those days was made by a request.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.weektools import example_registry, write_readings
from heatwatch.api.app import create_app
from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.settings import Settings
from heatwatch.core.topics import RECOMPUTE as RECOMPUTE_TOPIC
from heatwatch.core.topics import RECOMPUTE_DONE as DONE_TOPIC
from heatwatch.simulate.options import SimOptions
from heatwatch.simulate.schedule import prepare
from heatwatch.stack.children import ServiceProcess
from support.apps import NO_LIMITS, with_api
from support.mqtt import publish_all, subscribed
from support.wait import wait_until

TOKEN = "test-admin-token-0123456789-abcdefghijkl"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = datetime(2025, 7, 7, tzinfo=UTC)
DAYS = [date(2025, 7, 8), date(2025, 7, 9)]  # fully inside the readings, with their read context


# End to end ---------------------------------------------------------------------------------------

def done_messages(url: str):
    """Outcome notices published by analytics while the block runs."""
    return subscribed(url, DONE_TOPIC, decode=json.loads)


def wait_done(got: list[dict], rid: str, timeout: float = 60.0) -> dict:
    return wait_until(lambda: next((m for m in got if m.get("id") == rid), None), timeout, f"the outcome of {rid}",
                      interval=0.05)


def daily_days(url: str, db: str) -> set[tuple[str, date]]:
    """(town, local day) of every stored daily point."""

    async def go() -> set[tuple[str, date]]:
        async with InfluxClient(url, db) as c:
            rows = await c.query_records(f'SELECT "tn" FROM {c.qualified("daily", AGG_RP)} GROUP BY "town"')
        # Daily points are stamped at local midnight, 22:00 UTC the day before in July.
        return {(r["town"], (datetime.fromtimestamp(r["time"] / 1000, UTC) + timedelta(hours=2)).date())
                for r in rows}

    return asyncio.run(go())


def count_daily(url: str, db: str, town: str) -> int:
    async def go() -> int:
        async with InfluxClient(url, db) as c:
            rows = await c.query_records(f'SELECT COUNT("tn") FROM {c.qualified("daily", AGG_RP)} WHERE "town" = $c',
                                         {"c": town})
        return int(rows[0]["count"]) if rows else 0

    return asyncio.run(go())


@pytest.fixture
def stack(influxd, mosquitto, db_name: str, tmp_path: Path) -> dict:
    """Raw readings of 2025-07-07…10 in both towns and no aggregate; the registry; env and api settings."""
    sim = prepare(SimOptions(start=START, duration=timedelta(days=4), step=timedelta(minutes=10), faults=False))
    write_readings(influxd.url, db_name, list(sim.readings()))
    example_registry(tmp_path / "var" / "registry.sqlite").close()
    env = {"HEATWATCH_INFLUX_URL": influxd.url, "HEATWATCH_INFLUX_DB": db_name, "HEATWATCH_MQTT_URL": mosquitto.url,
           "HEATWATCH_DATA_DIR": str(tmp_path / "var"), "HEATWATCH_ANALYTICS_MQTT_CLIENT_ID": f"a-{db_name}"}
    settings = Settings.load(influx_url=influxd.url, influx_db=db_name, mqtt_url=mosquitto.url,
                             data_dir=tmp_path / "var", admin_token=TOKEN)
    assert daily_days(influxd.url, db_name) == set()
    return {"env": env, "settings": settings, "log": tmp_path / "analytics.log"}


def api(settings: Settings) -> TestClient:
    return TestClient(create_app(with_api(settings, **NO_LIMITS)))


def test_request_through_the_api_is_run_by_the_analytics_service(stack, influxd, mosquitto, db_name) -> None:
    proc = ServiceProcess(["analytics"], stack["env"], stack["log"])
    proc.start(ready_marker="recompute.subscribed", timeout=60)
    try:
        with done_messages(mosquitto.url) as done, api(stack["settings"]) as client:
            # Bad requests first: each is logged and dropped, and the queue behind them still moves.
            bad = [b"{oops", json.dumps({"id": "bad-town", "town": "lille", "from": "2025-07-08",
                                         "to": "2025-07-09"}).encode(),
                   json.dumps({"id": "bad-range", "from": "2025-07-09", "to": "2025-07-08"}).encode()]
            assert publish_all(mosquitto.url, [(RECOMPUTE_TOPIC, b) for b in bad]) == 3
            r = client.post("/v1/admin/recompute", json={"from": DAYS[0].isoformat(), "to": DAYS[-1].isoformat(),
                                                         "town": "vitre"}, headers=AUTH)
            assert r.status_code == 202, r.text
            rid = r.json()["id"]
            outcome = wait_done(done, rid)
            rejected = {m["id"]: m for m in done if m.get("status") == "rejected"}
        assert outcome["status"] == "done", outcome
        assert (outcome["town"], outcome["from"], outcome["to"]) == ("vitre", "2025-07-08", "2025-07-09")
        assert outcome["readings"] > 0 and outcome["points"] > 0
        assert set(rejected) == {"bad-town", "bad-range"}
        assert "unknown town" in rejected["bad-town"]["error"]
        # Exactly the requested days of the requested town, each with a row per active sensor.
        assert daily_days(influxd.url, db_name) == {("vitre", d) for d in DAYS}
        assert count_daily(influxd.url, db_name, "vitre") == 14 * len(DAYS)
    finally:
        code = proc.stop(timeout=30)
    log = proc.log_text()
    assert code == 0, log[-3000:]
    assert log.count("recompute.rejected") == 3 and "recompute.done" in log and "Traceback" not in log


def test_request_made_while_analytics_is_down_runs_when_it_starts(stack, influxd, mosquitto, db_name) -> None:
    proc = ServiceProcess(["analytics"], stack["env"], stack["log"])
    # A first start creates the persistent session the broker queues requests in.
    proc.start(ready_marker="recompute.subscribed", timeout=60)
    assert proc.stop(timeout=30) == 0
    with done_messages(mosquitto.url) as done:
        with api(stack["settings"]) as client:
            r = client.post("/v1/admin/recompute", json={"from": DAYS[0].isoformat(), "to": DAYS[-1].isoformat()},
                            headers=AUTH)
        assert r.status_code == 202, r.text
        rid = r.json()["id"]

        # --no-mqtt: the service runs but takes no request, so the request stays queued.
        off = ServiceProcess(["analytics", "--no-mqtt"], stack["env"], stack["log"].with_name("no-mqtt.log"),
                             name="analytics-no-mqtt")
        off.start(ready_marker="analytics.alerts.done", timeout=60)
        time.sleep(1.0)
        assert off.stop(timeout=30) == 0
        assert "recompute_requests=False" in off.log_text() and "recompute.connected" not in off.log_text()
        assert done == [] and daily_days(influxd.url, db_name) == set()

        offset = stack["log"].stat().st_size
        proc.start(ready_marker="recompute.subscribed", timeout=60)
        try:
            outcome = wait_done(done, rid)
        finally:
            code = proc.stop(timeout=30)
    assert code == 0, proc.log_text(offset)[-3000:]
    assert outcome["status"] == "done" and outcome["town"] is None, outcome
    assert daily_days(influxd.url, db_name) == {(town, d) for town in ("vitre", "saint-omer") for d in DAYS}
    assert "session_present=True" in proc.log_text(offset)
