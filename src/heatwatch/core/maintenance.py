"""The visit log: what a technician did to a sensor on site, and when (docs/maintenance.md).

Stored in ``<data_dir>/maintenance.sqlite``, apart from the sensor registry (whose schema ingest reads on its hot
path): a few rows per sensor and year, written by the api (``POST /v1/maintenance/visits``, technicians only) and
read by the api's maintenance view and by analytics. WAL mode, one short connection per call: the api's workers
and analytics share the file.

Some actions change what a sensor measures, so its readings before and after the visit are two series
(:data:`BREAK_ACTIONS`): quality control restarts its baselines (level-shift, drift, the radiation night level and
the monthly checks) at the visit, and the intervention analysis never compares a sensor's days across it. A
cleaning is shown on the sensor's QC history; a new battery restarts the battery estimate.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from .model import SENSOR_ID_RE
from .sqlitestore import SqliteStore

FILENAME = "maintenance.sqlite"


class Action(StrEnum):
    """What was done during a visit."""

    cleaned = "cleaned"  # shield or sensor cleaned (dust, cobwebs, bird droppings)
    moved = "moved"  # mounted somewhere else: a new site, a new series
    replaced = "replaced"  # a new device under the same sensor id: a new series
    recalibrated = "recalibrated"  # offset changed against a reference: a new level, a new series
    battery = "battery"  # battery changed or recharged: the battery estimate restarts
    inspected = "inspected"  # looked at, nothing changed
    other = "other"


#: Actions after which a sensor's readings are a new series (QC baselines restart; no comparison across).
BREAK_ACTIONS = frozenset({Action.moved, Action.replaced, Action.recalibrated})
#: Actions after which the battery is a new one (the days-left estimate restarts).
BATTERY_ACTIONS = frozenset({Action.battery, Action.replaced})


class VisitIn(BaseModel):
    """What a technician records after a visit."""

    model_config = ConfigDict(extra="forbid")

    sensor: str = Field(pattern=f"^{SENSOR_ID_RE.pattern}$", max_length=64, examples=["vitre-centre-01"])
    at: AwareDatetime = Field(description="when the visit took place, ISO 8601 with its UTC offset "
                                          "(2026-07-02T10:30:00+02:00)")
    who: str = Field(min_length=1, max_length=80, description="the technician (technicians only: never public)")
    actions: list[Action] = Field(min_length=1, max_length=len(Action),
                                  description="cleaned, moved, replaced, recalibrated, battery, inspected, other")
    note: str = Field(default="", max_length=2000, description="free text (technicians only: never public)")

    @field_validator("actions")
    @classmethod
    def _distinct(cls, v: list[Action]) -> list[Action]:
        return list(dict.fromkeys(v))

    @field_validator("at")
    @classmethod
    def _plausible(cls, v: dt.datetime) -> dt.datetime:
        if not 2000 <= v.year <= 2100:
            raise ValueError("the visit must be between 2000 and 2100")
        if v > dt.datetime.now(dt.UTC) + dt.timedelta(hours=1):
            raise ValueError("a visit cannot be in the future: record it once done")
        return v


class Visit(BaseModel):
    id: int
    sensor: str
    town: str
    at: str = Field(description="UTC, ISO 8601 with Z")
    at_ms: int
    who: str
    actions: list[Action]
    note: str
    created: str

    @property
    def breaks_series(self) -> bool:
        return bool(BREAK_ACTIONS & set(self.actions))

    def public(self) -> dict[str, Any]:
        """What anyone may see: when and what, not who nor the note."""
        return {"id": self.id, "sensor": self.sensor, "town": self.town, "at": self.at,
                "actions": [str(a) for a in self.actions], "new_series": self.breaks_series}

    def private(self) -> dict[str, Any]:
        return self.public() | {"who": self.who, "note": self.note, "created": self.created}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS visit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    town TEXT NOT NULL,
    sensor TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    who TEXT NOT NULL,
    actions TEXT NOT NULL,
    note TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS visit_sensor ON visit(sensor, at_ms);
CREATE INDEX IF NOT EXISTS visit_town ON visit(town, at_ms);
"""


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class VisitStore(SqliteStore):
    FILENAME = FILENAME
    SCHEMA = _SCHEMA

    def add(self, town: str, item: VisitIn) -> Visit:
        at_ms = int(item.at.timestamp() * 1000)
        created = _iso(int(dt.datetime.now(dt.UTC).timestamp() * 1000))
        actions = [str(a) for a in item.actions]
        with self._db() as db:
            cur = db.execute("INSERT INTO visit (town, sensor, at_ms, who, actions, note, created) VALUES "
                             "(?, ?, ?, ?, ?, ?, ?)", (town, item.sensor, at_ms, item.who, json.dumps(actions),
                                                        item.note, created))
            rid = int(cur.lastrowid or 0)
        return Visit(id=rid, sensor=item.sensor, town=town, at=_iso(at_ms), at_ms=at_ms, who=item.who,
                     actions=item.actions, note=item.note, created=created)

    def get(self, rid: int) -> Visit | None:
        with self._db() as db:
            row = db.execute(f"SELECT {_COLS} FROM visit WHERE id = ?", (rid,)).fetchone()
        return _visit(row) if row else None

    def list(self, *, town: str | None = None, sensor: str | None = None, since_ms: int | None = None,
             limit: int = 10_000) -> list[Visit]:
        """Visits, oldest first."""
        sql, args = f"SELECT {_COLS} FROM visit WHERE 1 = 1", []
        for col, value in (("town", town), ("sensor", sensor)):
            if value is not None:
                sql += f" AND {col} = ?"
                args.append(value)
        if since_ms is not None:
            sql += " AND at_ms >= ?"
            args.append(since_ms)
        with self._db() as db:
            rows = db.execute(sql + " ORDER BY at_ms, id LIMIT ?", [*args, limit]).fetchall()
        return [_visit(r) for r in rows]

    def delete(self, rid: int) -> bool:
        with self._db() as db:
            return db.execute("DELETE FROM visit WHERE id = ?", (rid,)).rowcount > 0

    def breaks(self, town: str | None = None, actions: Iterable[Action] = BREAK_ACTIONS) -> dict[str, list[int]]:
        """Sensor → the instants (epoch ms, ascending) its readings start a new series."""
        wanted = set(actions)
        out: dict[str, list[int]] = {}
        for v in self.list(town=town):
            if wanted & set(v.actions):
                out.setdefault(v.sensor, []).append(v.at_ms)
        return out


_COLS = "id, town, sensor, at_ms, who, actions, note, created"


def _visit(row: tuple[Any, ...]) -> Visit:
    rid, town, sensor, at_ms, who, actions, note, created = row
    return Visit(id=rid, town=town, sensor=sensor, at=_iso(at_ms), at_ms=at_ms, who=who,
                 actions=[Action(a) for a in json.loads(actions)], note=note, created=created)


def breaks_or_empty(data_dir: Path, town: str) -> dict[str, list[int]]:
    """The series breaks of a town's sensors, or none when no visit was ever recorded (no file is created)."""
    path = Path(data_dir) / FILENAME
    if not path.exists():
        return {}
    return VisitStore(path).breaks(town)
