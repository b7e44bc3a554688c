"""The dead-letter store: every rejected message or record, with its raw bytes, kept across restarts.

One SQLite file, ``<data_dir>/deadletter/deadletter.sqlite``, written by ingest (every ingester of
the host appends to it) and read by the api (``/v1/admin/deadletters``: list, counts, replay). Both
use this module, so the file's layout is defined once. Why a shared file rather than an ingest
endpoint: the services already share the data folder for the sensor registry; several ingesters may
run, and their dead letters belong in one list; and SQLite in WAL mode lets the api read while
ingesters write, without either waiting.

Durability: ``synchronous=FULL``, so an entry is on disk when :meth:`DeadLetterStore.add_many`
returns — which is what lets the ingester acknowledge a rejected message. The store is bounded by a
row count; the oldest entries go first.
"""

from __future__ import annotations

import base64
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILENAME = "deadletter.sqlite"
DETAIL_MAX = 500
_COLUMNS = "topic, payload, reason, detail, received_ms, id"


@dataclass(slots=True)
class DeadLetter:
    topic: str
    payload: bytes
    reason: str
    detail: str
    received_ms: int
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The letter as the admin API shows it: the payload as text when it is UTF-8, and always base64."""
        try:
            text: str | None = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {"id": self.id, "topic": self.topic, "reason": self.reason, "detail": self.detail,
                "received_ms": self.received_ms, "payload_text": text,
                "payload_base64": base64.b64encode(self.payload).decode("ascii"), "size": len(self.payload)}


class DeadLetterStore:
    """Thread-safe: one connection behind a lock.

    ``create=False`` opens an existing store only (the api must not create the ingester's file), and
    raises :class:`FileNotFoundError` when there is none yet.
    """

    def __init__(self, path: Path, *, max_entries: int = 100_000, create: bool = True) -> None:
        path = Path(path)
        self.path = path
        self.max_entries = max_entries
        self._lock = threading.Lock()
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS deadletter (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
                " payload BLOB NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, received_ms INTEGER NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS deadletter_reason ON deadletter(reason)")
        else:
            if not path.exists():
                raise FileNotFoundError(path)
            self._db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, check_same_thread=False,
                                       isolation_level=None, timeout=10)

    def __enter__(self) -> DeadLetterStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_many(self, letters: Iterable[DeadLetter]) -> int:
        rows = [(d.topic, d.payload, d.reason, d.detail[:DETAIL_MAX], d.received_ms) for d in letters]
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO deadletter (topic, payload, reason, detail, received_ms) VALUES (?, ?, ?, ?, ?)", rows
            )
            self._db.execute(
                "DELETE FROM deadletter WHERE id <= (SELECT MAX(id) FROM deadletter) - ?", (self.max_entries,)
            )
            self._db.execute("COMMIT")
        return len(rows)

    def list(self, *, limit: int = 100, after_id: int = 0, reason: str | None = None) -> list[DeadLetter]:
        """The letters after ``after_id`` (of one reason), oldest first: a page of at most ``limit``."""
        q = f"SELECT {_COLUMNS} FROM deadletter WHERE id > ?"
        args: list[object] = [after_id]
        if reason:
            q += " AND reason = ?"
            args.append(reason)
        q += " ORDER BY id LIMIT ?"
        args.append(limit)
        with self._lock:
            return [DeadLetter(*row) for row in self._db.execute(q, args)]

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
