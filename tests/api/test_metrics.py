"""The api's Prometheus metrics (api/metrics.py), read from the app's registry after real requests through the whole
middleware stack on the session's influxd. The listener, the live-clients gauge and the dashboard's metrics are
checked against running processes in tests/stack/test_metrics_scrape.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from heatwatch.api.app import create_app
from heatwatch.api.errors import ApiError
from heatwatch.api.limits import Slots
from heatwatch.api.metrics import template_of
from support.apps import with_api


def sample(client: TestClient, name: str, **labels: str) -> float:
    value = client.app.state.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_request_is_timed_under_its_route_template_never_its_raw_path(client: TestClient) -> None:
    for town in ("vitre", "saint-omer"):
        assert client.get(f"/v1/towns/{town}").status_code == 200
    assert client.get("/v1/towns/nowhere").status_code == 404
    assert client.get("/v1/towns", params={"bogus": "1"}).status_code == 400
    assert client.get("/made/up/path").status_code == 404
    assert client.request("BREW", "/v1/towns/vitre").status_code == 405  # any method token: one "other" label

    route = {"method": "GET", "route": "/v1/towns/{town}"}
    assert sample(client, "heatwatch_api_request_duration_seconds_count", **route) == 3
    assert sample(client, "heatwatch_api_request_duration_seconds_bucket", **route, le="+Inf") == 3
    assert sample(client, "heatwatch_api_responses_total", **route, status="2xx") == 2
    assert sample(client, "heatwatch_api_responses_total", **route, status="4xx") == 1
    assert sample(client, "heatwatch_api_responses_total", method="GET", route="/v1/towns", status="4xx") == 1
    assert sample(client, "heatwatch_api_responses_total", method="GET", route="unmatched", status="4xx") == 1
    text = generate_latest(client.app.state.metrics.registry).decode()
    # Bounded cardinality: no town, id or made-up path ever becomes a label value.
    assert sample(client, "heatwatch_api_responses_total", method="other", route="/v1/towns/{town}", status="4xx") == 1
    for raw in ("saint-omer", "nowhere", "/made/up", "BREW"):
        assert raw not in text
    assert sample(client, "heatwatch_api_requests_in_flight") == 0


@pytest.fixture
def api_config() -> dict[str, Any]:
    return {"rate_limit_per_s": 0, "cache_ttl_latest_s": 30, "cache_ttl_agg_s": 30}


def test_cached_answers_are_counted_as_cache_hits_under_their_route(client: TestClient) -> None:
    for _ in range(3):
        assert client.get("/v1/towns").status_code == 200
    # The first is built (a miss in both layers); the next two come from the hot cache, before any routing.
    assert sample(client, "heatwatch_api_cache_lookups_total", layer="hot", result="hit") == 2
    assert sample(client, "heatwatch_api_cache_lookups_total", layer="hot", result="miss") == 1
    assert sample(client, "heatwatch_api_cache_lookups_total", layer="response", result="miss") == 1
    assert sample(client, "heatwatch_api_request_duration_seconds_count", method="GET", route="/v1/towns") == 3
    assert sample(client, "heatwatch_api_cache_entries") >= 1


def test_rate_limit_refusals_are_counted_apart_from_other_429s(api_settings, seed) -> None:
    seed([])
    app = create_app(with_api(api_settings, rate_limit_per_s=0.001, rate_limit_burst=2, cache_ttl_latest_s=0,
                              cache_ttl_agg_s=0))
    with TestClient(app) as c:
        codes = [c.get("/v1/towns/vitre").status_code for _ in range(4)]
        assert codes == [200, 200, 429, 429]
        assert sample(c, "heatwatch_api_rate_limited_total") == 2
        # Refused before routing, still counted under the route the request was for.
        assert sample(c, "heatwatch_api_responses_total", method="GET", route="/v1/towns/{town}", status="4xx") == 2


@pytest.mark.anyio
async def test_expensive_slot_waits_and_refusals_are_counted() -> None:
    slots = Slots(slots=1, queue=1, per_client=1, retry_after_s=1)
    first = await slots.acquire("a")
    waiter = asyncio.create_task(slots.acquire("b"))  # waits for the one slot
    await asyncio.sleep(0.05)
    assert slots.waiting == 1
    with pytest.raises(ApiError) as busy:  # the queue (1) is full: 503 at once
        await slots.acquire("c")
    assert busy.value.status == 503
    first.release()
    (await waiter).release()
    t = await slots.acquire("a")
    a2 = asyncio.create_task(slots.acquire("a"))  # a's own share is taken: waits behind it
    await asyncio.sleep(0.05)
    with pytest.raises(ApiError) as mine:  # a has 2 × per_client running or waiting: 429
        await slots.acquire("a")
    assert mine.value.status == 429
    t.release()
    (await a2).release()
    assert (slots.waits, slots.refused_busy, slots.refused_per_client) == (2, 1, 1)
    assert slots.wait_seconds > 0


def test_route_template_of_a_mount() -> None:
    from starlette.routing import Mount
    assert template_of(Mount("/static", app=lambda *a: None)) == "/static/{path}"
