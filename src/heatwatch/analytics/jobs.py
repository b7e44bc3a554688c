"""Recomputing a town's aggregates for whole local days, and the scheduled runs built on it.

The unit of work is a set of local days D1…D2 of one town. Everything in them is recomputed
from raw readings and replaces what was stored (:func:`Analytics.recompute`), so any run is
idempotent and a second runner is harmless. The read window is wider than the days, by what
the definitions (docs/science/indices.md, canicule.md) look at:

* from 18:00 UTC three days before D1: the IBM of D1 is the mean of D1−2…D1, and the Tn of
  D1−2 starts at 18:00 UTC of D1−3; that also covers the night UHI of D1 (from 18:00 local D1−1);
* to 06:00 UTC three days after D2: the forward IBM of D2 (D2…D2+2, the window of Météo-France's
  vigilance) ends with the Tx window of D2+2. When those days are still to come the forward
  fields stay empty; the daily run fills them once D2+2 is complete.

Context days are read but not written (``aggregate_town(days=...)``): their own edges are cut.
QC also reads the stored hourly rows of the ``history_days`` before the window (drift and the
monthly checks look back weeks), and the town's official station series when one is configured.

Which days a run writes: every local day D1…D2 asked for that has at least one raw reading,
the last one included — whatever the time of day the readings stop.

Runs, all in UTC wall time:

* hourly (HH:05): the days touched by the last ``analytics_recompute_hours`` hours, so late and
  backlog readings land in their hour; today's daily row is provisional (coverage < 1, flag
  AVAILABILITY) until the day is over;
* daily (06:20): the last ``analytics_daily_days`` complete days, once the Tx window of
  yesterday (to 06:00 UTC today) has closed; this is what fixes yesterday's IBMx and canicule;
* catch-up: every hourly run (and one at start) first looks at the newest stored hour; when it
  is older than the recompute span (service down, readings stored before any aggregate), the run
  starts from the day before it, at most ``analytics_catchup_max_days`` back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from heatwatch.core.changes import announce
from heatwatch.core.influx import InfluxClient
from heatwatch.core.logging import get_logger
from heatwatch.core.maintenance import breaks_or_empty
from heatwatch.core.model import Sensor, Town
from heatwatch.core.registry import Registry

from .aggregate import DEFAULT_CITIZEN_WEIGHT, TownAggregates, TownContext, aggregate_town, town_qc
from .metrics import QcWindow, qc_window
from .qc import QcConfig
from .reader import first_reading, last_hourly, read_hourly_history, read_readings
from .reference import read_station
from .writer import SCHEMA, existing_points, frame_lines, leaves_stale, replace_range, write_lines

log = get_logger("heatwatch.analytics")

CONTEXT_DAYS_BEFORE = 3
CONTEXT_DAYS_AFTER = 3  # the forward IBM of D2 ends with the Tx window of D2+2, closing on D2+3
TN_WINDOW_START_H = 18  # UTC hour the Météo-France Tn window opens, the day before
TX_WINDOW_END_H = 6  # UTC hour the Tx window closes, the day after


def read_window(days: Sequence[date]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC [start, end) of the raw readings that fully determine the aggregates of ``days``."""
    first = pd.Timestamp(min(days) - timedelta(days=CONTEXT_DAYS_BEFORE), tz="UTC")
    last = pd.Timestamp(max(days) + timedelta(days=CONTEXT_DAYS_AFTER), tz="UTC")
    return first + pd.Timedelta(hours=TN_WINDOW_START_H), last + pd.Timedelta(hours=TX_WINDOW_END_H)


def day_span(days: Sequence[date], tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC [local midnight of the first day, local midnight after the last): what is written."""
    start = pd.Timestamp(min(days)).tz_localize(tz).tz_convert("UTC")
    end = pd.Timestamp(max(days) + timedelta(days=1)).tz_localize(tz).tz_convert("UTC")
    return start, end


def local_days(start: datetime, end: datetime, tz: str) -> list[date]:
    """Local dates of ``tz`` met between two instants, both included."""
    a = pd.Timestamp(start).tz_convert(tz).date()
    b = pd.Timestamp(end).tz_convert(tz).date()
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


def runs_of(days: Iterable[date]) -> list[list[date]]:
    """Consecutive runs of sorted dates: each run is one contiguous range to replace."""
    out: list[list[date]] = []
    for d in sorted(set(days)):
        if out and d - out[-1][-1] == timedelta(days=1):
            out[-1].append(d)
        else:
            out.append([d])
    return out


def chunks(first: date, last: date, size: int) -> list[list[date]]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [days[i:i + size] for i in range(0, len(days), size)]


@dataclass
class RunStats:
    town: str
    days: list[date]
    readings: int = 0
    points: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: points deleted per measurement by an erasure (a contributor's withdrawal) before the recompute
    erased: dict[str, int] = field(default_factory=dict)
    #: QC flags of the newest 24 computed hours (the metrics' flag rates)
    qc: QcWindow | None = None

    def as_log(self) -> dict[str, Any]:
        return {"town": self.town, "days": f"{self.days[0]}..{self.days[-1]}" if self.days else "-",
                "readings": self.readings, **{f"n_{k}": v for k, v in self.points.items()},
                **{f"s_{k}": round(v, 3) for k, v in self.seconds.items()}}


def town_context(town: Town, sensors: Sequence[Sensor], qc: QcConfig | None = None,
                 citizen_weight: float = DEFAULT_CITIZEN_WEIGHT) -> TownContext:
    """The town as the aggregates see it; without any registered sensor, every non-reference is urban."""
    if not [s for s in sensors if s.town == town.id]:
        return TownContext(id=town.id, timezone=town.timezone, references=frozenset(town.reference_sensors),
                           thresholds=town.canicule, qc=town_qc(town, qc), position=(town.latitude, town.longitude),
                           station=town.reference.station, ibm_sources=tuple(town.reference.ibm_sources),
                           uhi_sources=tuple(town.reference.uhi_sources))
    return TownContext.from_registry(town, sensors, qc, citizen_weight)


def build_lines(aggs: TownAggregates) -> dict[str, list[str]]:
    frames = {"hourly": aggs.hourly, "daily": aggs.daily, "town_daily": aggs.town_daily}
    return {m: frame_lines(frames[m], m, *SCHEMA[m]) for m in SCHEMA}


class Analytics:
    """The aggregate jobs of every configured town, over one InfluxDB client."""

    def __init__(self, client: InfluxClient, towns: Mapping[str, Town], registry: Registry | None = None,
                 qc: QcConfig | None = None, citizen_weight: float = DEFAULT_CITIZEN_WEIGHT,
                 data_dir: Path | None = None) -> None:
        self.client = client
        #: where the visit log is (core/maintenance.py): its series breaks restart QC's baselines
        self.data_dir = data_dir
        self.citizen_weight = citizen_weight
        self.towns = dict(towns)
        self.registry = registry
        self.qc = qc
        # Two runs of the same town would only redo each other's work: let them queue.
        self._locks = {town: asyncio.Lock() for town in self.towns}

    def sensors(self, town: str) -> list[Sensor]:
        return list(self.registry.list(town=town)) if self.registry is not None else []

    def context(self, town: str) -> TownContext:
        ctx = town_context(self.towns[town], self.sensors(town), self.qc, self.citizen_weight)
        if self.data_dir is None:
            return ctx
        try:
            breaks = breaks_or_empty(self.data_dir, town)
        except sqlite3.Error as exc:  # an unreadable visit log must not stop the aggregates: QC as without it
            log.warning("analytics.visit_log_unavailable", town=town, error=str(exc))
            breaks = {}
        return replace(ctx, breaks={s: tuple(v) for s, v in breaks.items()}) if breaks else ctx

    async def recompute(self, town: str, days: Sequence[date]) -> RunStats:
        """Recompute and replace the aggregates of ``days`` (local dates) of one town.

        Days without a single raw reading are left alone: raw data may have expired under its
        retention policy while the aggregates are kept forever, and must not be wiped.
        """
        days = sorted(set(days))
        stats = RunStats(town, days)
        if not days:
            return stats
        async with self._locks[town]:
            ctx = self.context(town)
            t0 = time.perf_counter()
            start, end = read_window(days)
            # The three reads overlap in the database: the history and the station are small but
            # cost a round trip each, which an hourly run would otherwise pay in series.
            readings, history, station = await asyncio.gather(
                read_readings(self.client, town, start, end),
                read_hourly_history(self.client, town, start - pd.Timedelta(days=ctx.qc.history_days), start),
                read_station(self.client, ctx.station, start, end) if ctx.station else _none())
            stats.readings = len(readings)
            stats.seconds["read"] = time.perf_counter() - t0
            if readings.empty:
                return stats
            present = set(readings["time"].dt.tz_convert(ctx.timezone).dt.date.unique())
            keep = [d for d in days if d in present]
            if not keep:
                return stats
            t1 = time.perf_counter()
            aggs, lines = await asyncio.to_thread(_compute, readings, ctx, keep, history, station)
            stats.qc = qc_window(aggs["hourly"])
            t2 = time.perf_counter()
            stats.seconds["compute"] = t2 - t1
            for run in runs_of(keep):
                span = day_span(run, ctx.timezone)
                found = await asyncio.gather(*(existing_points(self.client, m, town, *span) for m in aggs))
                stale = [m for (m, new), existing in zip(aggs.items(), found, strict=True)
                         if leaves_stale(existing, new, m)]
                if stale:
                    await replace_range(self.client, town, *span, measurements=stale)
            for measurement, ls in lines.items():
                await write_lines(self.client, ls)
                stats.points[measurement] = len(ls)
            # Readers holding aggregates in memory read the range again (core/changes.py); a day on each side in
            # case a zone's midnight moved the stamp of an edge day.
            first, after = day_span(keep, ctx.timezone)
            await announce(self.client, town, int(first.timestamp() * 1000) - 86_400_000,
                           int(after.timestamp() * 1000) + 86_400_000)
            stats.seconds["write"] = time.perf_counter() - t2
        return stats

    async def recompute_range(self, town: str, first: date, last: date, chunk_days: int = 14) -> list[RunStats]:
        return [await self.recompute(town, c) for c in chunks(first, last, chunk_days)]

    # Scheduled runs ---------------------------------------------------------------------

    async def hourly_run(self, now: datetime, hours: int, catchup_max_days: int | None = None,
                         chunk_days: int = 7) -> list[RunStats]:
        """Recompute the days touched by the last ``hours`` hours.

        With ``catchup_max_days``, a town whose newest stored hour is older than that (the
        service was down, or the readings arrived before any aggregate existed) is recomputed
        from the day before that hour, at most ``catchup_max_days`` back: this is the start-up
        catch-up, and it repairs any hourly run that was missed.
        """
        now_ts = pd.Timestamp(now)

        async def town_run(town_id: str, town: Town) -> list[RunStats]:
            begin = now_ts - pd.Timedelta(hours=hours)
            if catchup_max_days is not None:
                floor = now_ts - pd.Timedelta(days=catchup_max_days)
                last = await last_hourly(self.client, town_id, floor.to_pydatetime())
                if last is None:
                    last = await first_reading(self.client, town_id, floor.to_pydatetime())
                if last is not None and last < begin:
                    # The day before too: its Tx window was still open when the service stopped.
                    begin = max(last - pd.Timedelta(days=1), floor)
            days = local_days(begin, now_ts, town.timezone)
            return await self.recompute_range(town_id, days[0], days[-1], chunk_days)

        return await self._each_town(town_run)

    async def _each_town(self, run: Callable[[str, Town], Awaitable[list[RunStats]]]) -> list[RunStats]:
        """Towns concurrently: one town's database round trips overlap another's pandas work."""
        per_town = await asyncio.gather(*(run(town_id, town) for town_id, town in self.towns.items()))
        return [s for stats in per_town for s in stats]

    async def daily_run(self, now: datetime, days_back: int) -> list[RunStats]:
        async def town_run(town_id: str, town: Town) -> list[RunStats]:
            today = pd.Timestamp(now).tz_convert(town.timezone).date()
            return [await self.recompute(town_id, [today - timedelta(days=k) for k in range(days_back, 0, -1)])]

        return await self._each_town(town_run)

    async def catch_up(self, now: datetime, hours: int, max_days: int) -> list[RunStats]:
        """What the service does at start: an hourly run that first covers what it missed."""
        return await self.hourly_run(now, hours, catchup_max_days=max_days)


async def _none() -> None:
    return None


def _compute(readings: pd.DataFrame, ctx: TownContext, days: list[date], history: pd.DataFrame | None,
             station: pd.DataFrame | None) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    aggs = aggregate_town(readings, ctx, days=days, history=history, station=station)
    frames = {"hourly": aggs.hourly, "daily": aggs.daily, "town_daily": aggs.town_daily}
    return frames, build_lines(aggs)
