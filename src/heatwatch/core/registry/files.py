"""Sensor registry files: CSV (header row of :class:`~heatwatch.core.model.Sensor` field names, UTF-8, ``,``
or ``;``) and GeoJSON (a FeatureCollection of Points ``[longitude, latitude]``, the other fields as
properties, null geometry for an unplaced sensor), chosen by extension. Export then import gives back
the same sensors; errors name the row or the feature."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import RegistryError
from ..model import Sensor, SiteClass
from .validation import FIELDS, NULLABLE, TEXT, validate

CSV_SUFFIXES = (".csv",)
GEOJSON_SUFFIXES = (".geojson", ".json")


# CSV -------------------------------------------------------------------------------------


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest text that parses back to the same double
    if isinstance(value, SiteClass):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    return str(value)


def sensors_to_csv(sensors: Iterable[Sensor]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # RFC 4180
    w.writerow(FIELDS)
    for s in sensors:
        w.writerow([_csv_cell(getattr(s, f)) for f in FIELDS])
    return buf.getvalue()


def sensors_from_csv(text: str, label: str = "CSV") -> list[Sensor]:
    """Sensors from CSV text; ``label`` names the source in error messages.

    Row numbers in errors are file line numbers as a spreadsheet shows them (header = 1).
    A ``;`` separated file (French spreadsheet exports) is accepted too.
    """
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise RegistryError(f"{label}: not valid CSV: {exc}") from None
    if not rows:
        raise RegistryError(f"{label}: empty file, expected a header row with {', '.join(FIELDS)}")
    header = [h.strip() for h in rows[0]]
    unknown = [h for h in header if h not in FIELDS]
    if unknown:
        raise RegistryError(f"{label} row 1: unknown column(s) {unknown}; columns are {', '.join(FIELDS)}")
    missing = [h for h in ("id", "town") if h not in header]
    if missing:
        raise RegistryError(f"{label} row 1: missing column(s) {missing}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise RegistryError(f"{label} row 1: repeated column(s) {dupes}")
    out = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(c == "" for c in row):
            continue  # blank lines, typically at the end of hand-edited files
        if len(row) != len(header):
            raise RegistryError(f"{label} row {lineno}: {len(row)} cells, header has {len(header)}")
        data: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=True):
            if cell == "":
                if name in NULLABLE:
                    data[name] = None
                elif name in TEXT:
                    data[name] = ""
                # else: leave it out, the model default applies
            else:
                data[name] = cell  # pydantic parses numbers, dates, booleans and enums from text
        try:
            out.append(validate(data))
        except ValueError as exc:
            raise RegistryError(f"{label} row {lineno}: {exc}") from None
    return out


# GeoJSON ---------------------------------------------------------------------------------


def _feature(s: Sensor) -> dict[str, Any]:
    props = s.model_dump(mode="json")
    geometry = None
    if s.latitude is not None and s.longitude is not None:
        geometry = {"type": "Point", "coordinates": [s.longitude, s.latitude]}  # RFC 7946: lon, lat
        del props["latitude"], props["longitude"]
    else:
        # A half-known position cannot be a Point; keep whatever is known as properties.
        for k in ("latitude", "longitude"):
            if props[k] is None:
                del props[k]
    return {"type": "Feature", "id": s.id, "geometry": geometry, "properties": props}


def sensors_to_geojson(sensors: Iterable[Sensor]) -> str:
    doc = {"type": "FeatureCollection", "features": [_feature(s) for s in sensors]}
    return json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n"


def _point(geometry: object, where: str) -> tuple[float, float] | None:
    if geometry is None:
        return None
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        raise RegistryError(f"{where}: geometry must be a Point or null")
    coords = geometry.get("coordinates")
    if (
        not isinstance(coords, list)
        or len(coords) not in (2, 3)
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords)
    ):
        raise RegistryError(f"{where}: Point coordinates must be [longitude, latitude]")
    return float(coords[1]), float(coords[0])


def sensors_from_geojson(text: str, label: str = "GeoJSON") -> list[Sensor]:
    """Sensors from a GeoJSON FeatureCollection; errors name the feature by 1-based position."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{label}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(
        doc.get("features"), list
    ):
        raise RegistryError(f"{label}: expected a GeoJSON FeatureCollection")
    out = []
    for n, feat in enumerate(doc["features"], start=1):
        where = f"{label} feature {n}"
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            raise RegistryError(f"{where}: not a GeoJSON Feature")
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            raise RegistryError(f"{where}: properties must be an object")
        unknown = sorted(set(props) - set(FIELDS))
        if unknown:
            raise RegistryError(f"{where}: unknown properties {unknown}; known are {', '.join(FIELDS)}")
        data = dict(props)
        if "id" not in data and isinstance(feat.get("id"), str):
            data["id"] = feat["id"]
        point = _point(feat.get("geometry"), where)
        if point is not None:
            for k, v in zip(("latitude", "longitude"), point, strict=True):
                if data.get(k) is not None and data[k] != v:
                    raise RegistryError(f"{where}: {k} property {data[k]} disagrees with the geometry ({v})")
                data[k] = v
        try:
            out.append(validate(data))
        except ValueError as exc:
            raise RegistryError(f"{where}: {exc}") from None
    return out


def read_sensors(path: Path) -> list[Sensor]:
    """Sensors from a CSV or GeoJSON file, by extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + GEOJSON_SUFFIXES:
        raise RegistryError(f"{path}: unknown file type {suffix!r}; use .csv, .geojson or .json")
    try:
        # newline="": the csv module handles line ends itself; translating them would turn a
        # "\r" inside a quoted cell into "\n".
        with path.open(encoding="utf-8", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from None
    return sensors_from_csv(text, str(path)) if suffix in CSV_SUFFIXES else sensors_from_geojson(text, str(path))


def write_sensors(path: Path, sensors: list[Sensor]) -> None:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        text = sensors_to_csv(sensors)
    elif suffix in GEOJSON_SUFFIXES:
        text = sensors_to_geojson(sensors)
    else:
        raise RegistryError(f"{path}: unknown file type {suffix!r}; use .csv, .geojson or .json")
    # Write then rename, so an interrupted export never leaves half a file under the real name.
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            f.write(text)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RegistryError(f"cannot write {path}: {exc}") from None


def example_files() -> list[tuple[str, str]]:
    """(name, text) of the packaged example registries, sorted by name; empty when there are none."""
    folder = resources.files("heatwatch.data").joinpath("sensors")
    if not folder.is_dir():
        return []
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".csv")), key=lambda f: f.name)
    return [(f"heatwatch/data/sensors/{f.name}", f.read_text(encoding="utf-8")) for f in files]
