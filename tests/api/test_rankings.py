"""Seasonal rankings end to end, JSON and CSV, against the real influxd."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from support.insights_data import FLAGGED, SPARSE, season_app


@pytest.fixture(scope="module")
def rclient(influxd, tmp_path_factory) -> Iterator[TestClient]:
    _, client = season_app(influxd, tmp_path_factory, "rankings")
    with client as c:
        yield c


def test_json_ranking(rclient):
    r = rclient.get("/v1/towns/vitre/rankings", params={"season": 2025})
    assert r.status_code == 200, r.text
    body = r.json()
    meta, data = body["meta"], body["data"]
    assert meta["licence"]["id"] == "Etalab-2.0" and meta["ranked_by"] == "uhi_night_mean"
    assert meta["season"]["window"] == ["2025-06-01", "2025-09-15"] and meta["season"]["canicule_days"] == 5
    ranked = [d for d in data if d["rank"] is not None]
    assert [d["rank"] for d in ranked] == list(range(1, len(ranked) + 1))
    nights = [d["uhi_night_mean"] for d in ranked]
    assert nights == sorted(nights, reverse=True)
    assert ranked[0]["site_class"] == "urban" and ranked[-1]["site_class"] in ("water", "park")
    sparse = next(d for d in data if d["sensor"] == SPARSE)
    assert sparse["rank"] is None and sparse["days"] == 20
    # The flagged sensor-day (uhi 99, tn 50) is left out of every statistic.
    flagged = next(d for d in data if d["sensor"] == FLAGGED[0])
    assert flagged["uhi_night_max"] < 10 and flagged["tx_max"] < 40 and flagged["days"] == 91
    # Hot hours from the hourly aggregates: urban sensors reached 35 °C in the one hot hour, except the
    # gare sensor whose hour was flagged SPATIAL_HIGH; the sub sensor's AVAILABILITY flag does not matter.
    by = {d["sensor"]: d for d in data}
    assert by["vitre-centre-02"]["hours_ge_35"] == 1 and by["vitre-centre-02"]["hours_ge_30"] == 1
    assert by["vitre-gare-01"]["hours_ge_30"] == 0
    assert by["vitre-sub-01"]["hours_ge_30"] == 1 and by["vitre-sub-01"]["hours_ge_35"] == 0
    assert by["vitre-centre-02"]["tropical_nights"] >= 1


def test_csv_ranking_with_custom_thresholds(rclient):
    r = rclient.get("/v1/towns/vitre/rankings", params={"season": 2025, "format": "csv", "thresholds": "25,31",
                                                        "sep": ";"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert {"rank", "sensor", "uhi_night_mean", "hours_ge_25", "hours_ge_31"} <= set(rows[0])
    assert rows[0]["rank"] == "1"
    assert r.headers["x-data-licence"] == "Etalab-2.0"


@pytest.mark.parametrize("params, status", [
    ({}, 422), ({"season": 1990}, 422), ({"season": 2025, "thresholds": "a"}, 400),
    ({"season": 2025, "thresholds": "1,2,3,4,5"}, 400), ({"season": 2025, "format": "png"}, 422),
])
def test_ranking_errors(rclient, params, status):
    assert rclient.get("/v1/towns/vitre/rankings", params=params).status_code == status
    assert rclient.get("/v1/towns/nowhere/rankings", params={"season": 2025}).status_code == 404


def test_empty_season(rclient):
    body = rclient.get("/v1/towns/saint-omer/rankings", params={"season": 2025}).json()
    assert body["data"] == [] and body["meta"]["season"]["canicule_days"] == 0
