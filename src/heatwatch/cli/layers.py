"""``heatwatch layers import --town T --kind K FILE`` / ``list`` / ``remove`` / ``context``: a town's geographic
layers (vegetation, trees, imperviousness, buildings, water, biodiversity, perimeters, population).

``import`` reads a GeoJSON, GeoPackage, Shapefile (or zipped Shapefile), FlatGeobuf, GeoTIFF or occurrence
CSV in any CRS, checks it (docs/science/drivers.md, "Layers"), reprojects it to Lambert-93 and stores it in
``<data_dir>/layers/<town>.gpkg`` under ``--name`` (default: the kind; the same name replaces the layer).
The site context of the town's sensors is recomputed at once. Exit status: 0 done, 2 refused (the message
says why and what to do).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ..core.errors import LayerError, RegistryError
from ..core.layers import LayerKind, LayerStore, town_extent
from ..core.layers.context import site_context
from ..core.layers.io import prepare_file
from ..core.registry import Registry
from ..core.settings import CoreSettings

DEFAULT_SOURCES = {
    LayerKind.buildings: ("IGN BD TOPO", "Etalab-2.0"),
    LayerKind.impervious: ("Copernicus Land Monitoring Service, High Resolution Layer Imperviousness",
                           "Copernicus data policy (free, full and open; attribution)"),
    LayerKind.biodiversity: ("GBIF.org occurrence download", "per record (see its license column; CC0, CC BY or "
                                                            "CC BY-NC)"),
    LayerKind.population: ("INSEE, Filosofi 200 m squares", "Etalab-2.0"),
}


def _fields(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        role, sep, col = p.partition("=")
        if not sep or not role or not col:
            raise LayerError(f"--field {p!r}: write ROLE=COLUMN, e.g. --field height_m=HAUTEUR")
        out[role.strip()] = col.strip()
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="layers_command", required=True, metavar="{import,list,remove,context}")
    p = sub.add_parser("import", help="check a layer file, reproject it to Lambert-93 and store it for a town")
    p.add_argument("file", type=Path, help=".geojson, .gpkg, .shp, .zip, .fgb, .tif or .csv")
    p.add_argument("--town", required=True)
    p.add_argument("--kind", required=True, choices=[k.value for k in LayerKind])
    p.add_argument("--name", default=None, help="layer name (default: the kind); an existing one is replaced")
    p.add_argument("--source", default=None, help="who produced the data (default: by kind, else the file name)")
    p.add_argument("--licence", default=None, help="its licence (default: by kind, else 'unknown')")
    p.add_argument("--crs", default=None, help="the file's CRS when it has none or a wrong one, e.g. EPSG:2154")
    p.add_argument("--source-layer", default=None, help="the layer to read in a file holding several")
    p.add_argument("--field", action="append", default=[], metavar="ROLE=COLUMN",
                   help="read a role from another column, e.g. --field height_m=H_MOY (repeatable)")
    p = sub.add_parser("list", help="list a town's layers (or every town's)")
    p.add_argument("--town", default=None)
    p.add_argument("--json", action="store_true", help="JSON, with each import's report")
    p = sub.add_parser("remove", help="remove a layer")
    p.add_argument("name")
    p.add_argument("--town", required=True)
    p = sub.add_parser("context", help="print the site context of a town's sensors (recomputed if stale)")
    p.add_argument("--town", required=True)
    p.add_argument("--format", choices=["csv", "json"], default="csv")


def _sensors(settings: CoreSettings) -> list:
    try:
        with Registry.from_settings(settings) as reg:
            return reg.list()
    except RegistryError:
        return []


def run(args: argparse.Namespace, settings: CoreSettings) -> int:
    try:
        return _run(args, settings)
    except LayerError as exc:
        print(f"heatwatch layers: {exc}", file=sys.stderr)
        return 2


def _town(settings: CoreSettings, town: str):  # type: ignore[no-untyped-def]
    t = settings.towns.get(town)
    if t is None:
        raise LayerError(f"unknown town {town!r}; known: {', '.join(sorted(settings.towns))}")
    return t


def _run(args: argparse.Namespace, settings: CoreSettings) -> int:
    cmd = args.layers_command
    if cmd == "list":
        towns = [args.town] if args.town else sorted(settings.towns)
        out = []
        for town in towns:
            _town(settings, town)
            for info in LayerStore(settings.layers_dir, town).list():
                out.append({"town": town, **info.describe()})
        if args.json:
            print(json.dumps(out, ensure_ascii=False, indent=1))
        else:
            for d in out:
                n = d.get("features", d.get("cells_with_data"))
                print(f"{d['town']:<12} {d['name']:<20} {d['kind']:<13} {n:>8}  {d['imported_at']}  {d['source']} "
                      f"({d['licence']})")
            if not out:
                print("no layers", file=sys.stderr)
        return 0
    town = _town(settings, args.town)
    store = LayerStore(settings.layers_dir, town.id)
    sensors = _sensors(settings)
    if cmd == "remove":
        store.remove(args.name)
        print(f"removed {args.name} from {town.id}")
        site_context(store, town, sensors)
        return 0
    if cmd == "context":
        data = site_context(store, town, sensors)
        rows = data["sensors"]
        if args.format == "json":
            print(json.dumps(data, ensure_ascii=False, indent=1))
        elif rows:
            w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        return 0
    kind = LayerKind(args.kind)
    extent = town_extent(town, sensors)
    prepared = prepare_file(args.file, kind, extent, crs=args.crs, fields=_fields(args.field),
                            source_layer=args.source_layer)
    default_source, default_licence = DEFAULT_SOURCES.get(kind, (args.file.name, "unknown"))
    info = store.add(prepared, args.name, source=args.source or default_source,
                     licence=args.licence or default_licence, source_file=args.file.name)
    rep = info.report
    dropped = {k: v for k, v in rep.items() if (k.startswith("dropped") or k in ("repaired", "crown_from_height",
                                                                                  "height_from_floors",
                                                                                  "cells_out_of_range_as_nodata"))
               and v}
    n = f"{info.features} cells with data" if info.raster else f"{info.features} features"
    print(f"imported {info.name} ({kind}) into {town.id}: {n}, from {info.source_crs} to EPSG:2154"
          + (f"; {', '.join(f'{k} {v}' for k, v in dropped.items())}" if dropped else ""))
    for note in rep.get("notes", []):
        print(f"  note: {note}")
    ctx = site_context(store, town, sensors)
    print(f"site context recomputed for {len(ctx['sensors'])} sensors")
    return 0
