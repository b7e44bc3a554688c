"""``heatwatch archives build --from YYYY-MM --to YYYY-MM [--town T] [--force]`` and ``heatwatch archives list``:
(re)build the monthly archives of a range, list what is archived (docs/interop.md)."""

from __future__ import annotations

import argparse
import asyncio

from heatwatch.core import archives as A
from heatwatch.core.influx import InfluxClient
from heatwatch.core.registry import Registry
from heatwatch.core.settings import AnalyticsSettings

from .archives import Archiver, archive_months


def _month(text: str) -> str:
    try:
        A.parse_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="archive the months of a range (missing ones; all with --force)")
    b.add_argument("--from", dest="from_", metavar="YYYY-MM", required=True, type=_month)
    b.add_argument("--to", metavar="YYYY-MM", required=True, type=_month, help="last month (included)")
    b.add_argument("--town", metavar="T", action="append", help="town id (repeatable); default: every town")
    b.add_argument("--force", action="store_true",
                   help="rebuild archived months too: re-issued as a new version only where the data changed")
    sub.add_parser("list", help="every archived month with its current version")


async def _build(settings: AnalyticsSettings, args: argparse.Namespace) -> list:
    towns = args.town or list(settings.towns)
    unknown = [t for t in towns if t not in settings.towns]
    if unknown:
        raise ValueError(f"unknown town(s): {', '.join(unknown)}")
    registry = Registry.from_settings(settings)  # the sensors' network and trust in the files
    try:
        async with InfluxClient.from_settings(settings, max_connections=4) as client:
            archiver = Archiver(client, settings.towns, settings.data_dir,
                                delay_days=settings.analytics_archive_delay_days, registry=registry)
            return await archive_months(archiver, towns, args.from_, args.to, force=args.force)
    finally:
        registry.close()


def run(args: argparse.Namespace, settings: AnalyticsSettings) -> int:
    if args.action == "list":
        for m in A.list_manifests(settings.data_dir):
            v = m.current
            size = sum(f.bytes for f in v.files) if v else 0
            print(f"{m.town} {m.month} v{v.version if v else '-'} issued {v.issued if v else '-'} {size} bytes"
                  f"{'' if not v or v.version == 1 else ' — ' + v.note}")
        return 0
    if args.from_ > args.to:
        print("heatwatch archives: --from is after --to")
        return 2
    try:
        outcomes = asyncio.run(_build(settings, args))
    except ValueError as exc:
        print(f"heatwatch archives: {exc}")
        return 2
    for o in outcomes:
        print(f"{o.town} {o.month}: {o.action}" + (f" v{o.version}" if o.version else "") +
              (f" — {o.note}" if o.note and o.action == "issued" else "") +
              f" ({', '.join(f'{k} {v}' for k, v in o.rows.items())} rows)")
    return 0
