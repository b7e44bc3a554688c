"""The sensor registry: where each sensor is, what it is, and which network identity it uses.

Stored in one SQLite file (``settings.registry_path``) shared by ingest and the api, which may
be separate processes: WAL mode lets readers and the writer proceed together. Each sensor is
kept whole as JSON next to a few indexed columns, so a field added to :class:`Sensor` needs no
migration.

Ingest asks two questions per message on its hot path — "which sensor is this device?"
(:meth:`Registry.resolve`) and "is this sensor known?" (:meth:`Registry.ensure`) — so both are
answered from an in-memory snapshot. The snapshot is dropped on this object's own writes and,
for writes by another process, re-validated at most every ``recheck_s`` seconds with SQLite's
``PRAGMA data_version`` (a counter that moves when another connection commits).

Files: CSV (header row of :class:`Sensor` field names, UTF-8) and GeoJSON (a FeatureCollection
of Points ``[longitude, latitude]``, the other fields as properties, null geometry for an
unplaced sensor), chosen by extension. Export then import gives back the same sensors.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
import types
import typing
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import RegistryError
from .model import (
    RESERVED_IDS,
    SENSOR_ID_RE,
    TOWN_ID_RE,
    Sensor,
    SiteClass,
    normalize_eui,
    valid_sensor_id,
    valid_town_id,
)
from .settings import CoreSettings

FIELDS: tuple[str, ...] = tuple(Sensor.model_fields)
CSV_SUFFIXES = (".csv",)
GEOJSON_SUFFIXES = (".geojson", ".json")


def _optional(name: str) -> bool:
    ann = Sensor.model_fields[name].annotation
    return typing.get_origin(ann) in (typing.Union, types.UnionType) and type(None) in typing.get_args(ann)


# Optional text fields: an empty string and "absent" are the same thing to a user and cannot be
# told apart in CSV, so the registry stores None for both (which keeps round trips exact).
_OPTIONAL_STR = tuple(
    n for n in FIELDS if _optional(n) and str in typing.get_args(Sensor.model_fields[n].annotation)
)
_NULLABLE = frozenset(n for n in FIELDS if _optional(n))
_TEXT = frozenset(n for n in FIELDS if Sensor.model_fields[n].annotation is str)


def normalize(sensor: Sensor) -> Sensor:
    """The form the registry stores: empty optional text becomes None."""
    empty = {n: None for n in _OPTIONAL_STR if getattr(sensor, n) == ""}
    return sensor.model_copy(update=empty) if empty else sensor


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'sensor'}: {e['msg']}" for e in exc.errors())


def canonical_identity(identity: str | None) -> str | None:
    """A network identity as the registry stores it: a bare DevEUI, in any case and with any separators,
    becomes 16 upper-case hex digits (so two spellings of one device cannot both be registered); any
    other identity (a TTS device id, ``eui-...`` included, a ChirpStack device name) is kept as written."""
    if not identity:
        return identity
    if identity[:4].lower() != "eui-":
        eui = normalize_eui(identity)
        if eui is not None:
            return eui
    return identity.strip()


def validate(data: dict[str, Any]) -> Sensor:
    """A Sensor from raw fields, or ValueError with a readable reason.

    Ids are checked with fullmatch here because pydantic's ``pattern`` only searches: it takes
    ``"bad id"`` or ``"Vitré"`` as valid, and neither may become an InfluxDB tag. A sensor id may
    not be one of the words heatwatch uses as topic levels (:data:`RESERVED_IDS`): ``heat/alerts/vitre``
    must never read as sensor ``vitre`` of town ``alerts``, nor a sensor account's topic be an alert's.
    """
    try:
        s = Sensor.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_errors(exc)) from None
    if not valid_sensor_id(s.id):
        raise ValueError(f"id: {s.id!r} is not a valid sensor id ({SENSOR_ID_RE.pattern})")
    if s.id.lower() in RESERVED_IDS:
        raise ValueError(f"id: {s.id!r} is a word heatwatch reserves for its topics "
                         f"({', '.join(sorted(RESERVED_IDS))})")
    if not valid_town_id(s.town):
        raise ValueError(f"town: {s.town!r} is not a valid town id ({TOWN_ID_RE.pattern})")
    identity = canonical_identity(s.mqtt_identity)
    if identity != s.mqtt_identity:
        s = s.model_copy(update={"mqtt_identity": identity})
    return normalize(s)


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
                if name in _NULLABLE:
                    data[name] = None
                elif name in _TEXT:
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


# The registry ----------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sensor (
    id TEXT PRIMARY KEY,
    town TEXT NOT NULL,
    mqtt_identity TEXT,
    retired INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sensor_town ON sensor(town);
-- One active sensor per network identity, or resolve() would be ambiguous. A retired
-- sensor releases its identity so the device can be reused.
CREATE UNIQUE INDEX IF NOT EXISTS sensor_identity ON sensor(mqtt_identity)
    WHERE mqtt_identity IS NOT NULL AND retired = 0;
"""


@dataclass(slots=True)
class _Snapshot:
    places: dict[str, tuple[str, str]] = field(default_factory=dict)
    profiles: dict[str, str | None] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    homes: dict[str, str] = field(default_factory=dict)  # sensor id -> its town


class Registry:
    """The sensor registry in a SQLite file. Thread-safe: one connection behind a lock."""

    def __init__(self, path: Path, *, towns: Collection[str] | None = None, recheck_s: float = 1.0) -> None:
        self.path = Path(path)
        self.towns = frozenset(towns) if towns is not None else None
        self.recheck_s = recheck_s
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open sensor registry {self.path}: {exc}") from None
        self._snap: _Snapshot | None = None
        self._version = -1
        self._checked = 0.0

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> Registry:
        """The registry of ``settings.data_dir``, knowing the configured towns."""
        return cls(settings.registry_path, towns=settings.towns.keys())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Reads -------------------------------------------------------------------------------

    def get(self, sensor_id: str) -> Sensor | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM sensor WHERE id = ?", (sensor_id,)).fetchone()
        return Sensor.model_validate_json(row[0]) if row else None

    def list(self, town: str | None = None, include_retired: bool = False) -> list[Sensor]:
        sql = "SELECT data FROM sensor WHERE 1=1"
        params: list[object] = []
        if town is not None:
            sql += " AND town = ?"
            params.append(town)
        if not include_retired:
            sql += " AND retired = 0"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY town, id", params).fetchall()
        return [Sensor.model_validate_json(r[0]) for r in rows]

    def resolve(self, identity: str) -> tuple[str, str] | None:
        """(town, sensor) for a network identity (a DevEUI as 16 upper-case hex digits, a TTS device_id, a
        ChirpStack device name) or a sensor id; None when unknown."""
        return self._snapshot().places.get(identity)

    def town_of(self, sensor_id: str) -> str | None:
        """The town a registered sensor belongs to (retired ones included); None for an unknown id."""
        return self._snapshot().homes.get(sensor_id)

    def homes(self) -> Mapping[str, str]:
        """Sensor id → town of every registered sensor, as of now (ingest reads it once per batch)."""
        return self._snapshot().homes

    def device_profile(self, identity: str) -> str | None:
        """The device profile named for the sensor an identity resolves to (TTS decoder hook)."""
        return self._snapshot().profiles.get(identity)

    def _snapshot(self) -> _Snapshot:
        snap = self._snap
        if snap is not None and time.monotonic() - self._checked < self.recheck_s:
            return snap
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            self._checked = time.monotonic()
            if self._snap is not None and version == self._version:
                return self._snap
            rows = self._db.execute("SELECT data FROM sensor").fetchall()
            sensors = [Sensor.model_validate_json(r[0]) for r in rows]
            new = _Snapshot(known={s.id for s in sensors}, homes={s.id: s.town for s in sensors})
            for s in sensors:
                new.places[s.id] = (s.town, s.id)
                new.profiles[s.id] = s.device_profile
            # A declared network identity wins over a sensor id that happens to be spelled the same;
            # one naming a DevEUI (bare or as ``eui-<deveui>``) is also found by that DevEUI.
            for s in sensors:
                if s.mqtt_identity and not s.retired:
                    for key in {s.mqtt_identity, normalize_eui(s.mqtt_identity) or s.mqtt_identity}:
                        new.places[key] = (s.town, s.id)
                        new.profiles[key] = s.device_profile
            self._snap, self._version = new, version
            return new

    def _invalidate(self) -> None:
        self._snap = None

    # Writes ------------------------------------------------------------------------------

    def _check_town(self, sensor: Sensor, where: str = "") -> None:
        if self.towns is not None and sensor.town not in self.towns:
            raise RegistryError(f"{where}sensor {sensor.id!r}: unknown town {sensor.town!r}; "
                                f"configured: {', '.join(sorted(self.towns))}")
        if self.towns is not None and sensor.id in self.towns:
            # heat/<town>/<sensor> would then also read as another town's topic level.
            raise RegistryError(f"{where}sensor {sensor.id!r}: a sensor id cannot be a town id")

    def _valid(self, sensor: Sensor, where: str = "") -> Sensor:
        try:
            sensor = validate(sensor.model_dump())
        except ValueError as exc:
            raise RegistryError(f"{where}sensor {sensor.id!r}: {exc}") from None
        self._check_town(sensor, where)
        return sensor

    def _write(self, sensor: Sensor) -> None:
        eui = normalize_eui(sensor.mqtt_identity) if sensor.mqtt_identity and not sensor.retired else None
        if eui is not None:
            # "eui-a840..." and "A840..." are one device: the unique index sees two strings.
            for other, identity in self._db.execute(
                    "SELECT id, mqtt_identity FROM sensor WHERE mqtt_identity IS NOT NULL AND retired = 0 AND id != ?",
                    (sensor.id,)):
                if normalize_eui(identity) == eui:
                    raise RegistryError(f"sensor {sensor.id!r}: DevEUI {eui} already belongs to active sensor "
                                        f"{other!r} (as {identity!r})")
        try:
            self._db.execute(
                "INSERT INTO sensor (id, town, mqtt_identity, retired, data) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET town = excluded.town, mqtt_identity = excluded.mqtt_identity,"
                " retired = excluded.retired, data = excluded.data",
                (sensor.id, sensor.town, sensor.mqtt_identity, int(sensor.retired), sensor.model_dump_json()),
            )
        except sqlite3.IntegrityError:
            other = self._db.execute(
                "SELECT id FROM sensor WHERE mqtt_identity = ? AND retired = 0 AND id != ?",
                (sensor.mqtt_identity, sensor.id),
            ).fetchone()
            raise RegistryError(
                f"sensor {sensor.id!r}: network identity {sensor.mqtt_identity!r} already belongs to active "
                f"sensor {other[0] if other else '?'!r}"
            ) from None

    def upsert(self, sensor: Sensor) -> None:
        sensor = self._valid(sensor)
        with self._lock:
            try:
                self._write(sensor)
            finally:
                self._invalidate()

    def upsert_many(self, sensors: Iterable[Sensor], where: str = "") -> int:
        """Insert or replace all, in one transaction: all of them or none."""
        sensors = [self._valid(s, where) for s in sensors]
        seen: set[str] = set()
        for s in sensors:
            if s.id in seen:
                raise RegistryError(f"{where}sensor {s.id!r} appears twice")
            seen.add(s.id)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for s in sensors:
                    self._write(s)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._invalidate()
        return len(sensors)

    def retire(self, sensor_id: str) -> None:
        with self._lock:
            sensor = self.get(sensor_id)
            if sensor is None:
                raise RegistryError(f"no sensor {sensor_id!r} in the registry")
            self.upsert(sensor.model_copy(update={"retired": True}))

    def ensure(self, town: str, sensor_id: str) -> bool:
        """Register an unknown sensor as unplaced; True if it was new. A set lookup when already known.

        A sensor id already registered in another town is left alone (ids are global).
        """
        if sensor_id in self._snapshot().known:
            return False
        try:
            sensor = validate({"id": sensor_id, "town": town})
        except ValueError as exc:
            raise RegistryError(f"cannot register sensor {sensor_id!r} of {town!r}: {exc}") from None
        self._check_town(sensor)
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO sensor (id, town, mqtt_identity, retired, data) VALUES (?, ?, NULL, 0, ?)",
                (sensor.id, sensor.town, sensor.model_dump_json()),
            )
            # Patch the snapshot instead of dropping it: a burst of new sensors (first start,
            # simulator) would otherwise reload the whole table once per sensor.
            snap = self._snapshot()
            if cur.rowcount == 1:
                snap.places.setdefault(sensor.id, (sensor.town, sensor.id))
                snap.profiles.setdefault(sensor.id, None)
                snap.homes.setdefault(sensor.id, sensor.town)
            snap.known.add(sensor.id)
            return cur.rowcount == 1

    # Files -------------------------------------------------------------------------------

    def import_file(self, path: Path) -> int:
        """Insert or replace the sensors of a CSV/GeoJSON file, atomically. Sensors not in it are kept."""
        return self.upsert_many(read_sensors(path), where=f"{path}: ")

    def export_file(self, path: Path, town: str | None = None) -> int:
        """Write every sensor (retired ones included, so the file is a full backup), or one town's."""
        sensors = self.list(town, include_retired=True)
        write_sensors(path, sensors)
        return len(sensors)

    def load_examples(self) -> int:
        """Import the packaged example registries (``heatwatch/data/sensors/*.csv``); how many sensors."""
        total = 0
        for name, text in example_files():
            total += self.upsert_many(sensors_from_csv(text, name), where=f"{name}: ")
        return total


def example_files() -> list[tuple[str, str]]:
    """(name, text) of the packaged example registries, sorted by name; empty when there are none."""
    folder = resources.files("heatwatch.data").joinpath("sensors")
    if not folder.is_dir():
        return []
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".csv")), key=lambda f: f.name)
    return [(f"heatwatch/data/sensors/{f.name}", f.read_text(encoding="utf-8")) for f in files]
