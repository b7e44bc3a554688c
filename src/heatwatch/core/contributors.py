"""Residents who contribute a sensor: who they are (minimal), what they consented to, their credentials,
and the log of erasures (docs/citizens.md).

Stored in ``<data_dir>/contributors.sqlite``, apart from the sensor registry: the registry holds what analytics
needs (the exact position, the site class, ``owner = citizen``) and nothing personal; this store holds the
personal data — a name or pseudonym and a contact — that no public output ever reads. Secrets are kept hashed
only: the publishing token as SHA-256 (it is 256 random bits, so a slow hash adds nothing), the MQTT password in
mosquitto's own ``$7$`` PBKDF2 format (what the broker's password file needs). WAL mode, one short connection
per call: the api's workers and analytics share the file.

A withdrawal deletes the personal data at once (pseudonym and contact are blanked; the description, which a
resident may have written an address into, too), keeps the consent record with its withdrawal date (proof of
what was agreed, and when it ended) and logs the erasure of the readings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import sqlite3
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .model import SiteClass
from .sqlitestore import SqliteStore

FILENAME = "contributors.sqlite"
#: The charter the consent refers to (docs/charter.md); bump when its text changes.
CHARTER_VERSION = "1.0"
#: What the data is collected for: the consent names it.
PURPOSE = ("mesure de l'îlot de chaleur urbain et de la surchauffe estivale, publiée en données ouvertes / "
           "measuring the urban heat island and summer overheating, published as open data")
LICENCES = {"etalab-2.0": "Licence Ouverte / Open Licence 2.0 (Etalab)",
            "odbl-1.0": "Open Database License (ODbL) 1.0"}
Licence = Literal["etalab-2.0", "odbl-1.0"]


class Setting(StrEnum):
    """Where a resident's sensor hangs: says what its readings can be compared with."""

    street = "street"
    courtyard = "courtyard"
    garden = "garden"
    balcony = "balcony"
    roof = "roof"
    park = "park"
    other = "other"


#: The registry's site class of each setting (a garden is suburban-like open ground; a courtyard, a balcony, a
#: roof or a street are in the built fabric).
SITE_CLASS = {Setting.street: SiteClass.urban, Setting.courtyard: SiteClass.urban, Setting.balcony: SiteClass.urban,
              Setting.roof: SiteClass.urban, Setting.garden: SiteClass.suburban, Setting.park: SiteClass.park,
              Setting.other: SiteClass.urban}


class Registration(BaseModel):
    """What a resident sends to join (``POST /v1/contribute``)."""

    model_config = ConfigDict(extra="forbid")

    town: str = Field(max_length=64)
    pseudonym: str = Field(min_length=1, max_length=80, description="name or pseudonym (never published)")
    contact: str = Field(min_length=3, max_length=200, description="e-mail or phone (never published)")
    device_model: str = Field(min_length=1, max_length=120, description="e.g. 'DHT22 + ESP8266', 'Netatmo'")
    latitude: float = Field(ge=-90, le=90, description="exact position, WGS84 (used for analysis only)")
    longitude: float = Field(ge=-180, le=180)
    height_m: float = Field(ge=0, le=100, description="height of the sensor above the ground, metres")
    setting: Setting
    shade: Literal["full_sun", "partial", "shade"] = Field(description="sun on the sensor around midday")
    description: str = Field(default="", max_length=500, description="anything useful about the site (private)")
    licence: Licence = Field(description="licence the resident grants on the data: etalab-2.0 or odbl-1.0")
    consent: bool = Field(description="true: the resident accepts the charter (purpose, licence, retention)")
    charter_version: str = Field(max_length=20, description="the version of the charter the resident read")

    @field_validator("consent")
    @classmethod
    def _consented(cls, v: bool) -> bool:
        if not v:
            raise ValueError("consent must be true: data is only collected with the resident's explicit consent")
        return v

    @field_validator("charter_version")
    @classmethod
    def _current(cls, v: str) -> str:
        if v != CHARTER_VERSION:
            raise ValueError(f"the current charter is version {CHARTER_VERSION}: read it (GET /v1/governance) and "
                             "consent to that one")
        return v


class Contribution(BaseModel):
    """One contributed sensor as the store knows it (what the private view shows its owner)."""

    sensor: str
    town: str
    pseudonym: str
    contact: str
    device_model: str
    latitude: float
    longitude: float
    height_m: float
    setting: str
    shade: str
    description: str
    created: str
    withdrawn: str | None = None
    consent: dict[str, Any]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS contribution (
    sensor TEXT PRIMARY KEY,
    town TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    contact TEXT NOT NULL,
    device_model TEXT NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    height_m REAL NOT NULL,
    setting TEXT NOT NULL,
    shade TEXT NOT NULL,
    description TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    mqtt_hash TEXT,
    created TEXT NOT NULL,
    withdrawn TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS contribution_token ON contribution(token_hash);
CREATE TABLE IF NOT EXISTS consent (
    sensor TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    licence TEXT NOT NULL,
    retention TEXT NOT NULL,
    charter_version TEXT NOT NULL,
    given TEXT NOT NULL,
    withdrawn TEXT
);
CREATE TABLE IF NOT EXISTS erasure (
    id TEXT PRIMARY KEY,
    sensor TEXT NOT NULL,
    town TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    details TEXT
);
"""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A publishing token: 256 random bits, URL-safe."""
    return "hw_" + secrets.token_urlsafe(32)


def new_sensor_id(town: str) -> str:
    """A sensor id that says nothing about its owner (a resident's own choice could be their name)."""
    return f"c-{town[:20]}-{secrets.token_hex(4)}"


class ContributorStore(SqliteStore):
    FILENAME = FILENAME
    SCHEMA = _SCHEMA

    # Registration ----------------------------------------------------------------------

    def add(self, sensor: str, reg: Registration, token: str, mqtt_hash: str | None, retention: str,
            given: str | None = None) -> None:
        given = given or now_iso()
        with self._db() as db:
            db.execute("INSERT INTO contribution (sensor, town, pseudonym, contact, device_model, latitude, longitude,"
                       " height_m, setting, shade, description, token_hash, mqtt_hash, created) VALUES"
                       " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (sensor, reg.town, reg.pseudonym, reg.contact, reg.device_model, reg.latitude, reg.longitude,
                        reg.height_m, reg.setting.value, reg.shade, reg.description, token_hash(token), mqtt_hash,
                        given))
            db.execute("INSERT INTO consent (sensor, purpose, licence, retention, charter_version, given) VALUES"
                       " (?, ?, ?, ?, ?, ?)", (sensor, PURPOSE, reg.licence, retention, reg.charter_version, given))

    def by_token(self, token: str) -> Contribution | None:
        """The active contribution a token opens; None for an unknown token or a withdrawn sensor."""
        with self._db() as db:
            row = db.execute("SELECT sensor FROM contribution WHERE token_hash = ? AND withdrawn IS NULL",
                             (token_hash(token),)).fetchone()
        return self.get(row[0]) if row else None

    def get(self, sensor: str) -> Contribution | None:
        with self._db() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM contribution WHERE sensor = ?", (sensor,)).fetchone()
            consent = db.execute("SELECT * FROM consent WHERE sensor = ?", (sensor,)).fetchone()
        if row is None:
            return None
        data = {k: row[k] for k in row.keys() if k not in ("token_hash", "mqtt_hash")}
        data["consent"] = dict(consent) if consent is not None else {}
        return Contribution.model_validate(data)

    def active(self) -> list[Contribution]:
        with self._db() as db:
            rows = db.execute("SELECT sensor FROM contribution WHERE withdrawn IS NULL ORDER BY sensor").fetchall()
        return [c for (s,) in rows if (c := self.get(s)) is not None]

    def mqtt_accounts(self) -> dict[str, str]:
        """``<town>/<sensor>`` → ``$7$`` hash of every active contribution with an MQTT account (what
        ``heatwatch contributors mqtt-sync`` writes into the broker's password file)."""
        with self._db() as db:
            rows = db.execute("SELECT town, sensor, mqtt_hash FROM contribution WHERE withdrawn IS NULL AND "
                              "mqtt_hash IS NOT NULL").fetchall()
        return {f"{t}/{s}": h for t, s, h in rows}

    def withdrawn_accounts(self) -> list[str]:
        with self._db() as db:
            rows = db.execute("SELECT town, sensor FROM contribution WHERE withdrawn IS NOT NULL").fetchall()
        return [f"{t}/{s}" for t, s in rows]

    # Withdrawal ------------------------------------------------------------------------

    def withdraw(self, sensor: str, when: str | None = None) -> bool:
        """End the contribution: personal data blanked, token and MQTT account revoked, consent marked
        withdrawn. False when it was already withdrawn (or unknown)."""
        when = when or now_iso()
        with self._db() as db:
            cur = db.execute("UPDATE contribution SET withdrawn = ?, pseudonym = '', contact = '', description = '',"
                             " mqtt_hash = NULL, token_hash = 'withdrawn:' || sensor WHERE sensor = ? AND withdrawn IS"
                             " NULL", (when, sensor))
            db.execute("UPDATE consent SET withdrawn = ? WHERE sensor = ? AND withdrawn IS NULL", (when, sensor))
        return cur.rowcount == 1

    def log_erasure(self, rid: str, sensor: str, town: str, reason: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO erasure (id, sensor, town, reason, requested, status) VALUES"
                       " (?, ?, ?, ?, ?, 'requested')", (rid, sensor, town, reason, now_iso()))

    def erasure_done(self, rid: str, status: str, details: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute("UPDATE erasure SET status = ?, finished = ?, details = ? WHERE id = ?",
                       (status, now_iso(), json.dumps(details, sort_keys=True), rid))

    def erasures(self, sensor: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM erasure", []
        if sensor is not None:
            sql += " WHERE sensor = ?"
            params.append(sensor)
        with self._db() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(sql + " ORDER BY requested", params).fetchall()
        return [{**dict(r), "details": json.loads(r["details"]) if r["details"] else None} for r in rows]
