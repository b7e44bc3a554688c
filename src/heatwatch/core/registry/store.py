"""The sensor registry in one SQLite file (``settings.registry_path``), shared by ingest and the api.

They may be separate processes: WAL mode lets readers and the writer proceed together. Each sensor is
kept whole as JSON next to a few indexed columns, so a field added to :class:`Sensor` needs no
migration.

Ingest asks two questions per message on its hot path — "which sensor is this device?"
(:meth:`Registry.resolve`) and "is this sensor known?" (:meth:`Registry.ensure`) — so both are
answered from an in-memory snapshot. The snapshot is dropped on this object's own writes and,
for writes by another process, re-validated at most every ``recheck_s`` seconds with SQLite's
``PRAGMA data_version`` (a counter that moves when another connection commits).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RegistryError
from ..model import Sensor, normalize_eui
from ..settings import CoreSettings
from .files import example_files, read_sensors, sensors_from_csv, write_sensors
from .validation import validate

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
        self._all: list[Sensor] | None = None
        self._all_version = -1
        # list()'s answers per (town, include_retired), picked from _all (the list object they were picked from).
        self._picked: dict[tuple[str | None, bool], list[Sensor]] = {}
        self._picked_from: list[Sensor] | None = None
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
        """The sensors (of a town), ordered by town and id. The objects are shared between calls until the
        registry changes: read them, never change them (``model_copy(update=…)`` makes a changed one)."""
        everyone = self._everyone()
        key = (town, include_retired)
        picked = self._picked.get(key) if self._picked_from is everyone else None
        if picked is None:
            if self._picked_from is not everyone:
                self._picked, self._picked_from = {}, everyone
            picked = self._picked[key] = [s for s in everyone if (town is None or s.town == town)
                                          and (include_retired or not s.retired)]
        return list(picked)  # a list of the caller's own: the one kept is picked once per change of the registry

    def _everyone(self) -> list[Sensor]:
        """Every sensor, read again only when the file changed: the api asks at each uncached answer, and reading
        200 sensors costs ~1 ms where asking SQLite whether anything changed costs ~10 µs. ``data_version`` moves
        with every commit of another connection (a command, another service); this one's own writes drop the list."""
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if self._all is None or version != self._all_version:
                rows = self._db.execute("SELECT data FROM sensor ORDER BY town, id").fetchall()
                self._all = [Sensor.model_validate_json(r[0]) for r in rows]
                self._all_version = version
            return self._all

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
        self._all = None

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
            if cur.rowcount == 1:
                self._all = None
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
