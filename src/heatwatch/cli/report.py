"""``heatwatch report --town T --season YYYY [--out DIR] [--pdf]``: the seasonal report of a town.

Reads the aggregates from InfluxDB, the sensor registry and the recorded interventions, and
writes a self-contained HTML file (and a PDF with ``--pdf``). Exit status: 0 written, 1 the
database could not be read, 2 bad arguments (unknown town, season out of range).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.errors import InfluxError
from ..core.settings import ApiSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--town", required=True, help="town id, e.g. vitre or saint-omer")
    parser.add_argument("--season", required=True, type=int, help="year of the summer (1 June – 15 September)")
    parser.add_argument("--out", type=Path, default=Path("."), help="output folder (default: current folder)")
    parser.add_argument("--pdf", action="store_true", help="also write a PDF (figure-based, matplotlib)")


def run(args: argparse.Namespace, settings: ApiSettings) -> int:
    if args.town not in settings.towns:
        print(f"heatwatch report: unknown town {args.town!r}; known: {', '.join(sorted(settings.towns))}",
              file=sys.stderr)
        return 2
    if not 2000 <= args.season <= 2100:
        print(f"heatwatch report: season {args.season} is not a year between 2000 and 2100", file=sys.stderr)
        return 2
    from ..api.report import write_report
    from ..core.registry import Registry

    registry = Registry(settings.registry_path, towns=list(settings.towns)) if settings.registry_path.exists() \
        else None
    try:
        paths = write_report(settings, args.town, args.season, args.out, pdf=args.pdf, registry=registry)
    except InfluxError as exc:
        print(f"heatwatch report: cannot read the aggregates from InfluxDB: {exc}", file=sys.stderr)
        return 1
    finally:
        if registry is not None:
            registry.close()
    for p in paths:
        print(p)
    return 0
