"""HTTP hygiene: CORS for GET, gzip, per-client rate limit with Retry-After, content negotiation,
server-side cache with bounded staleness, OpenAPI documentation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from support.apps import with_api


def test_cors_open_for_get_only(client):
    r = client.get("/v1/towns", headers={"Origin": "https://example.org"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "ETag" in r.headers["access-control-expose-headers"]
    pre = client.options("/v1/latest", headers={"Origin": "https://example.org",
                                                "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 200 and "GET" in pre.headers["access-control-allow-methods"]
    pre = client.options("/v1/admin/sensors", headers={"Origin": "https://example.org",
                                                       "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 400  # no cross-origin writes


def test_gzip(client, dataset):
    r = client.get("/v1/hourly", params={"town": "vitre", "from": "2024-07-19", "to": "2024-07-22", "tz": "UTC"},
                   headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert len(r.json()["data"]) == 72 * 3  # httpx decodes it transparently
    raw = client.get("/v1/readings", params={"town": "vitre", "from": "2024-07-20", "to": "2024-07-21",
                                             "format": "csv"},
                     headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"  # streamed exports too


def test_accept_negotiation(client, dataset):
    params = {"town": "vitre", "from": "2024-07-19", "to": "2024-07-20"}
    assert client.get("/v1/daily", params=params, headers={"Accept": "text/csv"}).headers[
        "content-type"].startswith("text/csv")
    r = client.get("/v1/daily", params=params, headers={"Accept": "text/csv;q=0.5, application/json"})
    assert r.headers["content-type"].startswith("application/json")
    r = client.get("/v1/sensors", params={"town": "vitre"}, headers={"Accept": "application/geo+json"})
    assert r.json()["type"] == "FeatureCollection"
    r = client.get("/v1/daily", params=params | {"format": "csv"}, headers={"Accept": "application/json"})
    assert r.headers["content-type"].startswith("text/csv")  # format= wins


def test_rate_limit_429_with_retry_after(api_settings, seed):
    seed([])
    app = create_app(with_api(api_settings, rate_limit_per_s=1, rate_limit_burst=3))
    with TestClient(app) as c:
        codes = [c.get("/v1/towns").status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = c.get("/v1/towns", headers={"Origin": "https://example.org"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.headers["access-control-allow-origin"] == "*"  # a browser can read the 429
        assert "too many requests" in r.json()["error"]["message"]
        assert c.get("/healthz").status_code == 200  # probes are never throttled


def test_server_cache_bounded_staleness(api_settings, seed):
    seed(["reading,town=vitre,sensor=a temperature=20.0 1700000000000"])
    app = create_app(with_api(api_settings, rate_limit_per_s=0, cache_ttl_latest_s=60))
    with TestClient(app) as c:
        first = c.get("/v1/latest", params={"town": "vitre"})
        seed(["reading,town=vitre,sensor=a temperature=21.0 1700000060000"])
        assert c.get("/v1/latest", params={"town": "vitre"}).json() == first.json()  # served from cache
        app.state.cache.clear()
        assert c.get("/v1/latest", params={"town": "vitre"}).json()["data"][0]["temperature"] == 21.0


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/v1/towns", "/v1/latest", "/v1/sensors", "/v1/readings", "/v1/hourly", "/v1/daily", "/v1/indices",
            "/v1/canicule-episodes", "/v1/alerts", "/v1/uhi", "/v1/catalog", "/v1/datapackage.json",
            "/v1/admin/sensors", "/v1/admin/recompute", "/v1/admin/deadletters"} <= paths
    town = next(p for p in spec["paths"]["/v1/latest"]["get"]["parameters"] if p["name"] == "town")
    assert "vitre" in str(town)  # parameters carry examples
    assert spec["info"]["license"]["identifier"] == "etalab-2.0"


def test_hot_path_answers_304_and_same_bytes(api_settings, seed):
    seed(["reading,town=vitre,sensor=a temperature=20.0 1700000000000"])
    app = create_app(with_api(api_settings, rate_limit_per_s=0, cache_ttl_latest_s=60))
    with TestClient(app) as c:
        first = c.get("/v1/latest", params={"town": "vitre"})
        assert len(app.state.cache.hot) == 1  # the finished answer is kept in front of FastAPI
        second = c.get("/v1/latest", params={"town": "vitre"})
        assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
        assert "x-heatwatch-cache-ttl" not in second.headers  # internal header never leaks
        assert second.headers["link"].startswith("<https://www.etalab.gouv.fr/")
        r = c.get("/v1/latest", params={"town": "vitre"}, headers={"If-None-Match": first.headers["etag"]})
        assert r.status_code == 304 and r.content == b""


def test_streamed_export_complete_across_dense_windows(api_settings, seed):
    # 2 500 rows, 500 sensors sharing each timestamp: denser than a window's LIMIT with pages of 100,
    # so the export falls back to keyset pages inside the window and must still give every row once.
    base = 1_721_433_600_000  # 2024-07-20T00:00:00Z
    seed([f"reading,town=vitre,sensor=s{k:03d} temperature={k / 10} {base + m * 60_000}"
          for m in range(5) for k in range(500)])
    app = create_app(with_api(api_settings, rate_limit_per_s=0, cache_ttl_latest_s=0, stream_page_rows=100))
    with TestClient(app) as c:
        r = c.get("/v1/readings", params={"town": "vitre", "from": "2024-07-19T23:00:00Z",
                                          "to": "2024-07-20T01:00:00Z", "format": "csv"})
        lines = r.content.decode().split("\r\n")[1:-1]
        keys = [(x.split(",")[0], x.split(",")[2]) for x in lines]
        assert len(keys) == len(set(keys)) == 2500
        assert keys == sorted(keys, key=lambda k: k[0])


def test_dashboard_gets_the_alert_thresholds(api_settings, api_config, seed):
    """The page marks a low battery where analytics raises the alert: one threshold set, from settings."""
    seed([])
    settings = api_settings.model_copy(update={"alert_battery_v": 3.05})
    with TestClient(create_app(with_api(settings, **api_config))) as c:
        cfg = c.get("/dashboard/config.json").json()
    assert cfg["thresholds"]["battery_v"] == 3.05
    assert cfg["thresholds"]["offline_s"] == settings.alert_offline_s
    assert cfg["thresholds"]["stale_after_s"] == settings.stale_after_s == settings.alert_offline_s  # one threshold
    assert cfg["qc_flags"]["AVAILABILITY"] == 64 and len(cfg["qc_flags"]) == 13
    assert cfg["qc_info_flags"] == cfg["qc_flags"]["MONTH_SPARSE"]  # information, not a fault
