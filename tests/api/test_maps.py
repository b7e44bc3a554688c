"""Heat-island maps end to end: aggregates in the real influxd, positions from the registry, IDW grid
served as GeoJSON and PNG."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, timedelta
from statistics import fmean

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from support.apps import with_api
from support.insights_data import FLAGGED, LAST, SPARSE, season, season_app


@pytest.fixture(scope="module")
def summer():
    return season()


@pytest.fixture(scope="module")
def mapclient(influxd, tmp_path_factory) -> Iterator[TestClient]:
    _, client = season_app(influxd, tmp_path_factory, "maps")
    with client as c:
        yield c


def _cell_at(features: list[dict], lon: float, lat: float) -> dict:
    for f in features:
        ring = f["geometry"]["coordinates"][0]
        (w, s), (e, n) = ring[0], ring[2]
        if w <= lon < e and s <= lat < n:
            return f
    raise AssertionError(f"no cell at {lon},{lat}")


def test_night_map_geojson(mapclient, summer):
    night = date(2025, 7, 20)  # evening of the 20th → daily row of the 21st
    r = mapclient.get("/v1/towns/vitre/uhi-map", params={"date": night.isoformat(), "cell_m": 50})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection"
    meta = body["meta"]
    assert meta["licence"]["id"] == "Etalab-2.0"
    assert meta["period"]["kind"] == "night" and meta["period"]["from"] == "2025-07-20"
    assert meta["grid"]["method"] == "inverse distance weighting" and meta["grid"]["max_distance_m"] == 600
    mapped = {s["sensor"]: s for s in meta["sensors"]}
    assert "vitre-rural-01" not in mapped  # the reference defines UHI = 0 and stands outside the town
    row_day = night + timedelta(days=1)
    expected = {s: v for (s, d), v in summer.night.items() if d == row_day and s != "vitre-rural-01"}
    assert set(mapped) == set(expected)
    for s, v in expected.items():
        assert mapped[s]["uhi"] == pytest.approx(v, abs=1e-3)
    feats = body["features"]
    assert feats and all(f["geometry"]["type"] == "Polygon" for f in feats)
    values = [f["properties"]["uhi"] for f in feats]
    # IDW never leaves the sensors' range; empty cells (too far from any sensor) are left out.
    assert min(expected.values()) - 0.01 <= min(values) and max(values) <= max(expected.values()) + 0.01
    assert meta["grid"]["filled_cells"] == len(feats) < meta["grid"]["cells"]
    # The cell holding a sensor shows what that sensor measured.
    centre = mapped["vitre-centre-02"]
    cell = _cell_at(feats, centre["longitude"], centre["latitude"])
    assert cell["properties"]["uhi"] == pytest.approx(centre["uhi"], abs=0.01)


def test_flagged_sensor_day_is_not_mapped(mapclient):
    sensor, row_day = FLAGGED
    night = row_day - timedelta(days=1)
    body = mapclient.get("/v1/towns/vitre/uhi-map", params={"date": night.isoformat()}).json()
    assert sensor not in {s["sensor"] for s in body["meta"]["sensors"]}
    assert max(f["properties"]["uhi"] for f in body["features"]) < 10


def test_period_map_is_the_mean_of_each_sensors_nights_over_common_days(mapclient, summer):
    first, last = date(2025, 6, 1), date(2025, 6, 30)
    body = mapclient.get("/v1/towns/vitre/uhi-map", params={"from": first.isoformat(), "to": last.isoformat()}).json()
    meta = body["meta"]
    mapped = {s["sensor"]: s["uhi"] for s in meta["sensors"]}
    assert meta["period"]["days"] == 30 and meta["value"] == "uhi_night_max_mean"
    assert SPARSE not in mapped  # no data in June
    assert meta["compared_on"]["common_days"] == 30 and meta["compared_on"]["first"] == "2025-06-01"
    # Every night of June is common to the mapped sensors: the mean is over the same 30 nights for all.
    for sensor in ("vitre-centre-02", "vitre-parc-01"):
        nights = [summer.night[(sensor, first + timedelta(days=i + 1))] for i in range(30)]
        assert mapped[sensor] == pytest.approx(fmean(nights), abs=1e-3)


def test_period_map_compares_every_sensor_on_the_same_nights(mapclient, summer):
    # The sparse sensor has the last 20 rows of August only. Over the nights of 1–30 August (rows 2–31) it
    # was measured on 20 of 30: it is mapped, and every sensor's mean is over those same 20 nights.
    body = mapclient.get("/v1/towns/vitre/uhi-map", params={"from": "2025-08-01", "to": "2025-08-30"}).json()
    meta = body["meta"]
    mapped = {s["sensor"]: s["uhi"] for s in meta["sensors"]}
    assert SPARSE in mapped and meta["left_out"] == []
    assert meta["compared_on"]["common_days"] == 20 and meta["compared_on"]["days_with_data"] == 30
    assert meta["compared_on"]["first"] == "2025-08-11"  # the night of the 11th, filed under the 12th
    rows = [LAST - timedelta(days=i) for i in range(20)]
    for sensor in ("vitre-centre-02", SPARSE):
        assert mapped[sensor] == pytest.approx(fmean(summer.night[(sensor, d)] for d in rows), abs=1e-3)
    # Over 15 July – 30 August it has 20 of 47 nights: it is left off the map, and says why.
    wide = mapclient.get("/v1/towns/vitre/uhi-map", params={"from": "2025-07-15", "to": "2025-08-30"}).json()
    assert SPARSE not in {s["sensor"] for s in wide["meta"]["sensors"]}
    reason = next(x["reason"] for x in wide["meta"]["left_out"] if x["sensor"] == SPARSE)
    assert "20 of the 47 days" in reason


def test_day_and_default_maps(mapclient):
    day = mapclient.get("/v1/towns/vitre/uhi-map", params={"kind": "day", "date": "2025-07-02"}).json()
    assert day["meta"]["value"] == "uhi_mean" and day["meta"]["period"]["from"] == "2025-07-02"
    newest = mapclient.get("/v1/towns/vitre/uhi-map").json()
    # The newest daily row is the last day; its night started the evening before.
    assert newest["meta"]["period"]["from"] == (LAST - timedelta(days=1)).isoformat()


def test_hour_map_leaves_out_flagged_hours(mapclient):
    r = mapclient.get("/v1/towns/vitre/uhi-map", params={"kind": "hour", "at": "2025-07-03T14:20:00+02:00"})
    assert r.status_code == 200, r.text
    meta = r.json()["meta"]
    assert meta["period"]["hour"] == "2025-07-03T12:00:00Z"
    mapped = {s["sensor"] for s in meta["sensors"]}
    assert "vitre-gare-01" not in mapped and "vitre-sub-01" in mapped  # SPATIAL_HIGH out; AVAILABILITY harmless


def test_png_map_with_legend(mapclient):
    r = mapclient.get("/v1/towns/vitre/uhi-map", params={"date": "2025-07-02", "format": "png"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-data-licence"] == "Etalab-2.0"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "PNG" and img.size[0] >= 600 and img.size[1] >= 500
    # Content negotiation: an <img> asks for image/*; ETag revalidation answers 304.
    r2 = mapclient.get("/v1/towns/vitre/uhi-map", params={"date": "2025-07-02"}, headers={"Accept": "image/png"})
    assert r2.headers["content-type"] == "image/png"
    assert mapclient.get("/v1/towns/vitre/uhi-map", params={"date": "2025-07-02", "format": "png"},
                         headers={"If-None-Match": r.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("params, status, code", [
    ({"date": "2025-07-02", "from": "2025-07-01", "to": "2025-07-03"}, 400, "invalid_parameter"),
    ({"from": "2025-07-01"}, 400, "invalid_parameter"),
    ({"from": "2025-01-01", "to": "2025-08-01"}, 400, "range_too_long"),
    ({"from": "2025-07-05", "to": "2025-07-01"}, 400, "invalid_range"),
    ({"kind": "hour", "date": "2025-07-02"}, 400, "invalid_parameter"),
    ({"at": "2025-07-02T00:00:00Z"}, 400, "invalid_parameter"),
    ({"date": "2024-07-02"}, 404, "no_data"),
    ({"date": "2025-07-02", "cell_m": 25, "max_distance_m": 5000}, 400, "grid_too_large"),
    ({"date": "2025-07-02", "format": "parquet"}, 422, "invalid_parameter"),
    ({"kind": "week"}, 422, "invalid_parameter"),
])
def test_map_errors(mapclient, params, status, code):
    r = mapclient.get("/v1/towns/vitre/uhi-map", params=params)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_unknown_town_and_empty_database(client):
    assert client.get("/v1/towns/paris/uhi-map").status_code == 404
    r = client.get("/v1/towns/vitre/uhi-map")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_data"


def test_map_from_the_analytics_aggregates_of_simulated_readings(api_settings, api_config, seed):
    """The schema contract with analytics: simulated readings → the analytics' own aggregates → the map."""
    from datetime import UTC, datetime

    import pandas as pd

    from heatwatch.analytics.aggregate import TownContext, aggregate_town
    from heatwatch.analytics.jobs import build_lines
    from heatwatch.api.app import create_app
    from heatwatch.core.influx import AGG_RP
    from heatwatch.simulate import SimOptions, load_example_sensors, prepare
    from support.insights_data import load_registry

    start = datetime(2025, 7, 6, 18, tzinfo=UTC)
    sim = prepare(SimOptions(start=start, end=start + timedelta(days=3, hours=12), towns=["vitre"], faults=False,
                             heatwave=None, step=timedelta(minutes=15)))
    rs = list(sim.readings())
    frame = pd.DataFrame({"town": [r.town for r in rs], "sensor": [r.sensor for r in rs],
                          "time": pd.to_datetime([r.ts_ms for r in rs], unit="ms", utc=True),
                          "temperature": [r.temperature for r in rs], "humidity": [r.humidity for r in rs]})
    town = api_settings.towns["vitre"]
    aggs = aggregate_town(frame, TownContext.from_registry(town, load_example_sensors()),
                          days=[date(2025, 7, 7), date(2025, 7, 8), date(2025, 7, 9)])
    seed([line for lines in build_lines(aggs).values() for line in lines], AGG_RP)
    load_registry(api_settings.registry_path)
    daily = aggs.daily
    row = daily[(daily["time"].dt.tz_convert("Europe/Paris").dt.date == date(2025, 7, 8))
                & ((daily["qc"] & 192) == 0) & (daily["sensor"] != "vitre-rural-01")]
    expected = dict(zip(row["sensor"], row["uhi_night_max"], strict=True))
    with TestClient(create_app(with_api(api_settings, **api_config))) as c:
        body = c.get("/v1/towns/vitre/uhi-map", params={"date": "2025-07-07"}).json()
        assert c.get("/v1/towns/vitre/uhi-map", params={"kind": "hour", "at": "2025-07-08T01:30:00Z",
                                                        "format": "png"}).status_code == 200
    mapped = {s["sensor"]: s["uhi"] for s in body["meta"]["sensors"]}
    assert mapped.keys() == expected.keys() and len(mapped) >= 10
    for s, v in expected.items():
        assert mapped[s] == pytest.approx(v, abs=1e-3)
    urban = [v for s, v in mapped.items() if "centre" in s]
    parks = [v for s, v in mapped.items() if "parc" in s]
    assert min(urban) > max(parks)  # the simulated heat island shows


@pytest.fixture(scope="module")
def hotspot_client(influxd, tmp_path_factory) -> Iterator[TestClient]:
    from support.hotspot_town import hotspot_app

    _, client = hotspot_app(influxd, tmp_path_factory, "map_hotspot")
    with client as c:
        yield c


def _hottest_place_is(body: dict, sensor: str) -> None:
    """The hottest cell of the grid holds ``sensor`` or touches the cell that does, and is hotter than
    every other mapped sensor: the hot spot shows as the hottest place, not blended into its street.
    (A cell holding two sensors shows their mean: on 100 m cells a street sensor 90 m away shares the
    hot spot's cell, and the hot spot's influence peaks in the next cell.)"""
    meta = body["meta"]
    mapped = {s["sensor"]: s for s in meta["sensors"]}
    hot = mapped[sensor]
    top = max(body["features"], key=lambda f: f["properties"]["uhi"])
    own = _cell_at(body["features"], hot["longitude"], hot["latitude"])
    assert abs(top["properties"]["row"] - own["properties"]["row"]) <= 1
    assert abs(top["properties"]["col"] - own["properties"]["col"]) <= 1
    others = max(v["uhi"] for k, v in mapped.items() if k != sensor)
    assert hot["uhi"] > others + 0.8 and top["properties"]["uhi"] > others + 0.4


def test_hot_spot_appears_on_night_period_and_hour_maps(hotspot_client):
    from support.hotspot_town import FIRST, HOT_ROWS, HOTSPOT, REFERENCE, fortnight

    summer = fortnight()
    night = HOT_ROWS[0] - timedelta(days=1)
    one = hotspot_client.get("/v1/towns/vitre/uhi-map", params={"date": night.isoformat(), "cell_m": 50}).json()
    assert one["meta"]["value"] == "uhi_night_max"
    _hottest_place_is(one, HOTSPOT)
    # On 50 m cells the hot spot has its cell to itself, and that cell shows what it measured.
    mapped = {s["sensor"]: s for s in one["meta"]["sensors"]}
    own = _cell_at(one["features"], mapped[HOTSPOT]["longitude"], mapped[HOTSPOT]["latitude"])
    assert own["properties"]["uhi"] == pytest.approx(mapped[HOTSPOT]["uhi"], abs=0.01)
    assert own is max(one["features"], key=lambda f: f["properties"]["uhi"])
    assert {s["sensor"]: s["uhi"] for s in one["meta"]["sensors"]}[HOTSPOT] == pytest.approx(
        summer.night[(HOTSPOT, HOT_ROWS[0])], abs=1e-3)
    period = hotspot_client.get("/v1/towns/vitre/uhi-map", params={
        "from": (FIRST - timedelta(days=1)).isoformat(), "to": (FIRST + timedelta(days=12)).isoformat()}).json()
    assert period["meta"]["value"] == "uhi_night_max_mean" and period["meta"]["compared_on"]["common_days"] == 11
    _hottest_place_is(period, HOTSPOT)
    assert REFERENCE not in {s["sensor"] for s in period["meta"]["sensors"]}
    hour = hotspot_client.get("/v1/towns/vitre/uhi-map", params={
        "kind": "hour", "at": f"{HOT_ROWS[0].isoformat()}T02:10:00+02:00"}).json()
    _hottest_place_is(hour, HOTSPOT)
    png = hotspot_client.get("/v1/towns/vitre/uhi-map", params={"date": night.isoformat(), "format": "png"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
