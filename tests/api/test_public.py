"""The api facing the internet (issue 13): no cache poisoning, unknown parameters refused, the normalised request
as the cache key, bounded statements, the client behind a trusted proxy, the live-stream and expensive-work caps,
and nothing internal in answers. Against the session's influxd, mostly under a real uvicorn."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.api.errors import ApiError
from heatwatch.api.limits import Slots, client_key
from heatwatch.api.store import BoundedClient, UnboundedQuery, check_bounded
from heatwatch.core.settings import Settings
from heatwatch.stack.embedded import free_port
from support.apps import NO_LIMITS, with_api

PUBLIC = "https://donnees.example.fr/chaleur"
EVIL = "evil.example"


@contextmanager
def served(settings: Settings, **options: Any) -> Iterator[tuple[str, Any]]:
    """The app of ``settings`` under a real uvicorn on a free loopback port: (base URL, app)."""
    port = free_port()
    app = create_app(with_api(settings, **{"port": port, **options}))
    # As `heatwatch api` runs it (api/server.py): uvicorn adds no proxy-headers middleware of its own.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)


def all_urls(body: Any) -> list[str]:
    found: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str) and x.startswith(("http://", "https://")):
            found.append(x)

    walk(body)
    return found


# --- one public base URL, Host never trusted -------------------------------------------------------------


def test_a_forged_host_cannot_poison_what_others_get(api_settings, dataset) -> None:
    """The attack of the review: one request with a forged Host (and forwarded host/proto) made the next ordinary
    request's datapackage, catalogue and next links point at the attacker. Now every absolute URL starts with the
    configured public URL, whoever asked first and with whatever headers."""
    forged = {"Host": EVIL, "X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "http", "Forwarded": f"host={EVIL}"}
    with served(api_settings, public_url=PUBLIC, rate_limit_per_s=0) as (base, _):  # the cache on: the target
        paged = {"town": "vitre", "from": "2024-07-19", "to": "2024-07-22", "limit": "10"}
        for path, params in (("/v1/datapackage.json", {}), ("/v1/catalog", {}), ("/v1/hourly", paged),
                             ("/sta/v1.1", {})):
            attack = httpx.get(f"{base}{path}", params=params, headers=forged, timeout=30)
            assert attack.status_code == 200, attack.text
            ordinary = httpx.get(f"{base}{path}", params=params, timeout=30)
            for r in (attack, ordinary):
                urls = all_urls(r.json())
                assert urls, path
                assert EVIL not in r.text
                own = [u for u in urls if "example.fr/chaleur" in u or "127.0.0.1" in u]
                assert own and all(u.startswith(PUBLIC + "/") for u in own), (path, own[:3])
            assert ordinary.content == attack.content  # one cached answer, the right one
        nxt = httpx.get(f"{base}/v1/hourly", params=paged, timeout=30).json()["meta"]["next"]
        assert nxt.startswith(f"{PUBLIC}/v1/hourly?")


def test_on_loopback_urls_name_the_listen_address(api_settings, dataset) -> None:
    with served(api_settings, **NO_LIMITS) as (base, _):
        body = httpx.get(f"{base}/v1/datapackage.json", headers={"Host": EVIL}).json()
        assert all(u.startswith(base + "/") for u in all_urls(body) if "etalab" not in u)


# --- unknown parameters, the normalised request ---------------------------------------------------------


def _routes(app: Any) -> Iterator[APIRoute]:
    def walk(routes: Any) -> Iterator[APIRoute]:
        for r in routes:
            if isinstance(r, APIRoute):
                yield r
            elif hasattr(r, "original_router"):
                yield from walk(r.original_router.routes)

    yield from walk(app.router.routes)


def test_every_route_refuses_an_unknown_parameter_by_name(client) -> None:
    checked = 0
    for route in _routes(client.app):
        for method in sorted(route.methods - {"HEAD"}):
            template = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # {resource_path:path} → {resource_path}
            path = template.format(town="vitre", sensor_id="x-1", id="1", name="trees", dataset="hourly",
                                   resource_path="Things", month="2024-07", file="hourly.csv.gz", version="1",
                                   sensor="x-1")
            r = client.request(method, path, params={"utm_source": "x", "bogus": "1"},
                               headers={"Authorization": "Bearer " + "t" * 40})
            assert r.status_code == 400, (method, route.path, r.status_code, r.text[:200])
            error = r.json()["error"]
            assert error["code"] == "unknown_parameter" and "'bogus'" in error["message"] \
                and "'utm_source'" in error["message"], (route.path, error)
            checked += 1
    assert checked >= 40  # every route of the api, whatever it is (the live stream and admin included)
    r = client.get("/v1/latest", params=[("town", "vitre"), ("town", "saint-omer")])
    assert r.status_code == 400 and r.json()["error"]["code"] == "repeated_parameter"


def test_one_cache_entry_for_one_meaning(api_settings, dataset) -> None:
    """Order, defaults written out or left out, and made-up Accept values are one request: one entry, one
    database round trip; unknown parameters never reach the cache (they used to make an entry each)."""
    app = create_app(with_api(api_settings, rate_limit_per_s=0, cache_ttl_latest_s=60, cache_ttl_agg_s=60))
    variants = ["/v1/latest?town=vitre", "/v1/latest?sep=%2C&town=vitre", "/v1/latest?town=vitre&sep=,",
                "/v1/latest?sep=,&town=vitre"]
    with TestClient(app) as c:
        bodies = set()
        for i, url in enumerate(variants * 3):
            # Made-up media types rank nothing: the same formats asked for, the same key.
            accept = ["application/json", f"application/x-junk-{i}, application/json;q=0.9"][i % 2]
            r = c.get(url, headers={"Accept": accept})
            assert r.status_code == 200
            bodies.add(r.content)
        for i in range(20):
            assert c.get(f"/v1/latest?town=vitre&nocache={i}").status_code == 400
        normalised = "sep=%2C&times=utc&town=vitre&tz=Europe%2FParis"
        assert list(app.state.cache._entries) == [f"/v1/latest?{normalised}|json"]
        assert {(k[0], k[1]) for k in app.state.cache.hot} == {("/v1/latest", normalised)}
        assert len(bodies) == 1  # the answer is a function of the normalised request only
        meta = c.get("/v1/latest?town=vitre").json()["meta"]
        assert meta["query"]["params"] == {"sep": ",", "times": "utc", "town": "vitre", "tz": "Europe/Paris"}


# --- bounded statements ---------------------------------------------------------------------------------


def test_unbounded_statements_are_refused() -> None:
    for q in ('SELECT LAST("temperature") FROM "db"."raw"."reading"',
              'SELECT * FROM "db"."raw"."reading" GROUP BY "sensor" ORDER BY time DESC LIMIT 1',
              'SELECT "t" FROM "db"."agg"."daily" WHERE "town" = $town AND time >= $start'):
        with pytest.raises(UnboundedQuery):
            check_bounded(q)
    check_bounded('SELECT "t" FROM "db"."agg"."daily" WHERE time >= $start AND time < $end LIMIT 10')
    check_bounded('SHOW MEASUREMENTS ON "db" LIMIT 1')  # not a SELECT


class Recording(BoundedClient):
    statements: list[str]

    async def query(self, q: str, params: Any = None, **kw: Any) -> Any:
        self.statements.append(q)
        return await super().query(q, params, **kw)

    async def query_csv(self, q: str, params: Any = None, **kw: Any) -> bytes:
        self.statements.append(q)
        return await super().query_csv(q, params, **kw)


def test_every_statement_of_every_public_route_is_bounded(api_settings, dataset) -> None:
    """A tour of the public routes against the real influxd, recording every statement sent: each has a lower
    time bound and a row cap, including latest (from the last-value store), last-update times and the
    catalogue's coverage, which used to scan every shard."""
    app = create_app(with_api(api_settings, **NO_LIMITS))
    with TestClient(app) as c:
        recorder = Recording(api_settings.influx_base_url, api_settings.influx_db,
                             agg_database=api_settings.influx_agg_database)
        recorder.statements = []
        app.state.influx = recorder
        app.state.store.client = recorder
        days = {"from": "2024-07-10", "to": "2024-07-25"}
        tour = [("/v1/latest", {"town": "vitre"}), ("/v1/latest", {}), ("/v1/sensors", {"town": "vitre"}),
                ("/v1/readings", {"town": "vitre", "from": "2024-07-20", "to": "2024-07-21"}),
                ("/v1/readings", {"town": "vitre", "from": "2024-07-20", "to": "2024-07-21", "format": "csv"}),
                ("/v1/hourly", {"town": "vitre", "from": "2024-07-19", "to": "2024-07-22", "count": "true"}),
                ("/v1/daily", {"town": "vitre", **days}), ("/v1/indices", {"town": "vitre", **days}),
                ("/v1/canicule-episodes", {"town": "vitre", **days}), ("/v1/alerts", {"town": "vitre", **days}),
                ("/v1/alerts", {"town": "vitre", "status": "open"}), ("/v1/uhi", {"town": "vitre"}),
                ("/v1/uhi", {"town": "vitre", "night": "2024-07-20"}), ("/v1/catalog", {}),
                ("/v1/towns/vitre/uhi-map", {"date": "2024-07-20"}),
                ("/v1/towns/vitre/rankings", {"season": "2024"}), ("/readyz", {})]
        for path, params in tour:
            r = c.get(path, params=params)
            # 404/409: no map or ranking from this small data set; the statements were sent all the same.
            assert r.status_code in (200, 404, 409), (path, r.status_code, r.text[:300])
        assert len(recorder.statements) >= len(tour)
        for q in recorder.statements:
            check_bounded(q)
        selects = [q for q in recorder.statements if q.lstrip().upper().startswith("SELECT")]
        assert not any("LAST(" in q.upper() or "FIRST(" in q.upper() for q in selects)
        latest = [q for q in selects if '"last_reading"' in q]
        assert latest and all("time = $t0" in q for q in latest)  # latest reads the last-value store


def test_latest_comes_from_the_last_value_store(api_settings, seed) -> None:
    """Readings older than the api's recent window are served from the store analytics keeps; a reading that
    arrives later but is older than the stored one (a backlog flush, a redelivery) never replaces it."""
    from heatwatch.analytics.last import LastReadings
    from heatwatch.core.influx import InfluxClient

    seed(["reading,town=vitre,sensor=a temperature=20.0 1700000000000",
          "reading,town=vitre,sensor=a temperature=21.0 1700000600000"])

    async def flush_older() -> int:
        async with InfluxClient(api_settings.influx_base_url, api_settings.influx_db) as c:
            await c.write_lines(["reading,town=vitre,sensor=a temperature=5.0 1699990000000"])  # a backlog flush
            return await LastReadings(c).refresh(0, int(time.time() * 1000))

    assert asyncio.run(flush_older()) == 0  # nothing newer: nothing written
    with TestClient(create_app(with_api(api_settings, **NO_LIMITS))) as c:
        row = c.get("/v1/latest", params={"town": "vitre"}).json()["data"][0]
        assert (row["sensor"], row["temperature"], row["time"]) == ("a", 21.0, "2023-11-14T22:23:20Z")


# --- the client behind a trusted proxy, rate limit ------------------------------------------------------


def test_the_rate_limit_keys_on_the_client_a_trusted_proxy_names(api_settings, dataset) -> None:
    fwd = lambda ip: {"X-Forwarded-For": ip}  # noqa: E731
    limited = {"rate_limit_per_s": 0.1, "rate_limit_burst": 3, "cache_ttl_latest_s": 0}
    with served(api_settings, trusted_proxies=["127.0.0.1"], **limited) as (base, _):
        url = f"{base}/v1/towns"
        a = [httpx.get(url, headers=fwd("198.51.100.7")).status_code for _ in range(5)]
        assert a == [200, 200, 200, 429, 429]
        assert httpx.get(url, headers=fwd("198.51.100.8")).status_code == 200  # another user, another bucket
        # A forwarded chain is read from the right: a client cannot pick its bucket by prepending addresses.
        assert httpx.get(url, headers=fwd("203.0.113.99, 198.51.100.7")).status_code == 429
        r = httpx.get(url, headers=fwd("2001:db8:1:2::1"))
        assert r.status_code == 200 and client_key({"client": ("2001:db8:1:2::ffff", 1)}) == "2001:db8:1:2::/64"
    # Without trusted proxies the header is the client's own claim: ignored, the peer is the client.
    with served(api_settings, **limited) as (base, _):
        url = f"{base}/v1/towns"
        codes = [httpx.get(url, headers=fwd(f"198.51.100.{i}")).status_code for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]


# --- the live stream's caps -----------------------------------------------------------------------------


def test_live_streams_are_capped_per_client_and_in_total(api_settings, mosquitto) -> None:
    settings = api_settings.model_copy(update={"mqtt_url": mosquitto.url,
                                               "live": api_settings.live.model_copy(
                                                   update={"max_clients": 3, "max_per_client": 2})})
    with served(settings, trusted_proxies=["127.0.0.1"], **NO_LIMITS) as (base, app):
        with httpx.Client(base_url=base, timeout=10) as http:
            def open_stream(ip: str) -> Any:
                cm = http.stream("GET", "/v1/live", headers={"X-Forwarded-For": ip})
                return cm, cm.__enter__()

            first = [open_stream("198.51.100.1") for _ in range(2)]
            assert all(r.status_code == 200 for _, r in first)
            r = http.get("/v1/live", headers={"X-Forwarded-For": "198.51.100.1"})
            assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_streams" and r.headers["retry-after"]
            third = open_stream("198.51.100.2")
            assert third[1].status_code == 200
            r = http.get("/v1/live", headers={"X-Forwarded-For": "198.51.100.3"})
            assert r.status_code == 503 and r.headers["retry-after"]  # all three taken
            for cm, _ in [*first, third]:
                cm.__exit__(None, None, None)
            deadline = time.monotonic() + 10
            while app.state.streams.open and time.monotonic() < deadline:
                time.sleep(0.05)
            assert app.state.streams.open == 0  # closed streams give their place back
            again, resp = open_stream("198.51.100.3")
            assert resp.status_code == 200
            again.__exit__(None, None, None)


# --- expensive work shares a small pool -----------------------------------------------------------------


@pytest.mark.anyio
async def test_slots_queue_then_refuse() -> None:
    """Two slots, a queue of two, one running request per client (and one waiting)."""
    slots = Slots(slots=2, queue=2, per_client=1, retry_after_s=7)
    a1 = await slots.acquire("a")
    b1 = await slots.acquire("b")
    a2 = asyncio.create_task(slots.acquire("a"))  # waits for a's own turn
    await asyncio.sleep(0)
    with pytest.raises(ApiError) as mine:
        await slots.acquire("a")  # one running, one waiting: a's share is taken
    assert mine.value.status == 429 and mine.value.headers == {"Retry-After": "7"}
    c1 = asyncio.create_task(slots.acquire("c"))  # waits for a free slot
    await asyncio.sleep(0)
    with pytest.raises(ApiError) as busy:
        await slots.acquire("d")  # every slot running, the queue full
    assert busy.value.status == 503
    a1.release()  # a's next request may run, but c has waited for a slot longer: c goes first
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert c1.done() and not a2.done()
    b1.release()
    a2_ticket = await a2
    (await c1).release()
    a2_ticket.release()
    a2_ticket.release()  # idempotent
    assert slots.active == 0
    (await slots.acquire("a")).release()


def test_expensive_answers_get_503_when_the_pool_is_taken(api_settings, dataset) -> None:
    """Maps, models and exports share a small pool: when other clients hold it and its queue, a new one gets 503
    with Retry-After at once, and cheap answers are unaffected; past its own share a client gets 429."""
    with served(api_settings, max_expensive=2, expensive_queue=1, max_expensive_per_client=1,
                **NO_LIMITS) as (base, app):
        loop = app.state.live._loop
        slots = app.state.slots

        def take(client: str) -> Any:
            return asyncio.run_coroutine_threadsafe(slots.acquire(client), loop)

        running = [take("198.51.100.1").result(5), take("198.51.100.2").result(5)]
        queued = take("198.51.100.3")  # the queue's one place
        export = {"town": "vitre", "from": "2024-07-19", "to": "2024-07-22", "format": "csv", "tz": "UTC"}
        r = httpx.get(f"{base}/v1/hourly", params=export)
        assert r.status_code == 503 and r.json()["error"]["code"] == "busy" and r.headers["retry-after"] == "10"
        r = httpx.get(f"{base}/v1/towns/vitre/uhi-map", params={"date": "2024-07-20", "format": "png"})
        assert r.status_code == 503
        assert httpx.get(f"{base}/v1/latest", params={"town": "vitre"}).status_code == 200  # cheap: unaffected
        loop.call_soon_threadsafe(running[0].release)
        loop.call_soon_threadsafe(queued.result(5).release)
        # This client (the test's own address) runs one and has another waiting: its share is taken.
        mine = take("127.0.0.1").result(5)
        waiting = take("127.0.0.1")
        r = httpx.get(f"{base}/v1/hourly", params=export)
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_expensive_requests"
        loop.call_soon_threadsafe(mine.release)
        loop.call_soon_threadsafe(waiting.result(5).release)
        loop.call_soon_threadsafe(running[1].release)
        r = httpx.get(f"{base}/v1/hourly", params=export)
        assert r.status_code == 200 and len(r.text.splitlines()) == 1 + 72 * 3
        deadline = time.monotonic() + 5
        while slots.active and time.monotonic() < deadline:
            time.sleep(0.02)
        assert slots.active == 0  # the export's slot came back when its stream ended


# --- no leaks -------------------------------------------------------------------------------------------


def test_nothing_internal_reaches_clients(tmp_path) -> None:
    port = free_port()
    settings = Settings.load(influx_url=f"http://127.0.0.1:{port}", data_dir=tmp_path, influx_timeout_s=2)
    with TestClient(create_app(with_api(settings, **NO_LIMITS))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json() == {"status": "not ready"}
        for path, params in (("/v1/latest", {"town": "vitre"}), ("/v1/daily", {"town": "vitre"})):
            r = c.get(path, params=params)
            assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
            assert str(port) not in r.text and "127.0.0.1" not in r.text and "Connect" not in r.text


def test_database_text_never_reaches_clients(influxd, tmp_path) -> None:
    settings = Settings.load(influx_url=influxd.url, influx_db="never_created_db", data_dir=tmp_path)
    with TestClient(create_app(with_api(settings, **NO_LIMITS))) as c:
        assert c.get("/readyz").json() == {"status": "not ready"}
        r = c.get("/v1/daily", params={"town": "vitre"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "database_not_ready"
        assert "never_created_db" not in r.text and "database not found" not in r.text
