"""``heatwatch sensor-community import FILE... [--town T] [--radius-km R]`` and ``heatwatch sensor-community pull
[--town T] [--url URL]``: sensor.community stations of the towns' boxes as citizen sensors (ODbL 1.0).

``import`` reads archive files (https://archive.sensor.community: a day's ``<day>_<type>_sensor_<id>.csv``, or a
monthly ``csv_per_month`` file, plain, gzipped or zipped); ``pull`` asks the data API once (what ``heatwatch
analytics`` does every ``HEATWATCH_SENSOR_COMMUNITY_INTERVAL_S`` when ``HEATWATCH_SENSOR_COMMUNITY_URL`` is set).
Both register new stations and store their readings, and print what was refused and why; aggregates of past days
change once recomputed: the command prints the ``heatwatch backfill`` to run (docs/citizens.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from heatwatch.core.influx import InfluxClient
from heatwatch.core.registry import Registry
from heatwatch.core.settings import AnalyticsSettings

from .sensorcommunity import ATTRIBUTION, ImportReport, boxes_for, import_files, pull


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("import", help="import sensor.community archive files (;-separated CSV, .gz or .zip)")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--town", default=None, help="only this town's box (default: every town)")
    p.add_argument("--radius-km", type=float, default=None,
                   help="half the side of each town's box (default HEATWATCH_SENSOR_COMMUNITY_RADIUS_KM)")
    p = sub.add_parser("pull", help="pull the data API once for the towns' boxes")
    p.add_argument("--town", default=None)
    p.add_argument("--url", default=None, help="the API's base URL (default HEATWATCH_SENSOR_COMMUNITY_URL)")
    p.add_argument("--radius-km", type=float, default=None)


def _print(report: ImportReport, settings: AnalyticsSettings) -> None:
    print(f"{report.rows} row(s) read, {report.written} reading(s) stored, {len(report.new_sensors)} new station(s)"
          + (f", {len(report.moved_sensors)} moved" if report.moved_sensors else ""))
    for reason, n in sorted(report.skipped.items()):
        print(f"  refused {reason}: {n}")
    for town in sorted(report.span):
        days = report.days(town, settings.towns[town].timezone)
        if days is not None:
            print(f"  {town}: readings from {days[0]} to {days[1]}; recompute with: heatwatch backfill --from "
                  f"{days[0]} --to {days[1]} --town {town}")
    print(f"data: {ATTRIBUTION}")


def run(args: argparse.Namespace, settings: AnalyticsSettings) -> int:
    if args.town is not None and args.town not in settings.towns:
        print(f"heatwatch sensor-community: unknown town {args.town!r}; configured: {', '.join(settings.towns)}",
              file=sys.stderr)
        return 2
    boxes = boxes_for(settings.towns, args.radius_km or settings.sensor_community_radius_km, args.town)

    async def go() -> ImportReport:
        with Registry.from_settings(settings) as registry:
            async with InfluxClient.from_settings(settings, max_connections=4) as client:
                await client.setup(settings.raw_retention)
                if args.action == "import":
                    return await import_files(client, registry, args.files, boxes)
                return await pull(client, registry, url, boxes)

    url = ""
    if args.action == "pull":
        url = args.url or settings.sensor_community_url or ""
        if not url:
            print("heatwatch sensor-community pull: no API URL (--url or HEATWATCH_SENSOR_COMMUNITY_URL, e.g. "
                  "https://data.sensor.community)", file=sys.stderr)
            return 2
    else:
        for f in args.files:
            if not f.is_file():
                print(f"heatwatch sensor-community import: no such file {f}", file=sys.stderr)
                return 2
    try:
        report = asyncio.run(go())
    except ValueError as exc:
        print(f"heatwatch sensor-community: {exc}", file=sys.stderr)
        return 2
    _print(report, settings)
    return 1 if args.action == "pull" and report.skipped.get("api_error") else 0
