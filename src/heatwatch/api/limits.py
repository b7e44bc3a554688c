"""Bounded cost per client: the client address, expensive work slots and open-stream counts.

* :func:`client_key` — who a request is from: the address uvicorn's proxy-headers middleware leaves in the
  scope (the trusted proxy's ``X-Forwarded-For`` client, else the peer). An IPv6 client is its /64: one host
  gets a whole /64 and could otherwise spread its requests over 2^64 addresses.
* :class:`Slots` — a small pool shared by the expensive answers (PNG and kriged maps, the drivers model,
  intervention effects, rankings, CSV and Parquet exports). A request beyond the pool waits in a short queue;
  beyond the queue it gets 503 with ``Retry-After`` at once, so a burst of renders cannot take the workers and
  the database from everyone else. One client runs at most ``per_client`` of them (its next ones wait their
  turn, 429 past as many waiting), so it cannot take the whole pool either.
* :class:`Streams` — open ``/v1/live`` connections, in total (503 beyond) and per client (429 beyond).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .errors import ApiError


def client_key(scope: Scope) -> str:
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Ticket:
    """A held slot; :meth:`release` is idempotent (a streamed export may end in more than one way)."""

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


class Slots:
    """``slots`` expensive answers at once, of which one client runs at most ``per_client``; a request beyond its
    client's share waits for one of that client's own (at most ``per_client`` waiting per client, 429 beyond:
    a page opening three maps waits a little, a flood is refused), then for a free slot (at most ``queue``
    waiting in all, 503 beyond). Waiting is first come, first served, so a busy client's next request queues
    behind everyone else's."""

    def __init__(self, slots: int, queue: int, per_client: int, retry_after_s: int) -> None:
        self.slots = slots
        self.queue = queue
        self.per_client = per_client
        self.retry_after_s = retry_after_s
        self._sem = asyncio.Semaphore(slots)
        self._mine: dict[str, asyncio.Semaphore] = {}
        self._waiting = 0
        self._active = 0
        self._held: Counter[str] = Counter()  # per client: running and waiting
        # Read by the metrics at scrape time (api/metrics.py).
        self.waits = 0
        self.wait_seconds = 0.0
        self.refused_per_client = 0
        self.refused_busy = 0

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return self._waiting

    def _busy(self, status: int, code: str, message: str) -> ApiError:
        return ApiError(status, code, message, {"Retry-After": str(self.retry_after_s)})

    async def acquire(self, client: str) -> Ticket:
        if self._held[client] >= 2 * self.per_client:
            self.refused_per_client += 1
            raise self._busy(429, "too_many_expensive_requests",
                             f"at most {self.per_client} maps, models or exports at once per client (and as many "
                             "waiting): wait for yours to finish")
        mine = self._mine.get(client)
        if mine is None:
            mine = self._mine[client] = asyncio.Semaphore(self.per_client)
        must_wait = mine.locked() or self._sem.locked()
        if must_wait and self._waiting >= self.queue:
            self.refused_busy += 1
            raise self._busy(503, "busy", "the server is busy with maps, models and exports; retry later")
        self._held[client] += 1
        self._waiting += 1
        got_mine = False
        if must_wait:
            self.waits += 1
        began = time.perf_counter()
        try:
            await mine.acquire()
            got_mine = True
            await self._sem.acquire()
        except BaseException:
            if got_mine:
                mine.release()
            self._drop(client)
            raise
        finally:
            self._waiting -= 1
            if must_wait:
                self.wait_seconds += time.perf_counter() - began
        self._active += 1

        def release() -> None:
            self._active -= 1
            self._sem.release()
            mine.release()
            self._drop(client)

        return Ticket(release)

    def _drop(self, client: str) -> None:
        self._held[client] -= 1
        if self._held[client] <= 0:
            del self._held[client]
            self._mine.pop(client, None)

    @asynccontextmanager
    async def hold(self, client: str) -> AsyncIterator[None]:
        ticket = await self.acquire(client)
        try:
            yield
        finally:
            ticket.release()


class Streams:
    """Open streams, in total and per client (no waiting: a stream holds its place until it closes)."""

    def __init__(self, total: int, per_client: int, retry_after_s: int = 30) -> None:
        self.total = total
        self.per_client = per_client
        self.retry_after_s = retry_after_s
        self._open: Counter[str] = Counter()
        self._count = 0
        self.refused_per_client = 0  # read by the metrics (api/metrics.py)
        self.refused_capacity = 0

    @property
    def open(self) -> int:
        return self._count

    def acquire(self, client: str) -> Ticket:
        retry = {"Retry-After": str(self.retry_after_s)}
        if self._open[client] >= self.per_client:
            self.refused_per_client += 1
            raise ApiError(429, "too_many_streams", f"at most {self.per_client} live streams per client: close one "
                                                    "first (one stream carries every town)", retry)
        if self._count >= self.total:
            self.refused_capacity += 1
            raise ApiError(503, "too_many_streams", "the live stream is at capacity; retry later", retry)
        self._open[client] += 1
        self._count += 1

        def release() -> None:
            self._count -= 1
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]

        return Ticket(release)


class HeldStreamingResponse(StreamingResponse):
    """A streamed answer that gives its ticket back however it ends: complete, failed or the client gone."""

    def __init__(self, content: Any, ticket: Ticket, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.ticket = ticket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.ticket.release()
