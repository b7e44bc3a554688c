"""``heatwatch backfill --from D --to D [--town T]``: recompute aggregates over a range, with a progress bar."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import date

from tqdm import tqdm

from heatwatch.core.influx import InfluxClient
from heatwatch.core.registry import Registry
from heatwatch.core.settings import AnalyticsSettings

from .archives import Archiver
from .backfill import DEFAULT_CHUNK_DAYS, backfill
from .jobs import Analytics, RunStats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_", metavar="D", required=True, type=date.fromisoformat,
                        help="first local day, YYYY-MM-DD")
    parser.add_argument("--to", metavar="D", required=True, type=date.fromisoformat,
                        help="last local day, YYYY-MM-DD (included)")
    parser.add_argument("--town", metavar="T", action="append",
                        help="town id (repeatable); default: every configured town")
    parser.add_argument("--chunk-days", type=int, default=DEFAULT_CHUNK_DAYS,
                        help=f"days recomputed per step, bounds memory (default {DEFAULT_CHUNK_DAYS})")


async def run_backfill(settings: AnalyticsSettings, first: date, last: date, towns: list[str] | None,
                       chunk_days: int, show: bool = True) -> list[RunStats]:
    registry = Registry.from_settings(settings)
    towns = towns or list(settings.towns)
    total = ((last - first).days + 1) * len(towns)
    try:
        async with InfluxClient.from_settings(settings, max_connections=4) as client:
            await client.setup(settings.raw_retention)
            analytics = Analytics(client, settings.towns, registry, data_dir=settings.data_dir)
            with tqdm(total=total, unit="day", desc="backfill", disable=not show) as bar:
                def step(stats: RunStats) -> None:
                    bar.update(len(stats.days))
                    bar.set_postfix(town=stats.town, readings=stats.readings)

                stats = await backfill(analytics, first, last, towns, chunk_days, step)
            if settings.analytics_archives:
                # Archived months of the range are rebuilt, re-issued when the backfill changed them.
                archiver = Archiver(client, settings.towns, settings.data_dir,
                                    delay_days=settings.analytics_archive_delay_days, registry=registry)
                for outcome in await archiver.recheck(towns, first, last):
                    if outcome.action == "issued" and show:
                        print(f"archive {outcome.town} {outcome.month} re-issued as v{outcome.version}: {outcome.note}")
            return stats
    finally:
        registry.close()


def run(args: argparse.Namespace, settings: AnalyticsSettings) -> int:
    if args.chunk_days < 1:
        raise SystemExit("--chunk-days must be at least 1")
    t0 = time.perf_counter()
    try:
        stats = asyncio.run(run_backfill(settings, args.from_, args.to, args.town, args.chunk_days))
    except ValueError as exc:
        print(f"heatwatch backfill: {exc}")
        return 2
    points = sum(sum(s.points.values()) for s in stats)
    readings = sum(s.readings for s in stats)
    print(f"backfill {args.from_}..{args.to}: {readings} readings read, {points} points written "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0
