"""Analytics' Prometheus metrics (analytics/metrics.py): job runs, last success, data lag, QC flag rates and open
alerts, from a real service run over a simulated day in the session's influxd. The listener and the dashboard's
metrics are checked against running processes in tests/stack/test_metrics_scrape.py."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from analytics.weektools import example_registry, write_readings
from heatwatch.analytics.alerts import load_open
from heatwatch.analytics.metrics import AnalyticsMetrics, qc_window
from heatwatch.analytics.scheduler import AnalyticsService
from heatwatch.core.influx import InfluxClient
from heatwatch.core.measurements import QcFlag
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from heatwatch.simulate.options import SimOptions
from heatwatch.simulate.schedule import prepare


def test_qc_window_counts_each_flag_over_the_newest_24_hours_with_readings() -> None:
    t = pd.date_range("2026-07-01", periods=48, freq="h", tz="UTC")
    qc = [int(QcFlag.SPIKE)] * 24 + [0] * 20 + [int(QcFlag.STEP | QcFlag.SPIKE), int(QcFlag.STEP), 0, 0]
    n = [6] * 47 + [0]  # the last hour has no reading: not an hour of the window
    w = qc_window(pd.DataFrame({"time": t, "n": n, "qc": qc}))
    assert w is not None and w.newest == t[46] and w.hours == 24
    assert w.flagged["STEP"] == 2 and w.flagged["SPIKE"] == 2 and w.flagged["RANGE"] == 0
    assert set(w.flagged) == {f.name for f in QcFlag}
    assert qc_window(pd.DataFrame({"time": t[:1], "n": [0], "qc": [0]})) is None


def test_an_older_qc_window_does_not_replace_a_newer_one() -> None:
    m = AnalyticsMetrics()
    t = pd.date_range("2026-07-01", periods=24, freq="h", tz="UTC")
    today = qc_window(pd.DataFrame({"time": t + pd.Timedelta(days=300), "n": 6, "qc": int(QcFlag.SPIKE)}))
    summer = qc_window(pd.DataFrame({"time": t, "n": 6, "qc": 0}))
    m.qc("vitre", today)
    m.qc("vitre", summer)  # a backfill of an old summer
    assert m.registry.get_sample_value("heatwatch_analytics_qc_flagged_ratio", {"town": "vitre", "flag": "SPIKE"}) == 1


def test_a_job_run_updates_its_metrics_and_the_towns_are_measured(influxd, db_name: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    sim = prepare(SimOptions(start=now - timedelta(days=1), end=now - timedelta(minutes=3), towns=["vitre"],
                             sensors=6, faults=True))
    write_readings(influxd.url, db_name, list(sim.readings()))
    example_registry(tmp_path / "var" / "registry.sqlite").close()
    settings = Settings.load(influx_url=influxd.url, influx_db=db_name, data_dir=tmp_path / "var",
                             alert_grace_s=0)

    async def go() -> tuple[AnalyticsService, dict[str, int]]:
        registry = Registry.from_settings(settings)
        async with InfluxClient(settings.influx_base_url, settings.influx_db) as client:
            service = AnalyticsService(settings, client, registry)
            before = time.time()
            await service.once()  # last-value refresh, trust review, catch-up, alerts: as at start
            for job in ("last", "catchup", "alerts"):
                value = service.metrics.registry.get_sample_value(
                    "heatwatch_analytics_job_last_success_timestamp_seconds", {"job": job})
                assert value is not None and value >= before, job

            async def boom() -> None:
                raise RuntimeError("InfluxDB went away")

            await service._guard("hourly", boom)
            opened = Counter(kind for _sensor, kind in await load_open(client, "vitre"))
        registry.close()
        return service, dict(opened)

    service, opened = asyncio.run(go())
    get = service.metrics.registry.get_sample_value
    assert get("heatwatch_analytics_job_runs_total", {"job": "catchup", "outcome": "success"}) == 1
    assert get("heatwatch_analytics_job_duration_seconds_count", {"job": "catchup"}) == 1
    assert get("heatwatch_analytics_job_duration_seconds_sum", {"job": "catchup"}) > 0
    # A failed run is counted and leaves no success behind.
    assert get("heatwatch_analytics_job_runs_total", {"job": "hourly", "outcome": "failure"}) == 1
    assert get("heatwatch_analytics_job_last_success_timestamp_seconds", {"job": "hourly"}) is None

    # Data lag: now minus the newest reading stored (3 minutes ago, to the simulator's step), computed when scraped.
    lag = get("heatwatch_analytics_data_lag_seconds", {"town": "vitre"})
    newest = get("heatwatch_analytics_newest_reading_timestamp_seconds", {"town": "vitre"})
    assert lag is not None and 150 <= lag <= 3600, lag
    assert abs(time.time() - newest - lag) < 5

    # QC flag rates of the newest day computed: the simulator's faulty sensors are flagged, the ratios are shares.
    hours = get("heatwatch_analytics_qc_hours", {"town": "vitre"})
    assert hours is not None and hours >= 6 * 20
    ratios = {f.name: get("heatwatch_analytics_qc_flagged_ratio", {"town": "vitre", "flag": f.name}) for f in QcFlag}
    assert all(r is not None and 0 <= r <= 1 for r in ratios.values())
    assert any(r > 0 for r in ratios.values()), ratios

    # Open alerts by kind: what the alert state in InfluxDB says, every kind present (0 when none).
    assert opened, "the simulated faults and silent registered sensors open alerts"
    for kind in ("offline", "battery", "temperature", "qc"):
        assert get("heatwatch_analytics_alerts_open", {"town": "vitre", "kind": kind}) == opened.get(kind, 0), kind
