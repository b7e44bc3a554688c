"""The dead-letter store is bounded in bytes: whatever sensors send, it cannot fill the disk.

A payload past the per-letter limit is kept truncated with its original size and its reason; past the
byte bound the oldest letters go first; a store an older ingester wrote gets the accounting on open.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from heatwatch.core.deadletters import ROW_OVERHEAD, DeadLetter, DeadLetterStore


def letter(i: int, size: int, topic: str = "heat/vitre/flood") -> DeadLetter:
    return DeadLetter(topic, bytes([65 + i % 26]) * size, "oversized", f"{size} bytes > 262144", 1000 + i)


def test_a_flooding_sensor_cannot_grow_the_store_past_its_byte_bound(tmp_path: Path) -> None:
    max_bytes, keep = 2 * 1024 * 1024, 16 * 1024
    with DeadLetterStore(tmp_path / "dl.sqlite", max_bytes=max_bytes, payload_max_bytes=keep) as store:
        # One sensor account sending 1 MiB messages: 300 of them would be 300 MiB kept before the bound.
        for batch in range(30):
            store.add_many(letter(batch * 10 + i, 1024 * 1024) for i in range(10))
            assert store.stored_bytes() <= max_bytes
        kept = store.list(limit=1000)
        # Each letter is kept as its first 16 KiB, with its original size and reason.
        assert kept and all(len(d.payload) == keep and d.size == 1024 * 1024 and d.truncated for d in kept)
        assert all(d.reason == "oversized" and d.detail == "1048576 bytes > 262144" for d in kept)
        # The newest letters are the ones kept, and the running total is what the rows hold.
        assert kept[-1].received_ms == 1000 + 299
        expected = sum(len(d.payload) + len(d.topic) + len(d.detail) + ROW_OVERHEAD for d in kept)
        assert store.stored_bytes() == expected
        shown = kept[-1].to_json()
        assert shown["size"] == 1024 * 1024 and shown["truncated"] is True
        assert len(shown["payload_text"]) == keep
    # The file holds what the bound allows (plus SQLite's own pages), not 300 MiB.
    assert (tmp_path / "dl.sqlite").stat().st_size < 4 * max_bytes


def test_small_letters_are_kept_whole_and_deletes_give_room_back(tmp_path: Path) -> None:
    with DeadLetterStore(tmp_path / "dl.sqlite", max_bytes=1024 * 1024) as store:
        store.add_many([letter(0, 300), letter(1, 50)])
        a, b = store.list()
        assert (a.size, a.truncated, len(a.payload)) == (300, False, 300)
        assert a.to_json()["truncated"] is False and b.to_json()["size"] == 50
        before = store.stored_bytes()
        store.delete([a.id])
        assert store.stored_bytes() == before - (300 + len(a.topic) + len(a.detail) + ROW_OVERHEAD)


def test_a_store_written_before_the_bound_is_accounted_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE deadletter (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT "
               "NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, received_ms INTEGER NOT NULL)")
    db.executemany("INSERT INTO deadletter (topic, payload, reason, detail, received_ms) VALUES (?, ?, ?, ?, ?)",
                   [("heat/vitre/a", b"x" * 1000, "bad_json", "d", i) for i in range(5)])
    db.commit()
    db.close()
    # The api opens it read-write without creating it: the accounting is added all the same.
    with DeadLetterStore(path, create=False) as store:
        assert store.stored_bytes() == 5 * (1000 + len("heat/vitre/a") + 1 + ROW_OVERHEAD)
        assert [d.size for d in store.list()] == [1000] * 5
    with DeadLetterStore(path, max_bytes=1024 * 1024, payload_max_bytes=256) as store:
        store.add_many([letter(9, 2000)])
        assert [d.truncated for d in store.list()] == [False] * 5 + [True]
