"""Dead-letter store: every rejected message or record, with its raw bytes, kept across restarts.

SQLite in WAL mode with ``synchronous=FULL``: an entry is on disk when :meth:`add_many`
returns, which is what lets the ingester acknowledge a rejected message. The store is
bounded by a row count; the oldest entries go first.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True)
class DeadLetter:
    topic: str
    payload: bytes
    reason: str
    detail: str
    received_ms: int
    id: int | None = None


class DeadLetterStore:
    def __init__(self, path: Path, max_entries: int = 100_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS deadletter (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " payload BLOB NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, received_ms INTEGER NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS deadletter_reason ON deadletter(reason)")

    def add_many(self, letters: Iterable[DeadLetter]) -> int:
        rows = [(d.topic, d.payload, d.reason, d.detail[:500], d.received_ms) for d in letters]
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
        q = "SELECT topic, payload, reason, detail, received_ms, id FROM deadletter WHERE id > ?"
        args: list[object] = [after_id]
        if reason:
            q += " AND reason = ?"
            args.append(reason)
        q += " ORDER BY id LIMIT ?"
        args.append(limit)
        with self._lock:
            return [DeadLetter(*row) for row in self._db.execute(q, args)]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT reason, COUNT(*) FROM deadletter GROUP BY reason"))

    def delete(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM deadletter WHERE id = ?", [(i,) for i in ids])

    def close(self) -> None:
        with self._lock:
            self._db.close()
