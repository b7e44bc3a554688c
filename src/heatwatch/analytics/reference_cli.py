"""``heatwatch reference import FILE`` and ``heatwatch reference list``: official station series.

``import`` reads a Météo-France hourly climatological file (``H_<dept>_<period>.csv.gz`` from
data.gouv.fr, or the same CSV uncompressed) and stores the hourly T/TN/TX/U of the stations the
towns are configured with (``[town.reference] station`` in the towns file), or of the stations
named with ``--station``, or of every station with ``--all``. Importing again overwrites the same
points. The aggregates of past days change only when they are recomputed: run ``heatwatch
backfill`` over the imported period afterwards (the command prints the range).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from heatwatch.core.influx import InfluxClient
from heatwatch.core.settings import AnalyticsSettings

from .reference import ImportResult, ReferenceFileError, import_file, station_coverage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("import", help="import a Météo-France hourly climatological file (H_<dept>_*.csv[.gz])")
    p.add_argument("file", type=Path)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--station", action="append", metavar="NUM_POSTE",
                       help="station to import (repeatable); default: the stations configured for the towns")
    which.add_argument("--all", action="store_true", help="import every station of the file")
    sub.add_parser("list", help="stations stored, with their first and last hour")


def configured_stations(settings: AnalyticsSettings) -> dict[str, list[str]]:
    """Station id → towns that use it."""
    out: dict[str, list[str]] = {}
    for town in settings.towns.values():
        if town.reference.station:
            out.setdefault(town.reference.station, []).append(town.id)
    return out


async def _import(settings: AnalyticsSettings, path: Path, stations: list[str] | None) -> ImportResult:
    async with InfluxClient.from_settings(settings, max_connections=4) as client:
        await client.setup(settings.raw_retention)
        return await import_file(client, path, stations)


def run(args: argparse.Namespace, settings: AnalyticsSettings) -> int:
    if args.action == "list":
        async def listing() -> list[dict[str, object]]:
            async with InfluxClient.from_settings(settings) as client:
                return await station_coverage(client)

        rows = asyncio.run(listing())
        users = configured_stations(settings)
        if not rows:
            print("no station series stored; import one with: heatwatch reference import FILE")
        for r in rows:
            towns = ", ".join(users.get(str(r["station"]), [])) or "not configured for any town"
            print(f"{r['station']}: {r['rows']} hours, {r['first']} .. {r['last']} ({towns})")
        return 0

    if not args.file.is_file():
        print(f"heatwatch reference import: no such file {args.file}")
        return 2
    users = configured_stations(settings)
    wanted = None if args.all else (args.station or sorted(users))
    if wanted is not None and not wanted:
        print("heatwatch reference import: no town has [town.reference] station set; name one with --station")
        return 2
    try:
        result = asyncio.run(_import(settings, args.file, wanted))
    except ReferenceFileError as exc:
        print(f"heatwatch reference import: {exc}")
        return 2
    if not result.stations:
        print(f"{args.file.name}: {result.rows_read} rows, none from station(s) {', '.join(wanted or [])}")
        return 1
    for s in result.stations.values():
        towns = ", ".join(users.get(s.station, [])) or "no town"
        print(f"{s.station} {s.name} ({s.latitude}, {s.longitude}, {s.altitude_m} m): {s.rows} hours "
              f"{s.first} .. {s.last}, {s.doubtful} with a doubtful value (code 2: stored, not used) — used by {towns}")
    first = min(s.first for s in result.stations.values() if s.first is not None)
    last = max(s.last for s in result.stations.values() if s.last is not None)
    print(f"{result.points} points stored from {result.rows_read} rows. Recompute the period to use them: "
          f"heatwatch backfill --from {first.date()} --to {last.date()}")
    return 0
