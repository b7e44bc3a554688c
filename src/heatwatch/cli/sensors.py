"""``heatwatch sensors import FILE`` / ``export FILE [--town T]`` / ``list [--town T] [--all]``.

The file type (CSV or GeoJSON) comes from the extension. Import is all-or-nothing: one bad
row and nothing is written, with the row number and the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.errors import ConfigError, RegistryError
from ..core.registry import Registry
from ..core.settings import Settings

# Non-LoRaWAN sensors name their payload format as profile (see data/sensors/README.md).
_FORMAT_PROFILES = frozenset({"native", "json", "senml"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sensors_command", required=True, metavar="{import,export,list}")
    p = sub.add_parser("import", help="insert or update sensors from a CSV or GeoJSON file")
    p.add_argument("file", type=Path, help="a .csv, .geojson or .json file")
    p = sub.add_parser("export", help="write the registry to a CSV or GeoJSON file")
    p.add_argument("file", type=Path, help="a .csv, .geojson or .json file")
    p.add_argument("--town", default=None, help="only this town's sensors")
    p = sub.add_parser("list", help="print the registry")
    p.add_argument("--town", default=None, help="only this town's sensors")
    p.add_argument("--all", action="store_true", help="include retired sensors")


def _unknown_profiles(registry: Registry) -> list[str]:
    """Sensors naming a device profile that does not exist: their uplinks would fall back to guessing."""
    try:
        from ..ingest.decoders.profiles import default_profiles

        known = default_profiles()
    except (ImportError, ConfigError):
        return []
    return [
        f"{s.id} ({s.device_profile})"
        for s in registry.list(include_retired=False)
        if s.device_profile and s.device_profile not in known and s.device_profile not in _FORMAT_PROFILES
    ]


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        towns = list(settings.towns)
        with Registry(settings.registry_path, towns=towns) as registry:
            if args.sensors_command == "import":
                n = registry.import_file(args.file)
                print(f"imported {n} sensor(s) from {args.file} into {settings.registry_path}")
                odd = _unknown_profiles(registry)
                if odd:
                    print(f"warning: unknown device profile for {', '.join(odd)}", file=sys.stderr)
            elif args.sensors_command == "export":
                if args.town is not None and args.town not in towns:
                    print(f"heatwatch sensors: unknown town {args.town!r}; configured: {', '.join(towns)}",
                          file=sys.stderr)
                    return 2
                n = registry.export_file(args.file, town=args.town)
                print(f"exported {n} sensor(s) to {args.file}")
            else:
                for s in registry.list(args.town, include_retired=args.all):
                    placed = s.latitude is not None and s.longitude is not None
                    where = f"{s.latitude:.5f},{s.longitude:.5f}" if placed else "unplaced"
                    flags = " retired" if s.retired else ""
                    print(f"{s.town}\t{s.id}\t{s.site_class.value}\t{where}\t{s.name}{flags}")
    except RegistryError as exc:
        print(f"heatwatch sensors: {exc}", file=sys.stderr)
        return 1
    return 0
