"""ETag / If-None-Match, Cache-Control, and a small server-side cache of hot JSON answers.

The server-side cache is what keeps p99 low under load: 100 clients asking for the latest
readings of Vitré at once cause one InfluxDB query, not 100 (concurrent misses on the same
key wait for the first one: single flight). Entries live a few seconds for "latest" and a
minute for aggregates, far below the hourly analytics period, so staleness stays bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import xxhash
from fastapi import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heatwatch.core.logging import get_logger

from .formats import accept_key
from .params import SCOPE_KEY

log = get_logger("heatwatch.api")

TTL_HEADER = "x-heatwatch-cache-ttl"
_TTL_RAW = TTL_HEADER.encode()


@dataclass(slots=True)
class Cached:
    body: bytes
    media_type: str
    etag: str
    headers: dict[str, str]
    born: float  # on the cache's clock (time.monotonic unless a test gives another)
    expires: float = 0.0  # set when the entry enters the cache


def etag_of(body: bytes) -> str:
    """The body's strong validator. XXH3-128: an ETag needs no cryptographic strength, only a negligible chance of
    two bodies sharing one, and it hashes a 120 kB answer in ~3 µs where blake2b took ~160 µs."""
    return '"' + xxhash.xxh3_128_hexdigest(body) + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return etag in tags


class ResponseCache:
    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        # Injectable so tests move time forward instead of sleeping through TTLs.
        self.clock = clock
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Cached]] = {}
        self._tasks: set[asyncio.Task[Cached]] = set()  # background refreshes (strong refs)
        # Finished responses kept by HotCache; here so that clear() empties both layers.
        self.hot: OrderedDict[tuple[str, str, str, bool], _Hot] = OrderedDict()
        # Raw request (path, query string, accepted formats, gzip) → the normalised key its answer is kept under.
        self.aliases: OrderedDict[tuple[str, bytes, str, bool], tuple[str, str, str, bool]] = OrderedDict()
        # Lookups by result, read by the metrics at scrape time (api/metrics.py); plain ints, one event loop.
        self.counts: dict[str, int] = {"hit": 0, "stale": 0, "wait": 0, "miss": 0}
        self.hot_hits = 0
        self.hot_misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get_or_build(self, key: str, ttl: float, build: Callable[[], Awaitable[Cached]]) -> Cached:
        """Fresh entry, or build it once for all concurrent callers (single flight).

        Stale-while-revalidate: an entry expired less than ``ttl`` ago is still served while one
        background task rebuilds it, so no request waits for InfluxDB when an entry expires under load
        (that wait was the p99). Staleness stays under two TTLs.
        """
        if ttl <= 0 or self.max_entries == 0:
            return await build()
        hit = self._entries.get(key)
        now = self.clock()
        if hit is not None and now - hit.born < ttl:
            self._entries.move_to_end(key)
            self.counts["hit"] += 1
            return hit
        pending = self._inflight.get(key)
        if hit is not None and now - hit.born < 2 * ttl:
            self.counts["stale"] += 1
            if pending is None:
                task = asyncio.get_running_loop().create_task(self._build(key, ttl, build))
                self._tasks.add(task)
                task.add_done_callback(self._refreshed)
            return hit
        if pending is not None:
            self.counts["wait"] += 1
            return await asyncio.shield(pending)
        self.counts["miss"] += 1
        return await self._build(key, ttl, build)

    def _refreshed(self, task: asyncio.Task[Cached]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The stale entry keeps being served until it is two TTLs old; then callers see the error.
            log.warning("api.cache_refresh_failed", error=repr(task.exception()))

    async def _build(self, key: str, ttl: float, build: Callable[[], Awaitable[Cached]]) -> Cached:
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
        value.born = self.clock()
        value.expires = value.born + ttl
        future.set_result(value)
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()
        self.hot.clear()
        self.aliases.clear()


def conditional(request: Request, entry: Cached, max_age: int, now: float | None = None) -> Response:
    """The full answer, or 304 when the client already holds this version. ``now``: the cache's clock."""
    headers = dict(entry.headers)
    headers["ETag"] = entry.etag
    headers["Cache-Control"] = f"public, max-age={max_age}"
    remaining = entry.expires - (time.monotonic() if now is None else now)
    if remaining > 0.05:
        # Tells HotCache (below) it may keep the finished bytes for as long as this entry lives.
        headers[TTL_HEADER] = f"{remaining:.3f}"
    if _matches(request.headers.get("if-none-match"), entry.etag):
        return Response(status_code=304, headers=headers)
    return Response(entry.body, media_type=entry.media_type, headers=headers)


def build_entry(body: bytes, media_type: str, headers: dict[str, str] | None = None) -> Cached:
    return Cached(body, media_type, etag_of(body), headers or {}, time.monotonic())


STALE_GRACE_S = 5.0


@dataclass(slots=True)
class _Hot:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes
    expires: float


class HotCache:
    """ASGI fast path in front of FastAPI for answers already in :class:`ResponseCache`.

    Routing, dependency injection and parameter validation cost far more than sending cached bytes;
    under 100 concurrent clients that cost is the queue every request waits in. This layer keeps the
    finished response (already gzipped when the client accepts it) for the remaining life of the
    route's cache entry, which the route announces in an internal header stripped here. If-None-Match is
    answered with 304 on this path too.

    Key: the normalised request (:mod:`.params`: path, declared parameters sorted with their defaults), the
    formats ``Accept`` ranks (:func:`.formats.accept_key`) and gzip acceptance — never a raw header or the
    raw query string. This layer runs before routing, so it cannot normalise a query itself: it learns
    which raw query stands for which normalised one when the app answers it (``aliases``, bounded), and a
    raw query it has not seen goes through the app, where the guard refuses unknown parameters and the
    response cache answers the rest without touching the database.
    """

    def __init__(self, app: ASGIApp, cache: ResponseCache) -> None:
        self.app = app
        self.cache = cache
        self.max_entries = cache.max_entries
        self.clock = cache.clock
        self._entries = cache.hot
        self._aliases = cache.aliases
        self._accepts: dict[bytes, str] = {}
        # Keys whose expired entry one request is refreshing through the app right now.
        self._refreshing: set[tuple[str, str, str, bool]] = set()

    def _accept_key(self, accept: bytes) -> str:
        hit = self._accepts.get(accept)
        if hit is None:
            hit = accept_key(accept.decode("latin-1"))
            if len(self._accepts) < 1024:  # a few distinct browsers and tools; anything beyond is computed
                self._accepts[accept] = hit
        return hit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith("/v1/") \
                or scope["path"].startswith(("/v1/admin", "/v1/contribute")):  # never a shared answer
            await self.app(scope, receive, send)
            return
        accept = b""
        gz = False
        inm = None
        for k, v in scope["headers"]:
            if k == b"accept":
                accept = v
            elif k == b"accept-encoding":
                gz = b"gzip" in v
            elif k == b"if-none-match":
                inm = v
        acc = self._accept_key(accept)
        raw = (scope["path"], scope.get("query_string", b""), acc, gz)
        key = self._aliases.get(raw)
        hit = self._entries.get(key) if key is not None else None
        if hit is not None and key is not None:
            now = self.clock()
            # Expired: one request refreshes it through the app, the others keep getting the old
            # answer meanwhile (for at most one refresh, bounded by STALE_GRACE_S). Letting them all
            # through at once was the p99 of the hottest endpoints under load.
            fresh = hit.expires > now
            if not fresh:
                if key in self._refreshing and now - hit.expires < STALE_GRACE_S:
                    fresh = True
                else:
                    self._refreshing.add(key)
            if fresh:
                self.cache.hot_hits += 1
                if inm is not None and _matches(inm.decode("latin-1"), hit.etag.decode("latin-1")):
                    keep = [(k, v) for k, v in hit.headers if k not in (b"content-length", b"content-type",
                                                                          b"content-encoding")]
                    await send({"type": "http.response.start", "status": 304, "headers": keep})
                    await send({"type": "http.response.body", "body": b""})
                else:
                    await send({"type": "http.response.start", "status": hit.status, "headers": hit.headers})
                    await send({"type": "http.response.body", "body": hit.body})
                return
            # This request refreshes; the stale entry stays for the others until _store replaces it.
        self.cache.hot_misses += 1

        start: Message | None = None
        ttl = 0.0
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start, ttl
            if message["type"] == "http.response.start":
                headers = []
                for k, v in message.get("headers", []):
                    if k == _TTL_RAW:
                        ttl = float(v)
                    else:
                        headers.append((k, v))
                message["headers"] = headers
                start = message
            elif message["type"] == "http.response.body" and ttl > 0:
                chunks.append(message.get("body", b""))
                normalised = scope.get(SCOPE_KEY)
                if not message.get("more_body", False) and start is not None and start["status"] == 200 \
                        and normalised is not None:
                    self._store(raw, (scope["path"], normalised, acc, gz), start, b"".join(chunks), ttl)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if key is not None:
                self._refreshing.discard(key)

    def _store(self, raw: tuple[str, bytes, str, bool], key: tuple[str, str, str, bool], start: Message,
               body: bytes, ttl: float) -> None:
        headers = list(start["headers"])
        etag = next((v for k, v in headers if k == b"etag"), b"")
        self._entries[key] = _Hot(start["status"], headers, body, etag, self.clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self._aliases[raw] = key
        self._aliases.move_to_end(raw)
        while len(self._aliases) > 8 * self.max_entries:
            self._aliases.popitem(last=False)
