"""Helpers of the job, alert and CLI tests: a simulated week in the real influxd, read back.

A module, not conftest, because test modules cannot import conftest under importlib mode.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.model import Reading
from heatwatch.core.registry import Registry
from heatwatch.simulate.options import SimOptions
from heatwatch.simulate.schedule import Simulation, prepare

WEEK_START = datetime(2025, 7, 7, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=8, hours=6)
#: local days fully determined by the week's readings (the Tx window of the last closes at its end)
WEEK_DAYS = [date(2025, 7, 7) + timedelta(days=i) for i in range(8)]


def simulate_week(faults: bool) -> Simulation:
    return prepare(SimOptions(start=WEEK_START, end=WEEK_END, faults=faults))


def write_readings(url: str, db: str, readings: list[Reading]) -> None:
    """Straight to /write in line protocol: the ingest path has its own tests."""

    async def go() -> None:
        async with InfluxClient(url, db, timeout=60) as c:
            await c.setup()
            lines = [r.to_line() for r in readings]
            await asyncio.gather(*(c.write_lines(lines[i:i + 10_000]) for i in range(0, len(lines), 10_000)))

    asyncio.run(go())


def example_registry(path: Path) -> Registry:
    reg = Registry(path)
    reg.load_examples()
    return reg


def dump(url: str, db: str, measurements: tuple[str, ...] = ("hourly", "daily", "town_daily")) -> dict:
    """Every stored aggregate point, keyed by measurement: what idempotency compares."""

    async def go() -> dict:
        async with InfluxClient(url, db, timeout=60) as c:
            out = {}
            for m in measurements:
                rows = await c.query_records(f'SELECT * FROM {c.qualified(m, AGG_RP)}')
                out[m] = sorted(rows, key=lambda r: (r["time"], r.get("town"), r.get("sensor") or ""))
            return out

    return asyncio.run(go())
