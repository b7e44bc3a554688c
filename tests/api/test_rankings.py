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
    assert meta["licence"]["id"] == "Etalab-2.0" and meta["ranked_by"] == "uhi_night_max_mean"
    assert meta["season"]["window"] == ["2025-06-01", "2025-09-15"] and meta["season"]["canicule_days"] == 5
    ranked = [d for d in data if d["rank"] is not None]
    assert [d["rank"] for d in ranked] == list(range(1, len(ranked) + 1))
    nights = [d["uhi_night_max_mean"] for d in ranked]
    assert nights == sorted(nights, reverse=True)
    assert ranked[0]["site_class"] == "urban" and ranked[-1]["site_class"] in ("water", "park")
    sparse = next(d for d in data if d["sensor"] == SPARSE)
    assert sparse["rank"] is None and sparse["days_measured"] == 20 and sparse["basis"] == "own_days"
    assert "20 of the 92 days" in sparse["note"]
    # The flagged sensor-day (uhi 99, tn 50) is left out of every statistic, and of the common days.
    flagged = next(d for d in data if d["sensor"] == FLAGGED[0])
    assert flagged["uhi_night_max_max"] < 10 and flagged["tx_max"] < 40 and flagged["days_measured"] == 91
    assert meta["season"]["compared_on"]["common_days"] == 91
    assert all(d["days_compared"] == 91 for d in ranked)
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
    assert {"rank", "sensor", "uhi_night_max_mean", "days_compared", "hours_ge_25", "hours_ge_31"} <= set(rows[0])
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


@pytest.fixture(scope="module")
def hotspot_client(influxd, tmp_path_factory) -> Iterator[TestClient]:
    from support.hotspot_town import hotspot_app

    _, client = hotspot_app(influxd, tmp_path_factory, "rank_hotspot")
    with client as c:
        yield c


def test_hot_spot_tops_the_ranking_on_common_days(hotspot_client):
    from support.hotspot_town import DAYS, HOT_NIGHTS_MISSED, HOT_ROWS, HOTSPOT, REFERENCE, STREETS, fortnight

    body = hotspot_client.get("/v1/towns/vitre/rankings", params={"season": 2025}).json()
    data, compared = body["data"], body["meta"]["season"]["compared_on"]
    ranked = [d for d in data if d["rank"] is not None]
    assert ranked[0]["sensor"] == HOTSPOT and ranked[0]["uhi_night_max_mean"] == pytest.approx(4.6, abs=0.25)
    assert {d["sensor"] for d in ranked[1:13]} == set(STREETS)  # then the streets, then the parks
    assert [d["site_class"] for d in ranked[13:]] == ["park", "park"]
    # Every ranked site is compared on the same days: the street silent on the two hottest nights cuts
    # them from everyone's sample, so nobody is ranked on nights another did not measure.
    nights = fortnight().night
    assert compared["days_with_data"] == DAYS and compared["common_days"] == DAYS - 3
    assert all(d["days_compared"] == DAYS - 3 and d["basis"] == "common_days" for d in ranked)
    hot_own = [v for (s, day), v in nights.items() if s == HOTSPOT]
    hot_common = [v for (s, day), v in nights.items() if s == HOTSPOT and day not in HOT_ROWS
                  and day.isoformat() != "2025-07-03"]
    assert ranked[0]["uhi_night_max_mean"] == pytest.approx(sum(hot_common) / len(hot_common), abs=1e-3)
    assert ranked[0]["uhi_night_max_max"] < max(hot_own)  # the hottest nights are not common days
    missed = next(d for d in data if d["sensor"] == HOT_NIGHTS_MISSED)
    assert missed["days_measured"] == DAYS - 2 and missed["days_compared"] == DAYS - 3
    ref = next(d for d in data if d["sensor"] == REFERENCE)
    assert ref["rank"] is None and ref["basis"] == "reference"
