"""Durable on-disk spool of line-protocol batches, for when InfluxDB cannot take them.

One file per batch, named by a sequence number so replay keeps arrival order. A batch is
written to a temporary name, fsync'd, renamed and the folder fsync'd: once :meth:`append`
returns, the batch survives a crash and the messages behind it may be acknowledged.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_SUFFIX = ".lp"


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        for tmp in self.dir.glob("*.tmp"):  # a crash mid-append: never acknowledged, so safe to drop
            tmp.unlink()
        self._segments = sorted(self.dir.glob(f"*{_SUFFIX}"))
        self._bytes = sum(p.stat().st_size for p in self._segments)
        self._next = int(self._segments[-1].stem) + 1 if self._segments else 1
        # append() runs in a worker thread (asyncio.to_thread) while remove() runs on the event loop:
        # the read-modify-write of the byte count must not interleave, or the bound drifts.
        self._lock = threading.Lock()

    @property
    def depth(self) -> int:
        return len(self._segments)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __bool__(self) -> bool:
        return bool(self._segments)

    def has_room(self, size: int) -> bool:
        return self._bytes + size <= self.max_bytes or not self._segments

    def append(self, lines: list[str]) -> Path:
        data = ("\n".join(lines) + "\n").encode("utf-8")
        path = self.dir / f"{self._next:016d}{_SUFFIX}"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        with self._lock:
            self._next += 1
            self._segments.append(path)
            self._bytes += len(data)
        return path

    def oldest(self) -> tuple[Path, list[str]] | None:
        if not self._segments:
            return None
        path = self._segments[0]
        return path, path.read_text(encoding="utf-8").splitlines()

    def remove(self, path: Path) -> None:
        size = path.stat().st_size
        path.unlink()
        with self._lock:
            self._segments.remove(path)
            self._bytes -= size
