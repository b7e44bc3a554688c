"""Interventions end to end: admin-only recording, public listing, and the measured effect on a synthetic
summer in the real influxd where a −1.0 °C nocturnal cooling was injected after the works."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from support.insights_data import EFFECT, INTERVENTION_DAY, TREATED, season_app

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"town": "vitre", "site": "Place Notre-Dame: plantation de 12 tilleuls", "sensors": [TREATED],
        "date": INTERVENTION_DAY.isoformat(), "kind": "tree_planting", "note": "EXAMPLE"}


@pytest.fixture(scope="module")
def app_client(influxd, tmp_path_factory) -> Iterator[TestClient]:
    _, client = season_app(influxd, tmp_path_factory, "interventions", TOKEN)
    with client as c:
        yield c


def _record(c: TestClient, **changes) -> dict:
    r = c.post("/v1/interventions", json=BODY | changes, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/interventions/{r.json()['id']}"
    return r.json()


def test_recording_needs_the_admin_token(app_client):
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 403)):
        assert app_client.post("/v1/interventions", json=BODY, headers=headers).status_code == status
    before = app_client.get("/v1/interventions").json()["data"]
    item = _record(app_client)
    assert item["kind"] == "tree_planting" and item["sensors"] == [TREATED] and item["created"].endswith("Z")
    assert app_client.delete(f"/v1/interventions/{item['id']}").status_code == 401
    listed = app_client.get("/v1/interventions", params={"town": "vitre"}).json()
    assert listed["meta"]["licence"]["id"] == "Etalab-2.0"
    assert [i["id"] for i in listed["data"]] == [i["id"] for i in before] + [item["id"]]
    assert app_client.get("/v1/interventions", params={"town": "saint-omer"}).json()["data"] == []
    assert app_client.get(f"/v1/interventions/{item['id']}").json()["data"]["site"] == BODY["site"]
    assert app_client.delete(f"/v1/interventions/{item['id']}", headers=AUTH).status_code == 200
    assert app_client.get(f"/v1/interventions/{item['id']}").status_code == 404


@pytest.mark.parametrize("changes, status", [
    ({"sensors": ["nope-01"]}, 400),  # not in the registry
    ({"sensors": ["so-centre-01"]}, 400),  # another town's sensor
    ({"sensors": ["vitre-rural-01"]}, 400),  # the reference cannot be treated
    ({"controls": [TREATED]}, 422),  # both treated and control
    ({"kind": "painting"}, 422),
    ({"sensors": []}, 422),
    ({"town": "paris"}, 404),
    ({"sensors": ["bad id"]}, 422),
])
def test_invalid_interventions_are_refused(app_client, changes, status):
    r = app_client.post("/v1/interventions", json=BODY | changes, headers=AUTH)
    assert r.status_code == status, r.text


def test_injected_cooling_is_found_with_its_interval(app_client):
    item = _record(app_client)
    r = app_client.get(f"/v1/interventions/{item['id']}/effect")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meta"]["licence"]["id"] == "Etalab-2.0"
    eff = body["data"]
    assert eff["window"]["before"] == {"from": "2025-05-16", "to": "2025-07-14"}
    assert eff["window"]["after"] == {"from": "2025-07-16", "to": "2025-09-13"}
    controls = set(eff["controls"])
    assert TREATED not in controls and "vitre-rural-01" not in controls and "vitre-centre-05" not in controls
    assert "vitre-parc-01" in controls and eff["controls_source"].startswith("default")
    night = eff["outcomes"]["uhi_night"]
    assert night["status"] == "ok", night
    assert night["ci_low"] <= EFFECT <= night["ci_high"] < 0
    assert night["significant"] and "decreased" in night["conclusion"]
    # Sample sizes: June 1 – July 14 before (the window starts in May, with no data), July 16 – Aug 31 after.
    assert night["n_days_before"] == 44 and night["n_days_after"] == 47
    assert night["n_treated"] == 1 and night["n_controls"] >= 10 and night["n_obs"] > 900
    assert "vitre-za-01" not in night["controls_used"]  # data on 20 days only
    hot = eff["outcomes"]["hot_hours"]
    # Hot hours exist only in the early-July heat wave, all before the works: nothing to compare after.
    assert hot["status"] == "insufficient_data" and "0 day(s) with a non-zero value after" in hot["conclusion"]
    assert eff["status"] == "partial"


def test_explicit_controls_and_no_effect(app_client):
    # Same date, a sensor without any change, urban controls only.
    item = _record(app_client, sensors=["vitre-centre-02"], controls=["vitre-centre-01", "vitre-centre-04",
                                                                     "vitre-centre-06", "vitre-gare-01"])
    eff = app_client.get(f"/v1/interventions/{item['id']}/effect").json()["data"]
    assert eff["controls_source"] == "recorded with the intervention"
    night = eff["outcomes"]["uhi_night"]
    assert night["status"] == "ok" and night["ci_low"] <= 0 <= night["ci_high"]
    assert not night["significant"] and "No change" in night["conclusion"]


def test_thin_data_is_said_plainly(app_client):
    item = _record(app_client, date="2025-08-25")  # six days of data after
    eff = app_client.get(f"/v1/interventions/{item['id']}/effect", params={"after_days": 30}).json()["data"]
    night = eff["outcomes"]["uhi_night"]
    assert eff["status"] == "insufficient_data" and night["status"] == "insufficient_data"
    assert night["estimate"] is None and night["n_days_after"] == 6
    assert night["conclusion"].startswith("Insufficient data") and "at least 21 needed" in night["conclusion"]
    few = _record(app_client, controls=["vitre-centre-01", "vitre-centre-02"])
    night = app_client.get(f"/v1/interventions/{few['id']}/effect").json()["data"]["outcomes"]["uhi_night"]
    assert night["status"] == "insufficient_data" and "2 control sensor(s)" in night["conclusion"]


def test_effect_parameters_are_checked(app_client):
    item = _record(app_client)
    assert app_client.get(f"/v1/interventions/{item['id']}/effect", params={"before_days": 5}).status_code == 422
    assert app_client.get(f"/v1/interventions/{item['id']}/effect", params={"alpha": 0.5}).status_code == 422
    assert app_client.get("/v1/interventions/999999/effect").status_code == 404
