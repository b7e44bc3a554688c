"""Late readings and missed runs, on the real influxd, replaying the simulated week in real-time order.

The simulator's offline sensor holds its readings back for ~19 h and flushes them as a backlog
when it comes back: the next hourly run must absorb the part of that backlog in the days it
covers, the daily run the rest. A service down for two days catches up at start from its newest
stored hour.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analytics.weektools import dump, example_registry, simulate_week, write_readings
from heatwatch.analytics.jobs import Analytics
from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.settings import load_towns
from heatwatch.simulate.options import FaultKind

TOWNS = load_towns()


def hourly_n(url: str, db: str, sensor: str) -> pd.Series:
    async def go() -> list[dict]:
        async with InfluxClient(url, db) as c:
            return await c.query_records(f'SELECT "n" FROM {c.qualified("hourly", AGG_RP)} WHERE "sensor" = $s',
                                         {"s": sensor})

    rows = asyncio.run(go())
    return pd.Series({pd.Timestamp(r["time"], unit="ms", tz="UTC"): r["n"] for r in rows}, dtype="int64")


def raw_counts(readings: list, sensor: str, end: datetime) -> pd.Series:
    t = pd.to_datetime([r.ts_ms for r in readings if r.sensor == sensor and r.ts_ms < end.timestamp() * 1000],
                       unit="ms", utc=True)
    return pd.Series(1, index=t).groupby(t.floor("h")).sum()


def test_backlog_absorbed_by_next_hourly_run_then_daily_run_and_catch_up_after_downtime(
        influxd, db_name: str, tmp_path) -> None:
    sim = simulate_week(faults=True)
    readings = list(sim.readings())
    outage = next(f for f in sim.faults if f.kind is FaultKind.offline and f.sensor.startswith("vitre"))
    sensor = outage.sensor
    held = [r for r in readings if r.sensor == sensor and outage.active(r.ts_ms)]
    assert len(held) > 100

    end_ms = outage.end_ms or 0
    now1 = (pd.Timestamp(end_ms, unit="ms", tz="UTC").floor("h") + pd.Timedelta(hours=1, minutes=5)).to_pydatetime()
    now2 = now1 + timedelta(hours=1)
    now3 = now2 + timedelta(days=2, hours=3)
    ms = lambda d: d.timestamp() * 1000  # noqa: E731
    reg = example_registry(tmp_path / "registry.sqlite")

    async def run(step) -> None:
        async with InfluxClient(influxd.url, db_name, timeout=60) as c:
            await step(Analytics(c, TOWNS, reg))

    # Up to now1, everything but the sensor's withheld readings; first start of the service.
    held_ids = {id(r) for r in held}
    write_readings(influxd.url, db_name, [r for r in readings if r.ts_ms < ms(now1) and id(r) not in held_ids])
    asyncio.run(run(lambda a: a.catch_up(now1, 6, 31)))
    n = hourly_n(influxd.url, db_name, sensor)
    # Hours wholly inside the outage: the ones at its edges also hold readings sent on time.
    held_n = raw_counts(held, sensor, now1)
    gap = held_n.index[held_n == raw_counts(readings, sensor, now1).reindex(held_n.index)]
    assert not n.index.isin(gap).any()
    assert n.index.min() < gap.min()  # the hours before the outage were computed at start

    # The backlog arrives with the next hour of readings; the next hourly run takes its local day.
    write_readings(influxd.url, db_name, held + [r for r in readings if ms(now1) <= r.ts_ms < ms(now2)])
    asyncio.run(run(lambda a: a.hourly_run(now2, 6, 31)))
    n = hourly_n(influxd.url, db_name, sensor)
    today = pd.Timestamp(now2).tz_convert("Europe/Paris").normalize().tz_convert("UTC")
    expected = raw_counts(readings, sensor, now2)
    absorbed = expected[expected.index >= today]
    assert (n.reindex(absorbed.index) == absorbed).all()
    assert not n.index.isin(gap[gap < today]).any()  # the day before waits for the daily run

    # The daily run (06:20 UTC next morning) redoes the last complete days: the backlog is all in.
    async def daily(a: Analytics) -> None:
        await a.daily_run(datetime(now2.year, now2.month, now2.day, 6, 20, tzinfo=UTC) + timedelta(days=1), 3)

    asyncio.run(run(daily))
    n = hourly_n(influxd.url, db_name, sensor)
    before = expected[expected.index < today]
    assert (n.reindex(before[before.index >= gap.min()].index) == before[before.index >= gap.min()]).all()

    # Down for two days: readings kept arriving; the start-up catch-up fills every hour since.
    write_readings(influxd.url, db_name, [r for r in readings if ms(now2) <= r.ts_ms < ms(now3)])
    asyncio.run(run(lambda a: a.catch_up(now3, 6, 31)))
    ref = "vitre-rural-01"
    n = hourly_n(influxd.url, db_name, ref)
    hours = pd.date_range(pd.Timestamp(now2).floor("h"), pd.Timestamp(now3).floor("h"), freq="h", inclusive="left")
    assert (n.reindex(hours) == raw_counts(readings, ref, now3).reindex(hours)).all()

    # And a second start right after changes nothing.
    before_points = dump(influxd.url, db_name)
    asyncio.run(run(lambda a: a.catch_up(now3, 6, 31)))
    assert dump(influxd.url, db_name) == before_points
    reg.close()


@pytest.mark.parametrize("hours", [6])
def test_hourly_run_without_any_data_is_a_no_op(influxd, db_name: str, hours: int) -> None:
    async def go() -> list:
        async with InfluxClient(influxd.url, db_name) as c:
            await c.setup()
            return await Analytics(c, TOWNS).catch_up(datetime(2025, 7, 1, 12, 5, tzinfo=UTC), hours, 31)

    stats = asyncio.run(go())
    assert all(s.readings == 0 and not s.points for s in stats)
