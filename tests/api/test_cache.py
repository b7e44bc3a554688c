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
