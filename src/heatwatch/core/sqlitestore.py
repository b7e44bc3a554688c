"""One small SQLite file per kernel store (contributors, visits, notifications): opened per operation, so the api's
threads and analytics' jobs share it without a connection pool, in WAL mode so readers never wait for a writer."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Self


class SqliteStore:
    """A store's file, created with its schema on first use. Subclasses name ``FILENAME`` (under the data folder)
    and ``SCHEMA`` (idempotent statements); ``ROWS`` asks for :class:`sqlite3.Row` rows."""

    FILENAME: ClassVar[str]
    SCHEMA: ClassVar[str]
    ROWS: ClassVar[bool] = False

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._init_lock = threading.Lock()
        self._ready = False

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> Self:
        return cls(Path(data_dir) / cls.FILENAME)

    def _create(self) -> None:
        with self._init_lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(self.SCHEMA)
            finally:
                db.close()
            self._ready = True

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One connection, one transaction: committed when the block ends, rolled back if it raises."""
        if not self._ready:
            self._create()
        db = sqlite3.connect(self.path, timeout=30)
        if self.ROWS:
            db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()
