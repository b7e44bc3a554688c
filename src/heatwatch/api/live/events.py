"""Server-sent events and the queue of one open stream."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, frozen=True)
class Event:
    kind: str
    town: str | None
    data: dict[str, Any]
    id: int | None = None

    def encode(self) -> bytes:
        head = f"id: {self.id}\n" if self.id is not None else ""
        body = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        return f"{head}event: {self.kind}\ndata: {body}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    """One open stream. Events queue here; a client that stops reading is cut off rather than
    letting its queue grow: its browser reconnects and the alert replay covers the gap."""

    town: str | None
    limit: int
    events: deque[Event] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    reason: str = ""

    def push(self, event: Event) -> None:
        if self.closed:
            return
        if len(self.events) >= self.limit:
            self.close("client too slow")
            return
        self.events.append(event)
        self.wake.set()

    def close(self, reason: str) -> None:
        self.closed = True
        self.reason = reason
        self.wake.set()

    def wants(self, event: Event) -> bool:
        return self.town is None or event.town is None or event.town == self.town


@dataclass
class Stats:
    messages: int = 0
    readings: int = 0
    reading_events: int = 0
    coalesced: int = 0
    alerts: int = 0
    rejected: int = 0
    clients_cut: int = 0
