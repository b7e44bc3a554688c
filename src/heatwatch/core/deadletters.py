"""The dead-letter store: every rejected message or record, with its raw bytes, kept across restarts.

One SQLite file, ``<data_dir>/deadletter/deadletter.sqlite``, written by ingest (every ingester of
the host appends to it) and read by the api (``/v1/admin/deadletters``: list, counts, replay). Both
use this module, so the file's layout is defined once. Why a shared file rather than an ingest
endpoint: the services already share the data folder for the sensor registry; several ingesters may
run, and their dead letters belong in one list; and SQLite in WAL mode lets the api read while
ingesters write, without either waiting.

A technician acts per device: :func:`device_of` names the device a dead letter came from, from its
topic (the sensor of ``heat/`` and ``senml/`` topics, the device id of The Things Stack topics, the
DevEUI of ChirpStack topics, the sensor tag of a line InfluxDB refused), and
:meth:`DeadLetterStore.summary` counts letters per reason and per device.

Durability: ``synchronous=FULL``, so an entry is on disk when :meth:`DeadLetterStore.add_many`
returns — which is what lets the ingester acknowledge a rejected message.

Bounds: the store is public-facing in effect (any sensor account can fill it with rejected messages), so it
is bounded in bytes, not only in rows. A payload longer than ``payload_max_bytes`` is kept truncated, with
its original ``size`` (a truncated letter can be read, not replayed); each row counts its payload, topic,
detail and a fixed overhead towards ``max_bytes``, kept in a running total by triggers so the check costs
nothing; past the bound (or past ``max_entries``) the oldest letters go first, down to 90 % of the bound so
a full store is not trimmed on every batch.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILENAME = "deadletter.sqlite"
DETAIL_MAX = 500
#: Defaults of the bounds (``HEATWATCH_DEADLETTER_*``): a real uplink is a few KiB at most.
MAX_BYTES = 256 * 1024**2
PAYLOAD_MAX_BYTES = 16 * 1024
MAX_ENTRIES = 100_000
#: What a row costs beyond its payload, topic and detail (row header, id, index entries), for the byte bound.
ROW_OVERHEAD = 96
_COLUMNS = "topic, payload, reason, detail, received_ms, id, size"


@dataclass(slots=True)
class DeadLetter:
    topic: str
    payload: bytes
    reason: str
    detail: str
    received_ms: int
    id: int | None = None
    #: the payload's size as received; more than ``len(payload)`` when the store kept it truncated
    size: int | None = None

    @property
    def original_size(self) -> int:
        return len(self.payload) if self.size is None else self.size

    @property
    def truncated(self) -> bool:
        return self.original_size > len(self.payload)

    def to_json(self) -> dict[str, Any]:
        """The letter as the admin API shows it: the payload as text when it is UTF-8, and always base64."""
        try:
            text: str | None = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None  # not UTF-8 (or cut inside a character by truncation): base64 only
        return {"id": self.id, "topic": self.topic, "reason": self.reason, "detail": self.detail,
                "received_ms": self.received_ms, "payload_text": text,
                "payload_base64": base64.b64encode(self.payload).decode("ascii"), "size": self.original_size,
                "truncated": self.truncated}


@dataclass(frozen=True, slots=True)
class Device:
    network: str  # json, senml, tts, chirpstack, influx, unknown
    device: str
    town: str | None = None
    application: str | None = None


_LINE_TAGS = re.compile(rb"^reading,sensor=([^,\s]+),town=([^,\s]+)")


def device_of(topic: str, payload: bytes = b"") -> Device:
    """The device a dead letter came from, as far as its topic (or the line InfluxDB refused) tells."""
    levels = topic.split("/")
    n = len(levels)
    if n == 3 and levels[0] in ("heat", "senml") and levels[2]:
        return Device("json" if levels[0] == "heat" else "senml", levels[2], levels[1] or None)
    if n == 5 and levels[0] == "v3" and levels[2] == "devices":
        return Device("tts", levels[3], application=levels[1].split("@", 1)[0])
    if n >= 5 and levels[0] == "application" and levels[2] == "device":
        return Device("chirpstack", levels[3].upper(), application=levels[1])
    if topic == INFLUX_TOPIC:
        m = _LINE_TAGS.match(payload)
        if m:
            return Device("influx", m.group(1).decode("utf-8", "replace"), m.group(2).decode("utf-8", "replace"))
    return Device("unknown", topic)


#: The topic of a dead letter that is a line InfluxDB refused, not an MQTT message.
INFLUX_TOPIC = "(influx)"


@dataclass(slots=True)
class DeviceCount:
    device: Device
    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    last_id: int = 0
    last_received_ms: int = 0
    topics: set[str] = field(default_factory=set)
    last_detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"network": self.device.network, "device": self.device.device, "town": self.device.town,
                "application": self.device.application, "count": self.count, "reasons": dict(self.reasons),
                "last_received_ms": self.last_received_ms, "last_detail": self.last_detail,
                "topics": sorted(self.topics)[:5]}


class DeadLetterStore:
    """Thread-safe: one connection behind a lock.

    ``create=False`` opens an existing store only (the api must not create the ingester's file), and
    raises :class:`FileNotFoundError` when there is none yet.
    """

    def __init__(self, path: Path, *, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 payload_max_bytes: int = PAYLOAD_MAX_BYTES, create: bool = True) -> None:
        path = Path(path)
        self.path = path
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.payload_max_bytes = payload_max_bytes
        self._lock = threading.Lock()
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._create()
        else:
            if not path.exists():
                raise FileNotFoundError(path)
            self._db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, check_same_thread=False,
                                       isolation_level=None, timeout=10)
            self._create()  # a store an older ingester wrote gets the byte accounting too

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> DeadLetterStore:
        """The store of ``settings`` (any group: the bounds are core settings) with its bounds."""
        return cls(settings.deadletter_path, max_entries=settings.deadletter_max_entries,
                   max_bytes=settings.deadletter_max_bytes,
                   payload_max_bytes=settings.deadletter_payload_max_bytes, **kwargs)

    def _create(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # several ingesters may open the file at once
        db.execute(
            "CREATE TABLE IF NOT EXISTS deadletter (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " payload BLOB NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, received_ms INTEGER NOT NULL)"
        )
        db.execute("CREATE INDEX IF NOT EXISTS deadletter_reason ON deadletter(reason)")
        columns = {row[1] for row in db.execute("PRAGMA table_info(deadletter)")}
        if "size" not in columns:  # a store written before the byte bound: account for what it holds
            db.execute("ALTER TABLE deadletter ADD COLUMN size INTEGER")
            db.execute("ALTER TABLE deadletter ADD COLUMN stored INTEGER NOT NULL DEFAULT 0")
            db.execute("UPDATE deadletter SET size = length(payload), stored = length(payload) + length(topic) "
                       "+ length(detail) + ?", (ROW_OVERHEAD,))
        # The running total of the byte bound, kept by triggers so that no statement has to sum the table.
        db.execute("CREATE TABLE IF NOT EXISTS deadletter_bytes (one INTEGER PRIMARY KEY CHECK (one = 1), "
                   "total INTEGER NOT NULL)")
        db.execute("INSERT OR IGNORE INTO deadletter_bytes (one, total) "
                   "SELECT 1, COALESCE(SUM(stored), 0) FROM deadletter")
        db.execute("CREATE TRIGGER IF NOT EXISTS deadletter_bytes_add AFTER INSERT ON deadletter BEGIN "
                   "UPDATE deadletter_bytes SET total = total + NEW.stored WHERE one = 1; END")
        db.execute("CREATE TRIGGER IF NOT EXISTS deadletter_bytes_del AFTER DELETE ON deadletter BEGIN "
                   "UPDATE deadletter_bytes SET total = total - OLD.stored WHERE one = 1; END")
        db.execute("COMMIT")

    def __enter__(self) -> DeadLetterStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_many(self, letters: Iterable[DeadLetter]) -> int:
        """Keep ``letters`` (payloads truncated past ``payload_max_bytes``), then trim the oldest past the bounds."""
        keep = self.payload_max_bytes
        rows = []
        for d in letters:
            payload = d.payload[:keep]
            detail = d.detail[:DETAIL_MAX]
            stored = len(payload) + len(d.topic.encode("utf-8", "replace")) + len(detail.encode("utf-8", "replace")) \
                + ROW_OVERHEAD
            rows.append((d.topic, payload, d.reason, detail, d.received_ms, d.original_size, stored))
        if not rows:
            return 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT INTO deadletter (topic, payload, reason, detail, received_ms, size, stored) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                db.execute("DELETE FROM deadletter WHERE id <= (SELECT MAX(id) FROM deadletter) - ?",
                           (self.max_entries,))
                total = db.execute("SELECT total FROM deadletter_bytes WHERE one = 1").fetchone()[0]
                if total > self.max_bytes:
                    self._trim(total - self.max_bytes * 9 // 10)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return len(rows)

    def _trim(self, excess: int) -> None:
        """Delete the oldest letters holding at least ``excess`` bytes (in the caller's transaction)."""
        row = self._db.execute(
            "SELECT id FROM (SELECT id, SUM(stored) OVER (ORDER BY id) AS upto FROM deadletter) "
            "WHERE upto >= ? ORDER BY id LIMIT 1", (excess,)).fetchone()
        if row is None:  # everything together is not that much: cannot happen with the total right
            self._db.execute("DELETE FROM deadletter")
        else:
            self._db.execute("DELETE FROM deadletter WHERE id <= ?", (row[0],))

    def stored_bytes(self) -> int:
        """The bytes the letters count for against ``max_bytes``."""
        with self._lock:
            row = self._db.execute("SELECT total FROM deadletter_bytes WHERE one = 1").fetchone()
        return int(row[0]) if row else 0

    def list(self, *, limit: int = 100, after_id: int = 0, reason: str | None = None,
             device: str | None = None) -> list[DeadLetter]:
        """The letters after ``after_id`` (of one reason, of one device), oldest first: a page of at most ``limit``."""
        q = f"SELECT {_COLUMNS} FROM deadletter WHERE id > ?"
        args: list[object] = [after_id]
        if reason:
            q += " AND reason = ?"
            args.append(reason)
        with self._lock:
            if device is None:
                return [DeadLetter(*row) for row in self._db.execute(q + " ORDER BY id LIMIT ?", [*args, limit])]
            # The device comes from the topic: filter while reading, oldest first, until `limit` match.
            out: list[DeadLetter] = []
            upper = device.upper()
            for row in self._db.execute(q + " ORDER BY id", args):
                found = device_of(row[0], row[1]).device
                if found == device or found == upper:
                    out.append(DeadLetter(*row))
                    if len(out) >= limit:
                        break
            return out

    def _groups(self) -> Iterator[tuple[str, bytes, str, int, int, int]]:
        """(topic, payload or b"", reason, count, newest received_ms, newest id) per topic and reason."""
        yield from ((t, b"", r, n, ms, i) for t, r, n, ms, i in self._db.execute(
            "SELECT topic, reason, COUNT(*), MAX(received_ms), MAX(id) FROM deadletter WHERE topic != ? "
            "GROUP BY topic, reason", (INFLUX_TOPIC,)))
        # A line InfluxDB refused names its sensor in the line, not in a topic.
        yield from ((INFLUX_TOPIC, p, r, n, ms, i) for p, r, n, ms, i in self._db.execute(
            "SELECT payload, reason, COUNT(*), MAX(received_ms), MAX(id) FROM deadletter WHERE topic = ? "
            "GROUP BY payload, reason", (INFLUX_TOPIC,)))

    def summary(self, *, limit: int = 100) -> dict[str, Any]:
        """Letters per reason, and per device: the ``limit`` devices with most letters (then the newest)."""
        by_reason: Counter[str] = Counter()
        devices: dict[Device, DeviceCount] = {}
        with self._lock:
            for topic, payload, reason, n, last_ms, last_id in self._groups():
                by_reason[reason] += n
                dev = device_of(topic, payload)
                c = devices.get(dev)
                if c is None:
                    c = devices[dev] = DeviceCount(dev)
                c.count += n
                c.reasons[reason] += n
                c.topics.add(topic)
                if last_id > c.last_id:
                    c.last_id, c.last_received_ms = last_id, last_ms
            top = sorted(devices.values(), key=lambda c: (-c.count, -c.last_id))[:limit]
            for c in top:
                row = self._db.execute("SELECT detail FROM deadletter WHERE id = ?", (c.last_id,)).fetchone()
                c.last_detail = row[0] if row else ""
        return {"total": sum(by_reason.values()), "by_reason": dict(by_reason.most_common()),
                "devices": len(devices), "by_device": [c.to_json() for c in top]}

    def fetch(self, ids: Iterable[int]) -> list[DeadLetter]:
        wanted = sorted(set(ids))
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM deadletter WHERE id IN ({marks}) ORDER BY id", wanted)
            return [DeadLetter(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many letters are kept, per reason."""
        with self._lock:
            return dict(self._db.execute("SELECT reason, COUNT(*) FROM deadletter GROUP BY reason"))

    def delete(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM deadletter WHERE id = ?", [(i,) for i in ids])

    def close(self) -> None:
        with self._lock:
            self._db.close()
