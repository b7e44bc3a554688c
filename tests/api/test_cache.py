"""ResponseCache: single flight on a miss, stale-while-revalidate on expiry, bounded staleness — on a clock
the test moves, so no test waits for a TTL to pass."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from heatwatch.api.cache import TTL_HEADER, HotCache, ResponseCache, build_entry
from heatwatch.api.params import SCOPE_KEY

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let every task that can run, run (background refreshes, requests parked on a build)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_single_flight_and_stale_while_revalidate():
    clock = Clock()
    cache = ResponseCache(16, clock=clock)
    calls = 0
    gate = asyncio.Event()

    async def build():
        nonlocal calls
        calls += 1
        await gate.wait()
        return build_entry(str(calls).encode(), "text/plain")

    waiting = [asyncio.create_task(cache.get_or_build("k", 0.2, build)) for _ in range(50)]
    await settle()
    gate.set()
    got = await asyncio.gather(*waiting)
    assert calls == 1 and {g.body for g in got} == {b"1"}  # 50 concurrent misses, one build

    clock.now += 0.1  # fresh
    assert (await cache.get_or_build("k", 0.2, build)).body == b"1" and calls == 1
    clock.now += 0.15  # expired, but less than two TTLs old
    stale = await cache.get_or_build("k", 0.2, build)
    assert stale.body == b"1"  # answered at once from the stale entry...
    await settle()
    assert calls == 2 and (await cache.get_or_build("k", 0.2, build)).body == b"2"  # ...refreshed behind

    clock.now += 0.45  # older than two TTLs: too stale to serve, the caller waits for a build
    assert (await cache.get_or_build("k", 0.2, build)).body == b"3"


async def test_hot_cache_lets_one_request_refresh_an_expired_answer():
    """When a hot answer expires under load, one request goes through to the app; the rest keep the
    old answer meanwhile instead of all queueing behind FastAPI."""
    clock = Clock()
    calls = 0
    gate = asyncio.Event()
    gate.set()

    async def app(scope, receive, send):
        nonlocal calls
        calls += 1
        scope[SCOPE_KEY] = ""  # the normalised query, as the app's query guard records it
        await gate.wait()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (TTL_HEADER.encode(), b"0.2")]})
        await send({"type": "http.response.body", "body": str(calls).encode()})

    hot = HotCache(app, ResponseCache(16, clock=clock))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hot), base_url="http://t") as client:
        assert (await client.get("/v1/x")).text == "1"
        assert (await client.get("/v1/x")).text == "1" and calls == 1  # served hot
        clock.now += 0.25  # expired
        gate.clear()  # the refresh takes a while
        refresh = asyncio.create_task(client.get("/v1/x"))
        await settle()
        others = [r.text for r in await asyncio.gather(*(client.get("/v1/x") for _ in range(29)))]
        assert calls == 2 and others == ["1"] * 29  # one refresh for thirty requests, the others served at once
        gate.set()
        assert (await refresh).text == "2"
        assert (await client.get("/v1/x")).text == "2"
