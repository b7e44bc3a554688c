"""FastRoute (api/solve.py) answers exactly as FastAPI's own handler: same values, same 4xx, same error lists."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.responses import Response

from heatwatch.api import errors
from heatwatch.api.deps import get_settings
from heatwatch.api.errors import ApiError
from heatwatch.api.params import query_guard
from heatwatch.api.responses import JSONBytes
from heatwatch.api.solve import FastRoute

calls: list[str] = []


async def zone_dep(tz: Annotated[str, Query(pattern=r"^[A-Z][a-z]+$", max_length=12)] = "Paris") -> str:
    calls.append("zone")
    if tz == "Mars":
        raise ApiError(400, "invalid_tz", "no such zone")
    return tz.upper()


async def place_dep(request: Request, town: Annotated[str, Query(pattern=r"^[a-z]+$", max_length=8)]) -> str:
    calls.append("place")
    if town == "paris":
        raise ApiError(404, "not_found", f"unknown town {town!r} on {request.url.path}")
    return town


async def style_dep(zone: Annotated[str, Depends(zone_dep)], sep: Annotated[str, Query(pattern=r"^[,;]$")] = ",",
                    times: Annotated[Literal["utc", "local"], Query()] = "utc") -> str:
    calls.append("style")
    return f"{sep}{times}{zone}"


async def endpoint(place: Annotated[str, Depends(place_dep)], zone: Annotated[str, Depends(zone_dep)],
                   style: Annotated[str, Depends(style_dep)],
                   from_: Annotated[str | None, Query(alias="from", pattern=r"^\d{4}$")] = None,
                   limit: Annotated[int | None, Query(ge=1, le=100)] = None, count: bool = False,
                   tag: Annotated[list[str] | None, Query()] = None,
                   network: Literal["all", "town"] = "all") -> Response:
    return JSONBytes({"place": place, "zone": zone, "style": style, "from": from_, "limit": limit, "count": count,
                      "tag": tag, "network": network, "calls": list(calls)})


def make(route_class: type) -> FastAPI:
    app = FastAPI(dependencies=[Depends(query_guard)])
    errors.install(app)
    router = APIRouter(prefix="/v1", route_class=route_class)
    router.add_api_route("/x", endpoint, methods=["GET"])
    app.include_router(router)
    return app


QUERIES = [
    "town=vitre", "", "town=vitre&tz=Lyon&sep=%3B&times=local&from=2024&limit=5&count=true&tag=a&tag=b&network=town",
    "town=VITRE", "town=paris", "town=paris&tz=bad", "town=vitre&tz=bad", "town=vitre&tz=Mars", "town=BAD&tz=Mars",
    "town=vitre&tz=bad&sep=x", "town=vitre&limit=0&count=maybe&from=x&network=x&times=x", "town=vitre&limit=abc",
    "town=vitre&zz=1", "town=vitre&town=vitre", "town=&tz=", "town=vitre&tag=", "town=vitre&count=1&limit=100",
    "town=abcdefghij", "town=vitre&tz=Abcdefghijklm", "limit=5&tz=bad",
]


@pytest.fixture(scope="module")
def clients():
    with TestClient(make(FastRoute)) as fast, TestClient(make(APIRoute)) as plain:
        yield fast, plain


@pytest.mark.parametrize("query", QUERIES)
def test_fast_route_answers_as_fastapi(clients, query):
    fast, plain = clients
    calls.clear()
    a = fast.get(f"/v1/x?{query}")
    calls_fast = list(calls)
    calls.clear()
    b = plain.get(f"/v1/x?{query}")
    assert (a.status_code, a.content) == (b.status_code, b.content)
    assert calls_fast == calls  # the same dependencies called, in the same order, once each
    assert a.status_code in (200, 400, 404, 422)


def test_fast_route_plans_the_route_and_falls_back_for_overrides(clients):
    fast, _ = clients
    route = next(r for r in _api_routes(fast.app) if r.path == "/v1/x")
    assert route.plan_for(fast.app) is not None
    calls.clear()
    ok = fast.get("/v1/x?town=vitre&tz=Lyon").json()
    assert ok["zone"] == "LYON" and ok["style"] == ",utcLYON" and ok["calls"] == ["place", "zone", "style"]
    fast.app.dependency_overrides[zone_dep] = lambda: "OVERRIDDEN"  # only FastAPI's handler knows overrides
    try:
        assert fast.get("/v1/x?town=vitre").json()["zone"] == "OVERRIDDEN"
    finally:
        fast.app.dependency_overrides.clear()


def test_a_tree_the_plan_cannot_read_is_left_to_fastapi(monkeypatch):
    """A FastAPI whose Dependant is not what the plan reads (an upgrade) must not break a route: it is logged and
    FastAPI's own handler serves it."""
    from heatwatch.api import solve

    def broken(dependant):
        raise AttributeError("'Dependant' object has no attribute 'query_params'")

    monkeypatch.setattr(solve, "_plan", broken)
    with TestClient(make(FastRoute)) as fast, TestClient(make(APIRoute)) as plain:
        route = next(r for r in _api_routes(fast.app) if r.path == "/v1/x")
        assert route.plan_for(fast.app) is None
        for query in ("town=vitre&tz=Lyon", "town=vitre&limit=0"):
            calls.clear()
            a = fast.get(f"/v1/x?{query}")
            calls.clear()
            b = plain.get(f"/v1/x?{query}")
            assert (a.status_code, a.content) == (b.status_code, b.content)


PATHS = ("/v1/daily", "/v1/hourly", "/v1/latest", "/v1/indices", "/v1/sensors", "/v1/alerts")


def test_data_routes_are_planned_and_answer_as_fastapi(client):
    """The api's own routes: the plan is used (not the fallback), and a battery of bad requests gets the same answer
    from the plan as from FastAPI's handler (forced by an override that changes nothing)."""
    app = client.app
    for path in ("/v1/daily", "/v1/hourly", "/v1/readings", "/v1/latest", "/v1/towns", "/v1/indices", "/v1/sensors",
                 "/v1/alerts"):
        route = next(r for r in _api_routes(app) if r.path == path)
        assert isinstance(route, FastRoute) and route.plan_for(app) is not None, path
    queries = ["town=VITRE!", "town=paris&tz=Bad%20Zone", "town=vitre&tz=Bad%20Zone", "town=vitre&tz=Mars/Olympus",
               "town=VITRE!&tz=Mars/Olympus", "town=vitre&sep=|&times=now&limit=0&qc=-1&format=xml&network=x",
               "town=vitre&zz=1", "town=vitre&town=vitre", "", "town=vitre&count=maybe&cursor=x&from=x&to=y",
               "town=vitre&decimal=%2C", "town=vitre&limit=100001&qc_max=99999", "format=csv&sep=%3B"]
    fast = {(p, q): client.get(f"{p}?{q}") for p in PATHS for q in queries}
    app.dependency_overrides[get_settings] = get_settings
    try:
        plain = {(p, q): client.get(f"{p}?{q}") for p in PATHS for q in queries}
    finally:
        app.dependency_overrides.clear()
    for key, a in fast.items():
        b = plain[key]
        assert (a.status_code, a.content) == (b.status_code, b.content), key
    assert {a.status_code for a in fast.values()} == {200, 400, 404, 422}  # /v1/latest takes no town: 200


def _api_routes(app: FastAPI) -> list:
    out = []
    for r in app.routes:
        inner = getattr(r, "original_router", None)
        out += inner.routes if inner is not None else [r]
    return out
