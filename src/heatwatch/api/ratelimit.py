"""Per-client rate limit: a token bucket per client address, as pure ASGI middleware.

In memory and per process: each API replica limits on its own, which is the usual trade-off
(no shared store to run) and still protects InfluxDB from one greedy client. The client is the address
uvicorn's proxy-headers middleware leaves in the scope: the one a trusted proxy forwards
(``HEATWATCH_API_TRUSTED_PROXIES``), else the peer — so behind a proxy each user has a bucket of their own,
and nobody else can pick theirs by sending an ``X-Forwarded-For``. Health probes are
exempt so an orchestrator never sees a throttled probe as a dead service.
"""

from __future__ import annotations

import math
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from .formats import dumps
from .limits import client_key

_EXEMPT = ("/healthz", "/readyz")
#: Scope key set on a request this middleware refuses (the metrics count it: other 429s are not rate limiting).
RATE_LIMITED = "heatwatch.rate_limited"


class RateLimit:
    def __init__(self, app: ASGIApp, rate_per_s: float, burst: int, max_clients: int = 10_000) -> None:
        self.app = app
        self.rate = rate_per_s
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill time)

    def _take(self, client: str) -> float:
        """0 when allowed; otherwise the seconds until a token is back."""
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _evict(self) -> None:
        # Full buckets carry no state worth keeping; drop them first to stay bounded.
        now = time.monotonic()
        for key, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.burst:
                del self._buckets[key]
        while len(self._buckets) > self.max_clients:
            self._buckets.pop(next(iter(self._buckets)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0 or scope["path"] in _EXEMPT:
            await self.app(scope, receive, send)
            return
        # The client behind a trusted proxy (the proxy-headers middleware runs first), an IPv6 client as its /64.
        key = client_key(scope)
        if len(self._buckets) > self.max_clients:
            self._evict()
        wait = self._take(key)
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        scope[RATE_LIMITED] = True
        body = dumps({"error": {"status": 429, "code": "rate_limited",
                                "message": f"too many requests from {key}: at most {self.rate:g}/s "
                                           f"(bursts of {self.burst:g}); retry in {retry} s"}})
        await send({"type": "http.response.start", "status": 429,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", str(retry).encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
