"""The service wiring: APScheduler jobs and their misfire policy, ``heatwatch analytics`` as a process
(catches up at start, exits cleanly on SIGTERM), ``heatwatch backfill`` with its progress bar."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from analytics.weektools import example_registry, simulate_week, write_readings
from heatwatch.analytics.scheduler import AnalyticsService
from heatwatch.cli import main
from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.settings import Settings
from heatwatch.simulate.options import SimOptions
from heatwatch.simulate.schedule import prepare
from heatwatch.stack.children import ServiceProcess


def test_jobs_are_scheduled_with_coalescing_and_grace(tmp_path: Path) -> None:
    settings = Settings.load(influx_url="http://127.0.0.1:9", data_dir=tmp_path, alert_interval_s=120)

    async def go() -> dict:
        client = InfluxClient(settings.influx_base_url, settings.influx_db)
        service = AnalyticsService(settings, client)
        service.schedule()
        jobs = {j.id: j for j in service.scheduler.get_jobs()}
        await client.aclose()
        return jobs

    jobs = asyncio.run(go())
    assert set(jobs) == {"hourly", "daily", "archives", "alerts", "notify", "last", "startup"}
    assert jobs["notify"].trigger.interval == timedelta(seconds=30)  # notifications: retries, reminders, digests
    assert jobs["last"].trigger.interval == timedelta(seconds=30)  # the last-value store behind /v1/latest
    assert all(j.coalesce and j.max_instances == 1 for j in jobs.values())
    assert jobs["hourly"].misfire_grace_time == 3600 and "minute='5'" in str(jobs["hourly"].trigger)
    assert "hour='6'" in str(jobs["daily"].trigger) and jobs["daily"].misfire_grace_time == 6 * 3600
    assert jobs["alerts"].trigger.interval == timedelta(seconds=120)
    # Monthly archives after the daily job has redone the last days (docs/interop.md).
    assert "hour='6'" in str(jobs["archives"].trigger) and "minute='40'" in str(jobs["archives"].trigger)


def count(url: str, db: str, measurement: str, where: str = "") -> int:
    async def go() -> int:
        async with InfluxClient(url, db) as c:
            rows = await c.query_records(f'SELECT COUNT("qc") FROM {c.qualified(measurement, AGG_RP)} {where}')
            return int(rows[0]["count"]) if rows else 0

    return asyncio.run(go())


def test_analytics_command_catches_up_at_start_and_stops_on_sigterm(influxd, mosquitto, db_name, tmp_path) -> None:
    # A day of readings up to now, and no aggregate yet: the start-up run must compute them.
    now = datetime.now(UTC).replace(microsecond=0)
    sim = prepare(SimOptions(start=now - timedelta(days=1), end=now, towns=["vitre"], sensors=6, faults=False))
    write_readings(influxd.url, db_name, list(sim.readings()))
    example_registry(tmp_path / "var" / "registry.sqlite").close()
    env = {"HEATWATCH_INFLUX_URL": influxd.url, "HEATWATCH_INFLUX_DB": db_name, "HEATWATCH_MQTT_URL": mosquitto.url,
           "HEATWATCH_DATA_DIR": str(tmp_path / "var"), "HEATWATCH_ANALYTICS_MQTT_CLIENT_ID": f"a-{db_name}"}
    proc = ServiceProcess(["analytics"], env, tmp_path / "analytics.log")
    proc.start(ready_marker="analytics.started", timeout=60)
    try:
        proc.wait_for("analytics.alerts.done", timeout=60)
        assert count(influxd.url, db_name, "hourly") >= 6 * 23
        assert count(influxd.url, db_name, "daily") >= 6
    finally:
        code = proc.stop(timeout=20)
    log = proc.log_text()
    assert code == 0, log[-2000:]
    assert "analytics.stopped" in log and "Traceback" not in log


@pytest.fixture
def cli_env(influxd, db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HEATWATCH_INFLUX_URL", influxd.url)
    monkeypatch.setenv("HEATWATCH_INFLUX_DB", db_name)
    monkeypatch.setenv("HEATWATCH_DATA_DIR", str(tmp_path / "var"))
    example_registry(tmp_path / "var" / "registry.sqlite").close()
    return db_name


def test_backfill_command_recomputes_one_town_over_a_range(influxd, cli_env: str, capsys) -> None:
    write_readings(influxd.url, cli_env, list(simulate_week(faults=False).readings()))
    assert main(["backfill", "--from", "2025-07-10", "--to", "2025-07-12", "--town", "vitre", "--chunk-days", "2"]) == 0
    out = capsys.readouterr()
    assert "backfill" in out.err and "3/3" in out.err  # the tqdm bar, in days
    assert "points written" in out.out

    async def days() -> set[tuple[str, date]]:
        async with InfluxClient(influxd.url, cli_env) as c:
            rows = await c.query_records(f'SELECT "tn" FROM {c.qualified("daily", AGG_RP)} GROUP BY "town"')
        return {(r["town"], datetime.fromtimestamp(r["time"] / 1000 + 7200, UTC).date()) for r in rows}

    assert {d for _, d in asyncio.run(days())} == {date(2025, 7, 10), date(2025, 7, 11), date(2025, 7, 12)}
    assert {c for c, _ in asyncio.run(days())} == {"vitre"}


def test_backfill_command_rejects_unknown_town(cli_env: str, capsys) -> None:
    assert main(["backfill", "--from", "2025-07-10", "--to", "2025-07-12", "--town", "paris"]) == 2
    assert "unknown town" in capsys.readouterr().out
