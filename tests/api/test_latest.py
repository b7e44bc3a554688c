"""Health, readiness, towns and the latest reading per sensor, against the real influxd."""

from __future__ import annotations

import csv
import io
import time

from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.core.settings import Settings
from heatwatch.stack.embedded import free_port
from support.apps import with_api

LICENCE_URL = "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"


def _now_ms() -> int:
    return int(time.time() * 1000) // 60_000 * 60_000


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_readyz_and_data_503_when_influx_down(tmp_path):
    settings = Settings.load(influx_url=f"http://127.0.0.1:{free_port()}", data_dir=tmp_path, influx_timeout_s=2)
    with TestClient(create_app(with_api(settings, rate_limit_per_s=0))) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.headers["retry-after"]
        r = c.get("/v1/latest", params={"town": "vitre"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "database_unavailable"
        assert "unavailable" in r.json()["error"]["message"]


def test_towns(client):
    r = client.get("/v1/towns")
    assert r.status_code == 200
    body = r.json()
    assert {t["id"] for t in body["data"]} == {"vitre", "saint-omer"}
    assert body["meta"]["licence"]["url"] == LICENCE_URL
    assert body["meta"]["licence"]["id"] == "Etalab-2.0"
    vitre = client.get("/v1/towns/vitre").json()["data"]
    assert vitre["insee"] == "35360" and vitre["canicule_thresholds"]["ibmx"] == 33.0
    gj = client.get("/v1/towns", params={"format": "geojson"})
    assert gj.headers["content-type"].startswith("application/geo+json")
    assert gj.json()["type"] == "FeatureCollection" and len(gj.json()["features"]) == 2
    r = client.get("/v1/towns/paris")
    assert r.status_code == 404 and "known towns" in r.json()["error"]["message"]


def test_latest_per_sensor(client, seed):
    now = _now_ms()
    lines = []
    for i in range(5):  # five readings a minute apart per sensor; the newest must win
        ts = now - (4 - i) * 60_000
        lines += [
            f"reading,town=vitre,sensor=v1 temperature={20 + i}.5,humidity=50.0,battery_v=3.1 {ts}",
            f"reading,town=vitre,sensor=v2 temperature={25 + i}.0,humidity=40.0 {ts - 7}",
            f"reading,town=saint-omer,sensor=s1 temperature={15 + i}.25,humidity=70.0,source=\"senml\" {ts}",
        ]
    lines.append(f"reading,town=vitre,sensor=v3 temperature=18.0,humidity=60.0 {now - 3 * 3600_000}")
    seed(lines)

    r = client.get("/v1/latest", params={"town": "vitre"})
    assert r.status_code == 200, r.text
    body = r.json()
    meta = body["meta"]
    assert meta["licence"]["url"] == LICENCE_URL and meta["producer"]
    # The normalised query the answer was built (and cached) for: declared parameters, defaults filled in.
    assert meta["query"] == {"path": "/v1/latest", "params": {"sep": ",", "times": "utc", "town": "vitre",
                                                                "tz": "Europe/Paris"}}
    by_sensor = {row["sensor"]: row for row in body["data"]}
    assert set(by_sensor) == {"v1", "v2", "v3"}
    assert by_sensor["v1"]["temperature"] == 24.5 and by_sensor["v1"]["battery_v"] == 3.1
    assert by_sensor["v2"]["temperature"] == 29.0
    assert by_sensor["v1"]["time"].endswith("Z")
    assert by_sensor["v2"]["time"].endswith(".993Z")  # ms precision kept
    assert by_sensor["v3"]["status"] == "offline"  # silent for 3 h
    assert by_sensor["v1"]["status"] in {"ok", "unregistered"}
    assert all(row["town"] == "vitre" for row in body["data"])
    assert meta["last_update"] == by_sensor["v1"]["time"]
    assert r.headers["link"].startswith(f"<{LICENCE_URL}>")

    everything = client.get("/v1/latest").json()["data"]
    assert {(x["town"], x["sensor"]) for x in everything} == {
        ("saint-omer", "s1"), ("vitre", "v1"), ("vitre", "v2"), ("vitre", "v3")}
    s1 = next(x for x in everything if x["sensor"] == "s1")
    assert s1["source"] == "senml" and s1["temperature"] == 19.25

    c = client.get("/v1/latest", params={"town": "vitre", "format": "csv", "sep": ";"})
    assert c.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(c.content.decode("utf-8-sig")), delimiter=";"))
    # sep=; writes decimal commas: French spreadsheets read 24,5 as a number
    assert len(rows) == 3 and rows[0]["sensor"] == "v1" and rows[0]["temperature"] == "24,5"


def test_latest_validation(client):
    assert client.get("/v1/latest", params={"town": "nowhere"}).status_code == 404
    r = client.get("/v1/latest", params={"town": "vitre' OR 1=1"})
    assert r.status_code == 422 and "town" in r.json()["error"]["message"]
    r = client.get("/v1/latest", params={"town": "vitre", "format": "xml"})
    assert r.status_code == 422 and "format" in r.json()["error"]["message"]
    r = client.get("/v1/latest", params={"town": "vitre"})
    assert r.status_code == 200 and r.json()["data"] == [] and r.json()["meta"]["last_update"] is None
