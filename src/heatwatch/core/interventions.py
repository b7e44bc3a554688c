"""Interventions on the urban fabric (tree planting, de-sealing, shading, water features) whose
effect on the heat island the api evaluates against control sensors.

Stored in their own SQLite file, ``<data_dir>/interventions.sqlite``, next to the sensor
registry but not inside it: the registry's schema belongs to the registry module and is read on
ingest's hot path, while interventions are a few rows written by hand. WAL mode, one short
connection per call: several api workers may share the file.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from .model import SENSOR_ID_RE, TOWN_ID_RE, valid_sensor_id

FILENAME = "interventions.sqlite"


class InterventionKind(StrEnum):
    tree_planting = "tree_planting"
    de_sealing = "de_sealing"  # désimperméabilisation
    shading = "shading"
    water_feature = "water_feature"
    other = "other"


class InterventionIn(BaseModel):
    """What a technician records.

    The works run from ``start`` to ``end`` (local days, inclusive); all of those days are left out
    of the effect evaluation, which compares the days before ``start`` with the days after ``end``.
    ``date`` is the older one-day form, kept for compatibility: it is the day the works ended
    (``end``), and alone it means one-day works (``start`` = ``end`` = ``date``). Works still in
    progress are recorded with ``start`` only; their effect can be evaluated once ``end`` is set
    (``PATCH /v1/interventions/{id}``).
    """

    town: str = Field(pattern=f"^{TOWN_ID_RE.pattern}$", max_length=64, examples=["saint-omer"])
    site: str = Field(min_length=1, max_length=200, description="site name, e.g. 'Cour de l'école Jean Macé'")
    sensors: list[str] = Field(min_length=1, max_length=50,
                               description="sensors at the site, whose readings the intervention should change")
    controls: list[str] | None = Field(
        default=None, max_length=200,
        description="control sensors; default: the town's other sensors of the same Local Climate Zone (else of the "
                    "same site class), placed, not a reference, not concerned by another intervention in the window")
    start: dt.date | None = Field(default=None, description="first local day of the works (default: `end`)")
    end: dt.date | None = Field(default=None, description="last local day of the works; null while they last")
    date: dt.date | None = Field(default=None, description="the day the works ended: same as `end` (older form, "
                                                          "kept for compatibility)")
    kind: InterventionKind
    note: str = Field(default="", max_length=2000)
    canopy_points: float | None = Field(
        default=None, ge=-100, le=100,
        description="change the works made to tree canopy within 100 m of the treated sensors, percentage points "
                    "(+15: a planted square covering 15 % of that disc once grown); the api then sets the drivers "
                    "model's estimate beside the measured effect")
    sealed_points: float | None = Field(
        default=None, ge=-100, le=100,
        description="change the works made to the sealed (impervious) share within 100 m, percentage points (−20: "
                    "de-sealing a fifth of that disc)")

    @field_validator("sensors", "controls")
    @classmethod
    def _ids(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        for s in v:
            if not valid_sensor_id(s):
                raise ValueError(f"invalid sensor id {s!r} ({SENSOR_ID_RE.pattern})")
        if len(set(v)) != len(v):
            raise ValueError("sensor ids repeated")
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> InterventionIn:
        if self.controls is not None and set(self.controls) & set(self.sensors):
            raise ValueError("a sensor cannot be both treated and control: "
                             + ", ".join(sorted(set(self.controls) & set(self.sensors))))
        if self.date is not None:
            if self.end is not None and self.end != self.date:
                raise ValueError("date is the day the works ended, the same as end: give one of them, or the same day")
            self.end = self.date
        if self.end is None and self.start is None:
            raise ValueError("give the works' last day (end, or date), and their first day (start) if they lasted "
                             "more than one day")
        if self.start is None:
            self.start = self.end
        if self.end is not None and self.start is not None and self.start > self.end:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        self.date = self.end
        for day in (self.start, self.end):
            if day is not None and not 2000 <= day.year <= 2100:
                raise ValueError("dates must be between 2000 and 2100")
        return self

    @property
    def finished(self) -> bool:
        return self.end is not None

    @property
    def works(self) -> tuple[dt.date, dt.date | None]:
        assert self.start is not None  # set by the validator
        return self.start, self.end


class Intervention(InterventionIn):
    id: int
    created: str = Field(description="UTC time of recording, ISO 8601 with Z")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS intervention (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    town TEXT NOT NULL,
    date TEXT NOT NULL,
    body TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS intervention_town ON intervention(town, date);
"""


class InterventionStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> InterventionStore:
        return cls(Path(data_dir) / FILENAME)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def add(self, item: InterventionIn) -> Intervention:
        created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = item.model_dump(mode="json")
        with self._lock, self._connect() as db:
            cur = db.execute("INSERT INTO intervention(town, date, body, created) VALUES (?, ?, ?, ?)",
                             (item.town, _order_day(item), json.dumps(body), created))
            rid = int(cur.lastrowid or 0)
        return Intervention(id=rid, created=created, **body)

    def get(self, rid: int) -> Intervention | None:
        with self._connect() as db:
            row = db.execute("SELECT id, body, created FROM intervention WHERE id = ?", (rid,)).fetchone()
        return _row(row) if row else None

    def list(self, town: str | None = None) -> list[Intervention]:
        with self._connect() as db:
            if town is None:
                rows = db.execute("SELECT id, body, created FROM intervention ORDER BY date, id").fetchall()
            else:
                rows = db.execute("SELECT id, body, created FROM intervention WHERE town = ? ORDER BY date, id",
                                  (town,)).fetchall()
        return [_row(r) for r in rows]

    def replace(self, rid: int, item: InterventionIn) -> Intervention | None:
        """Overwrite a recorded intervention (e.g. its works' end once known); None if unknown."""
        body = item.model_dump(mode="json")
        with self._lock, self._connect() as db:
            row = db.execute("SELECT created FROM intervention WHERE id = ?", (rid,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE intervention SET town = ?, date = ?, body = ? WHERE id = ?",
                       (item.town, _order_day(item), json.dumps(body), rid))
        return Intervention(id=rid, created=row[0], **body)

    def delete(self, rid: int) -> bool:
        with self._lock, self._connect() as db:
            return db.execute("DELETE FROM intervention WHERE id = ?", (rid,)).rowcount > 0


def _order_day(item: InterventionIn) -> str:
    """The day interventions are listed by: the end of the works, or their start while they last."""
    day = item.end or item.start
    assert day is not None
    return day.isoformat()


def _row(row: tuple[Any, ...]) -> Intervention:
    return Intervention(id=row[0], created=row[2], **json.loads(row[1]))
