"""Alert notifications: who is told of which alerts, how, and what became of each message (docs/alerts.md,
"How an alert reaches people").

Stored in ``<data_dir>/notifications.sqlite``, shared like the contributors' store: the api writes subscriptions,
acknowledgements and redelivery requests (technicians, admin token); analytics' dispatcher reads them and writes
what it knows of alerts and every delivery (sent, waiting, dead). WAL mode, one short connection per call.

Tables:

* ``subscription``: a town, the alert kinds (none: every kind), a channel (``email`` to an address, ``webhook`` to
  a URL with its signing secret), quiet hours in the town's local time, the daily digest, re-notification.
* ``alert``: the alerts the dispatcher has seen open, keyed by (town, sensor, kind, started): one per condition, as
  in InfluxDB's ``alert`` measurement.
* ``ack``: who acknowledged an alert and when (written by the api).
* ``delivery``: one message to one subscription (an alert's opening, a re-notification, its end, a digest), with
  its attempts, next attempt, last error and status: ``pending``, ``sent``, ``dead`` (every attempt failed: the
  dead-letter list technicians see) or ``skipped`` (no longer worth sending: the alert closed or was acknowledged
  while it waited for the end of quiet hours).

The webhook signature follows the Standard Webhooks specification (https://www.standardwebhooks.com): headers
``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` = ``v1,`` + base64 of
HMAC-SHA256(secret, ``<id>.<timestamp>.<body>``). The timestamp is inside the signed bytes, so a receiver that
refuses timestamps older than a few minutes refuses a replayed request; receivers have libraries in most languages.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .sqlitestore import SqliteStore
from .thresholds import VIGILANCE_SEASON_MMDD

FILENAME = "notifications.sqlite"
#: The alert kinds analytics raises (docs/alerts.md, "Kinds").
ALERT_KINDS = ("temperature", "heat_index", "uhi_night", "canicule", "offline", "battery", "qc")
Channel = Literal["email", "webhook"]
Reason = Literal["open", "renotify", "close", "digest", "test"]
Status = Literal["pending", "sent", "dead", "skipped"]
STATUSES = ("pending", "sent", "dead", "skipped")
SECRET_PREFIX = "whsec_"
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
# Deliberately loose: the mail server is the judge of an address; this only catches a URL or a name typed there.
_EMAIL = re.compile(r"^[^@\s<>,;]{1,64}@[^@\s<>,;]+\.[^@\s<>,;]+$")


# Subscriptions ---------------------------------------------------------------------------------------

class SubscriptionIn(BaseModel):
    """What a technician sends to subscribe (``POST /v1/notifications/subscriptions``)."""

    model_config = ConfigDict(extra="forbid")

    town: str = Field(max_length=64)
    kinds: list[str] = Field(default_factory=list, max_length=len(ALERT_KINDS),
                             description=f"alert kinds ({', '.join(ALERT_KINDS)}); empty: every kind")
    channel: Channel
    target: str = Field(min_length=3, max_length=500, description="e-mail address, or the webhook's URL")
    name: str = Field(default="", max_length=120, description="who or what this is for (shown to technicians)")
    lang: Literal["fr", "en"] = Field(default="fr", description="language of the e-mails")
    quiet_start: str | None = Field(default=None, description="HH:MM, the town's local time: nothing is sent "
                                                              "from then…")
    quiet_end: str | None = Field(default=None, description="…until HH:MM; what waited is sent then")
    immediate: bool = Field(default=True, description="send each alert as it opens (false: the digest only)")
    digest: bool = Field(default=True, description="a daily summary during the vigilance season")
    send_resolved: bool = Field(default=True, description="say when an alert that was sent has ended")
    renotify_s: int | None = Field(default=None, ge=0, le=30 * 86400, description=(
        "repeat an unacknowledged open alert this often (seconds); 0: never; null: the service's default"))
    secret: str | None = Field(default=None, min_length=24, max_length=200, description=(
        "webhook signing secret (whsec_ + base64); generated when absent"))
    active: bool = True

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        unknown = [k for k in v if k not in ALERT_KINDS]
        if unknown:
            raise ValueError(f"unknown alert kind(s) {', '.join(unknown)}; known: {', '.join(ALERT_KINDS)}")
        return sorted(set(v))

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _hhmm(cls, v: str | None) -> str | None:
        if v is not None and not _HHMM.match(v):
            raise ValueError("quiet hours are HH:MM (24 h), e.g. 22:00")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            key = secret_key(v)
        except ValueError:
            raise ValueError("the secret must be whsec_ followed by base64 (24 bytes or more)") from None
        if len(key) < 24:
            raise ValueError("the secret must hold at least 24 bytes (whsec_ + base64)")
        return v

    @model_validator(mode="after")
    def _channel(self) -> SubscriptionIn:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet hours need both quiet_start and quiet_end")
        if self.channel == "email":
            if not _EMAIL.match(self.target):
                raise ValueError("target must be an e-mail address for channel email")
            if self.secret is not None:
                raise ValueError("a secret is for webhooks only")
        elif not re.match(r"^https?://[^\s/?#]+(/\S*)?$", self.target):
            raise ValueError("target must be an http(s):// URL for channel webhook")
        if not self.immediate and not self.digest:
            raise ValueError("a subscription sends something: immediate, digest or both")
        return self


class Subscription(SubscriptionIn):
    model_config = ConfigDict(extra="forbid")

    id: int
    created: str
    updated: str

    def wants(self, town: str, kind: str) -> bool:
        return self.active and self.town == town and (not self.kinds or kind in self.kinds)

    def public(self) -> dict[str, Any]:
        """What lists show: the secret stays out (it is shown once, when made)."""
        out = self.model_dump(mode="json")
        out["secret"] = None if self.secret is None else f"{self.secret[:10]}…"
        return out


def new_secret() -> str:
    """A webhook signing secret: 32 random bytes, Standard Webhooks' ``whsec_`` + base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (ValueError, base64.binascii.Error) as exc:  # type: ignore[attr-defined]
        raise ValueError("not base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of a body: ``v1,<base64 HMAC-SHA256(key, id.timestamp.body)>``."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, now_s: float, tolerance_s: float = 300) -> bool:
    """What a receiver checks (the tests' receiver uses the reference library as well): the signature and a
    timestamp within ``tolerance_s`` of its own clock."""
    h = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, ts = h["webhook-id"], int(h["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs(now_s - ts) > tolerance_s:
        return False
    expected = sign(secret, msg_id, ts, body).split(",", 1)[1]
    return any(hmac.compare_digest(expected, s.split(",", 1)[1]) for s in h.get("webhook-signature", "").split()
               if s.startswith("v1,"))


# Time rules (pure) -----------------------------------------------------------------------------------

def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def quiet_until(now: dt.datetime, start: str | None, end: str | None, tz: str) -> dt.datetime | None:
    """When the quiet hours holding ``now`` end (an aware UTC time), or None when ``now`` is not in them. The
    window is in the town's local time and may span midnight (22:00–07:00); start = end means none."""
    if start is None or end is None or start == end:
        return None
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    m = local.hour * 60 + local.minute
    s, e = _minutes(start), _minutes(end)
    inside = s <= m < e if s < e else (m >= s or m < e)
    if not inside:
        return None
    day = local.date() if (s < e or m < e) else local.date() + dt.timedelta(days=1)
    # Built as a wall time of that day: across a DST change the end stays "07:00 local".
    end_local = dt.datetime(day.year, day.month, day.day, e // 60, e % 60, tzinfo=zone)
    return end_local.astimezone(dt.UTC)


def parse_month_day(v: str) -> tuple[int, int]:
    m = re.match(r"^(\d{2})-(\d{2})$", v)
    if not m:
        raise ValueError(f"{v!r} is not MM-DD")
    month, day = int(m.group(1)), int(m.group(2))
    dt.date(2024, month, day)  # raises on 02-30 (2024: 02-29 is accepted)
    return month, day


def in_season(day: dt.date, first: str = VIGILANCE_SEASON_MMDD[0], last: str = VIGILANCE_SEASON_MMDD[1]) -> bool:
    """Whether a local day is in the vigilance season (first and last MM-DD included)."""
    return parse_month_day(first) <= (day.month, day.day) <= parse_month_day(last)


# The store -------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscription (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    town TEXT NOT NULL,
    active INTEGER NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert (
    key TEXT PRIMARY KEY,
    town TEXT NOT NULL,
    sensor TEXT NOT NULL,
    kind TEXT NOT NULL,
    started INTEGER NOT NULL,
    value REAL NOT NULL,
    threshold REAL NOT NULL,
    message TEXT NOT NULL,
    state TEXT NOT NULL,
    seen INTEGER NOT NULL,
    ended INTEGER
);
CREATE INDEX IF NOT EXISTS alert_state ON alert(state, town);
CREATE INDEX IF NOT EXISTS alert_seen ON alert(town, seen);
CREATE TABLE IF NOT EXISTS ack (
    key TEXT PRIMARY KEY,
    town TEXT NOT NULL,
    sensor TEXT NOT NULL,
    kind TEXT NOT NULL,
    started INTEGER NOT NULL,
    by TEXT NOT NULL,
    at INTEGER NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ack_town ON ack(town, at);
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription INTEGER NOT NULL,
    reason TEXT NOT NULL,
    alert TEXT,
    day TEXT,
    created INTEGER NOT NULL,
    due INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent INTEGER,
    payload TEXT
);
CREATE INDEX IF NOT EXISTS delivery_due ON delivery(status, due);
CREATE INDEX IF NOT EXISTS delivery_alert ON delivery(subscription, alert);
CREATE UNIQUE INDEX IF NOT EXISTS delivery_digest ON delivery(subscription, day) WHERE reason = 'digest';
"""


def alert_key(town: str, sensor: str | None, kind: str, started: int) -> str:
    """One alert (one lasting condition), as InfluxDB identifies it: town, sensor ("" for the town), kind, start."""
    return f"{town}|{sensor or ''}|{kind}|{int(started)}"


class StoredAlert(BaseModel):
    key: str
    town: str
    sensor: str
    kind: str
    started: int
    value: float
    threshold: float
    message: str
    state: str
    seen: int
    ended: int | None = None


class Ack(BaseModel):
    town: str
    sensor: str | None
    kind: str
    started: int
    by: str
    at: int
    note: str = ""


class Delivery(BaseModel):
    id: int
    subscription: int
    reason: str
    alert: str | None
    day: str | None
    created: int
    due: int
    status: str
    attempts: int
    last_error: str | None
    sent: int | None
    payload: dict[str, Any] | None = None


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class NotificationStore(SqliteStore):
    FILENAME = FILENAME
    SCHEMA = _SCHEMA
    ROWS = True

    # Subscriptions ---------------------------------------------------------------------------------

    @staticmethod
    def _sub(row: sqlite3.Row) -> Subscription:
        return Subscription.model_validate({**json.loads(row["body"]), "id": row["id"], "created": row["created"],
                                            "updated": row["updated"]})

    def add_subscription(self, sub: SubscriptionIn) -> Subscription:
        if sub.channel == "webhook" and sub.secret is None:
            sub = sub.model_copy(update={"secret": new_secret()})
        now = _now_iso()
        with self._db() as db:
            cur = db.execute("INSERT INTO subscription (body, town, active, created, updated) VALUES (?, ?, ?, ?, ?)",
                             (sub.model_dump_json(), sub.town, int(sub.active), now, now))
            rid = cur.lastrowid
        got = self.subscription(int(rid or 0))
        assert got is not None
        return got

    def replace_subscription(self, sid: int, sub: SubscriptionIn) -> Subscription | None:
        old = self.subscription(sid)
        if old is None:
            return None
        if sub.channel == "webhook" and sub.secret is None:
            # Keep the secret receivers already verify with, unless the channel changed.
            sub = sub.model_copy(update={"secret": old.secret if old.channel == "webhook" else new_secret()})
        with self._db() as db:
            db.execute("UPDATE subscription SET body = ?, town = ?, active = ?, updated = ? WHERE id = ?",
                       (sub.model_dump_json(), sub.town, int(sub.active), _now_iso(), sid))
        return self.subscription(sid)

    def delete_subscription(self, sid: int) -> bool:
        with self._db() as db:
            n = db.execute("DELETE FROM subscription WHERE id = ?", (sid,)).rowcount
            # Nothing more goes to it; what was sent or dead stays listed (the record of what was told).
            db.execute("UPDATE delivery SET status = 'skipped', last_error = 'subscription deleted' "
                       "WHERE subscription = ? AND status = 'pending'", (sid,))
        return n > 0

    def subscription(self, sid: int) -> Subscription | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM subscription WHERE id = ?", (sid,)).fetchone()
        return self._sub(row) if row else None

    def subscriptions(self, town: str | None = None, active_only: bool = False) -> list[Subscription]:
        q, args = "SELECT * FROM subscription WHERE 1 = 1", []
        if town is not None:
            q += " AND town = ?"
            args.append(town)
        if active_only:
            q += " AND active = 1"
        with self._db() as db:
            return [self._sub(r) for r in db.execute(q + " ORDER BY id", args)]

    # Alerts as the dispatcher saw them ---------------------------------------------------------------

    def open_alerts(self, town: str | None = None) -> list[StoredAlert]:
        q, args = "SELECT * FROM alert WHERE state = 'open'", []
        if town is not None:
            q += " AND town = ?"
            args.append(town)
        with self._db() as db:
            return [StoredAlert.model_validate(dict(r)) for r in db.execute(q + " ORDER BY started", args)]

    def alert(self, key: str) -> StoredAlert | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM alert WHERE key = ?", (key,)).fetchone()
        return StoredAlert.model_validate(dict(row)) if row else None

    def sync_open(self, town: str, now_open: list[StoredAlert], now_ms: int) -> tuple[list[str], list[str]]:
        """Make the store's open alerts of a town those InfluxDB has open: returns (opened, closed) keys. An alert
        the store knows but InfluxDB no longer has open has closed (ended: now, the dispatcher's first sight)."""
        with self._db() as db:
            known = {r["key"] for r in db.execute("SELECT key FROM alert WHERE town = ? AND state = 'open'", (town,))}
            current = {a.key: a for a in now_open}
            opened = [k for k in current if k not in known]
            for a in current.values():
                # Upsert: a worse value or a new message replaces the old; the first sight is kept.
                db.execute("INSERT INTO alert (key, town, sensor, kind, started, value, threshold, message, state, "
                           "seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?) ON CONFLICT(key) DO UPDATE SET "
                           "value = excluded.value, message = excluded.message, state = 'open', ended = NULL",
                           (a.key, a.town, a.sensor, a.kind, a.started, a.value, a.threshold, a.message, now_ms))
            closed = sorted(known - current.keys())
            db.executemany("UPDATE alert SET state = 'closed', ended = ? WHERE key = ?",
                           [(now_ms, k) for k in closed])
        return opened, closed

    def alerts_between(self, town: str, start_ms: int, end_ms: int) -> list[StoredAlert]:
        """Alerts of a town open at some point of [start, end): what a digest covers."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM alert WHERE town = ? AND started < ? AND (ended IS NULL OR ended >= ?) "
                              "ORDER BY started", (town, end_ms, start_ms)).fetchall()
        return [StoredAlert.model_validate(dict(r)) for r in rows]

    # Acknowledgements -------------------------------------------------------------------------------

    def ack(self, town: str, sensor: str | None, kind: str, started: int, by: str, at: int,
            note: str = "") -> tuple[Ack, bool]:
        """Record an acknowledgement; (the ack, True) when new, (the earlier one, False) when it was acked."""
        key = alert_key(town, sensor, kind, started)
        with self._db() as db:
            cur = db.execute("INSERT OR IGNORE INTO ack (key, town, sensor, kind, started, by, at, note) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (key, town, sensor or "", kind, int(started), by, at,
                                                                 note))
            created = cur.rowcount > 0
        got = self.ack_of(key)
        assert got is not None
        return got, created

    def ack_of(self, key: str) -> Ack | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM ack WHERE key = ?", (key,)).fetchone()
        return self._ack(row) if row else None

    @staticmethod
    def _ack(row: sqlite3.Row) -> Ack:
        return Ack(town=row["town"], sensor=row["sensor"] or None, kind=row["kind"], started=row["started"],
                   by=row["by"], at=row["at"], note=row["note"])

    def acks(self, town: str | None = None, since_ms: int = 0, limit: int = 1000) -> list[Ack]:
        q, args = "SELECT * FROM ack WHERE started >= ?", [since_ms]
        if town is not None:
            q += " AND town = ?"
            args.append(town)
        with self._db() as db:
            return [self._ack(r) for r in db.execute(q + " ORDER BY at DESC LIMIT ?", [*args, limit])]

    # Deliveries --------------------------------------------------------------------------------------

    @staticmethod
    def _delivery(row: sqlite3.Row) -> Delivery:
        d = dict(row)
        d["payload"] = json.loads(d["payload"]) if d.get("payload") else None
        return Delivery.model_validate(d)

    def add_delivery(self, subscription: int, reason: Reason, now_ms: int, due_ms: int, alert: str | None = None,
                     day: str | None = None, payload: dict[str, Any] | None = None) -> int | None:
        """A message to send; None when it exists already (one digest per subscription and day)."""
        with self._db() as db:
            cur = db.execute("INSERT OR IGNORE INTO delivery (subscription, reason, alert, day, created, due, status, "
                             "payload) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                             (subscription, reason, alert, day, now_ms, due_ms,
                              json.dumps(payload, ensure_ascii=False) if payload is not None else None))
            return int(cur.lastrowid) if cur.rowcount else None

    def deliveries_of(self, subscription: int, alert: str) -> list[Delivery]:
        with self._db() as db:
            return [self._delivery(r) for r in db.execute(
                "SELECT * FROM delivery WHERE subscription = ? AND alert = ? ORDER BY id", (subscription, alert))]

    def has_digest(self, subscription: int, day: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM delivery WHERE subscription = ? AND day = ? AND reason = 'digest'",
                              (subscription, day)).fetchone() is not None

    def due(self, now_ms: int, limit: int = 100) -> list[Delivery]:
        with self._db() as db:
            return [self._delivery(r) for r in db.execute(
                "SELECT * FROM delivery WHERE status = 'pending' AND due <= ? ORDER BY due, id LIMIT ?",
                (now_ms, limit))]

    def pending_for_alert(self, alert: str) -> list[Delivery]:
        with self._db() as db:
            return [self._delivery(r) for r in db.execute(
                "SELECT * FROM delivery WHERE status = 'pending' AND alert = ? ORDER BY id", (alert,))]

    def update_delivery(self, did: int, **fields: Any) -> None:
        if "payload" in fields and fields["payload"] is not None:
            fields["payload"] = json.dumps(fields["payload"], ensure_ascii=False)
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._db() as db:
            db.execute(f"UPDATE delivery SET {cols} WHERE id = ?", [*fields.values(), did])

    def delivery(self, did: int) -> Delivery | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM delivery WHERE id = ?", (did,)).fetchone()
        return self._delivery(row) if row else None

    def deliveries(self, status: str | None = None, subscription: int | None = None, limit: int = 100,
                   before_id: int | None = None) -> list[Delivery]:
        q, args = "SELECT * FROM delivery WHERE 1 = 1", []
        if status is not None:
            q += " AND status = ?"
            args.append(status)
        if subscription is not None:
            q += " AND subscription = ?"
            args.append(subscription)
        if before_id is not None:
            q += " AND id < ?"
            args.append(before_id)
        with self._db() as db:
            return [self._delivery(r) for r in db.execute(q + " ORDER BY id DESC LIMIT ?", [*args, limit])]

    def prune(self, before_ms: int) -> int:
        """Delete sent and skipped messages created before ``before_ms``, and alerts that ended before it (with
        their acknowledgements); dead and pending messages stay."""
        with self._db() as db:
            n = db.execute("DELETE FROM delivery WHERE status IN ('sent', 'skipped') AND created < ?",
                           (before_ms,)).rowcount
            db.execute("DELETE FROM ack WHERE key IN (SELECT key FROM alert WHERE state = 'closed' AND ended < ?)",
                       (before_ms,))
            db.execute("DELETE FROM alert WHERE state = 'closed' AND ended < ?", (before_ms,))
        return n

    def retry(self, did: int) -> Delivery | None:
        """Send a dead (or skipped) delivery again from its first attempt, at the dispatcher's next run (due 0:
        whatever the dispatcher's clock says)."""
        with self._db() as db:
            n = db.execute("UPDATE delivery SET status = 'pending', attempts = 0, due = 0, last_error = NULL "
                           "WHERE id = ? AND status IN ('dead', 'skipped')", (did,)).rowcount
        return self.delivery(did) if n else None
