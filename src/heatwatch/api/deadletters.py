"""Read (and, for replay, trim) the ingester's dead-letter SQLite file directly.

The api must not import ingest, so this is a small reader of the file's table, whose layout is
the contract: ``deadletter(id, topic, payload, reason, detail, received_ms)`` in
``<data_dir>/deadletter/deadletter.sqlite``, WAL mode (readers never block the ingester).
Replay republishes each message's original bytes on its original topic (QoS 1) so the ingester
decodes it again — typically after a registry or decoder fix — and then deletes the replayed
rows; a message that fails again is simply dead-lettered anew.
"""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heatwatch.core.mqtt import make_client
from heatwatch.core.settings import Settings

from .errors import ApiError


def store_path(settings: Settings) -> Path:
    return settings.deadletter_dir / "deadletter.sqlite"


@dataclass(slots=True)
class Letter:
    id: int
    topic: str
    payload: bytes
    reason: str
    detail: str
    received_ms: int

    def to_json(self) -> dict[str, Any]:
        try:
            text: str | None = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {"id": self.id, "topic": self.topic, "reason": self.reason, "detail": self.detail,
                "received_ms": self.received_ms, "payload_text": text,
                "payload_base64": base64.b64encode(self.payload).decode("ascii"), "size": len(self.payload)}


def _connect(path: Path, readonly: bool) -> sqlite3.Connection | None:
    if not path.exists():
        return None
    uri = f"file:{path}?mode={'ro' if readonly else 'rw'}"
    try:
        return sqlite3.connect(uri, uri=True, timeout=10, isolation_level=None)
    except sqlite3.Error as exc:
        raise ApiError(503, "deadletters_unavailable", f"cannot open the dead-letter store: {exc}") from None


def list_letters(path: Path, *, limit: int, after_id: int, reason: str | None) -> tuple[list[Letter], dict[str, int]]:
    db = _connect(path, readonly=True)
    if db is None:
        return [], {}
    try:
        q = "SELECT id, topic, payload, reason, detail, received_ms FROM deadletter WHERE id > ?"
        args: list[Any] = [after_id]
        if reason:
            q += " AND reason = ?"
            args.append(reason)
        rows = db.execute(q + " ORDER BY id LIMIT ?", [*args, limit]).fetchall()
        counts = dict(db.execute("SELECT reason, COUNT(*) FROM deadletter GROUP BY reason").fetchall())
        return [Letter(*r) for r in rows], counts
    except sqlite3.Error as exc:
        raise ApiError(503, "deadletters_unavailable", f"cannot read the dead-letter store: {exc}") from None
    finally:
        db.close()


def fetch(path: Path, ids: list[int]) -> list[Letter]:
    db = _connect(path, readonly=True)
    if db is None:
        return []
    try:
        marks = ",".join("?" * len(ids))
        rows = db.execute(f"SELECT id, topic, payload, reason, detail, received_ms FROM deadletter "
                          f"WHERE id IN ({marks}) ORDER BY id", ids).fetchall()
        return [Letter(*r) for r in rows]
    finally:
        db.close()


def delete(path: Path, ids: list[int]) -> None:
    db = _connect(path, readonly=False)
    if db is None:
        return
    try:
        db.executemany("DELETE FROM deadletter WHERE id = ?", [(i,) for i in ids])
    finally:
        db.close()


def republish(settings: Settings, letters: list[Letter], timeout_s: float = 10.0) -> list[int]:
    """Publish each letter at QoS 1 and wait for the broker's PUBACK; the ids that made it."""
    client = make_client(settings.mqtt, client_id="")
    try:
        client.connect(settings.mqtt.host, settings.mqtt.port, keepalive=30)
    except OSError as exc:
        raise ApiError(503, "broker_unavailable", f"cannot reach the MQTT broker to replay: {exc}") from None
    client.loop_start()
    done: list[int] = []
    try:
        infos = [(letter.id, client.publish(letter.topic, letter.payload, qos=1)) for letter in letters]
        for lid, info in infos:
            info.wait_for_publish(timeout_s)
            if info.is_published():
                done.append(lid)
    finally:
        client.disconnect()
        client.loop_stop()
    return done
