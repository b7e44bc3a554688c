"""ResponseCache: single flight on a miss, stale-while-revalidate on expiry, bounded staleness."""

from __future__ import annotations

import asyncio

import pytest

from heatwatch.api.cache import ResponseCache, build_entry

pytestmark = pytest.mark.anyio


async def test_single_flight_and_stale_while_revalidate():
    cache = ResponseCache(16)
    calls = 0

    async def build():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return build_entry(str(calls).encode(), "text/plain")

    got = await asyncio.gather(*(cache.get_or_build("k", 0.2, build) for _ in range(50)))
    assert calls == 1 and {g.body for g in got} == {b"1"}  # 50 concurrent misses, one build

    await asyncio.sleep(0.25)  # expired, but less than two TTLs old
    stale = await cache.get_or_build("k", 0.2, build)
    assert stale.body == b"1"  # answered at once from the stale entry...
    await asyncio.sleep(0.1)
    assert calls == 2 and (await cache.get_or_build("k", 0.2, build)).body == b"2"  # ...refreshed behind

    await asyncio.sleep(0.45)  # older than two TTLs: too stale to serve, the caller waits for a build
    assert (await cache.get_or_build("k", 0.2, build)).body == b"3"


async def test_hot_cache_lets_one_request_refresh_an_expired_answer():
    """When a hot answer expires under load, one request goes through to the app; the rest keep the
    old answer meanwhile instead of all queueing behind FastAPI."""
    import httpx

    from heatwatch.api.cache import TTL_HEADER, HotCache

    calls = 0

    async def app(scope, receive, send):
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (TTL_HEADER.encode(), b"0.2")]})
        await send({"type": "http.response.body", "body": str(calls).encode()})

    hot = HotCache(app, ResponseCache(16))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hot), base_url="http://t") as client:
        assert (await client.get("/v1/x")).text == "1"
        assert (await client.get("/v1/x")).text == "1" and calls == 1  # served hot
        await asyncio.sleep(0.25)  # expired
        bodies = [r.text for r in await asyncio.gather(*(client.get("/v1/x") for _ in range(30)))]
        assert calls == 2  # one refresh for thirty requests
        assert bodies.count("2") == 1 and bodies.count("1") == 29
        assert (await client.get("/v1/x")).text == "2"
