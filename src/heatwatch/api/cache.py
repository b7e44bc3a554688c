"""ETag / If-None-Match, Cache-Control, and a small server-side cache of hot JSON answers.

The server-side cache is what keeps p99 low under load: 100 clients asking for the latest
readings of Vitré at once cause one InfluxDB query, not 100 (concurrent misses on the same
key wait for the first one: single flight). Entries live a few seconds for "latest" and a
minute for aggregates, far below the hourly analytics period, so staleness stays bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.responses import Response


@dataclass(slots=True)
class Cached:
    body: bytes
    media_type: str
    etag: str
    headers: dict[str, str]
    born: float


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return etag in tags


class ResponseCache:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Cached]] = {}

    async def get_or_build(self, key: str, ttl: float, build: Callable[[], Awaitable[Cached]]) -> Cached:
        if ttl <= 0 or self.max_entries == 0:
            return await build()
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit.born < ttl:
            self._entries.move_to_end(key)
            return hit
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Cached] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await build()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(value)
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()


def conditional(request: Request, entry: Cached, max_age: int) -> Response:
    """The full answer, or 304 when the client already holds this version."""
    headers = dict(entry.headers)
    headers["ETag"] = entry.etag
    headers["Cache-Control"] = f"public, max-age={max_age}"
    if _matches(request.headers.get("if-none-match"), entry.etag):
        return Response(status_code=304, headers=headers)
    return Response(entry.body, media_type=entry.media_type, headers=headers)


def build_entry(body: bytes, media_type: str, headers: dict[str, str] | None = None) -> Cached:
    return Cached(body, media_type, etag_of(body), headers or {}, time.monotonic())
