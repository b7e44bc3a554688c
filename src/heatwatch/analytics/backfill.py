"""Recomputing a range of days, a chunk of days at a time, for ``heatwatch backfill`` and the bench.

Memory is bounded by the chunk: one town's raw readings over ``chunk_days`` plus the read
context (:func:`heatwatch.analytics.jobs.read_window`), never the whole range. Towns run
concurrently, so one town's database read overlaps the other's pandas work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from .jobs import Analytics, RunStats, chunks
from .last import LastReadings

DEFAULT_CHUNK_DAYS = 14


async def backfill(analytics: Analytics, first: date, last: date, towns: Sequence[str] | None = None,
                   chunk_days: int = DEFAULT_CHUNK_DAYS,
                   progress: Callable[[RunStats], None] | None = None) -> list[RunStats]:
    """Recompute local days ``first``…``last`` (inclusive) of ``towns`` (default: all)."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    towns = list(towns) if towns else list(analytics.towns)
    unknown = [c for c in towns if c not in analytics.towns]
    if unknown:
        raise ValueError(f"unknown town(s) {unknown}; configured: {', '.join(sorted(analytics.towns))}")

    async def one_town(town: str) -> list[RunStats]:
        out = []
        for chunk in chunks(first, last, chunk_days):
            stats = await analytics.recompute(town, chunk)
            if progress is not None:
                progress(stats)
            out.append(stats)
        return out

    per_town = await asyncio.gather(*(one_town(c) for c in towns))
    # The last-value store over the range too: a backfill is also the remedy for readings stored long after
    # they were taken (analytics/last.py). A day either side covers every time zone's local days.
    since = int(datetime.combine(first - timedelta(days=1), time.min, UTC).timestamp() * 1000)
    until = int(datetime.combine(last + timedelta(days=2), time.min, UTC).timestamp() * 1000)
    await LastReadings(analytics.client).refresh(since, int(datetime.now(UTC).timestamp() * 1000), until)
    return [s for town in per_town for s in town]
