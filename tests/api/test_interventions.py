"""Interventions end to end: admin-only recording and amending, public listing, and the measured effect in the
real influxd — a −1.0 °C nocturnal cooling injected after the works of a synthetic summer; and two summers
around winter works where the summer after is warmer: no effect is invented where there is none, and a real
cooling that the warmer summer hides from a plain before/after comparison is found."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from support.insights_data import EFFECT, INTERVENTION_DAY, TREATED, season_app

TOKEN = "test-admin-token-0123456789-abcdefghijkl"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"town": "vitre", "site": "Place Notre-Dame: plantation de 12 tilleuls", "sensors": [TREATED],
        "date": INTERVENTION_DAY.isoformat(), "kind": "tree_planting", "note": "EXAMPLE"}


@pytest.fixture(scope="module")
def app_client(influxd, tmp_path_factory) -> Iterator[TestClient]:
    _, client = season_app(influxd, tmp_path_factory, "interventions", TOKEN)
    with client as c:
        yield c


def _record(c: TestClient, body: dict | None = None, **changes) -> dict:
    r = c.post("/v1/interventions", json=(body or BODY) | changes, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/interventions/{r.json()['id']}"
    return r.json()


def _effect(c: TestClient, item: dict, **params) -> dict:
    r = c.get(f"/v1/interventions/{item['id']}/effect", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_recording_needs_the_admin_token(app_client):
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 403)):
        assert app_client.post("/v1/interventions", json=BODY, headers=headers).status_code == status
    before = app_client.get("/v1/interventions").json()["data"]
    item = _record(app_client)
    assert item["kind"] == "tree_planting" and item["sensors"] == [TREATED] and item["created"].endswith("Z")
    # The older one-day form: date is the day the works ended, and the works lasted that day.
    assert item["start"] == item["end"] == item["date"] == INTERVENTION_DAY.isoformat()
    assert app_client.delete(f"/v1/interventions/{item['id']}").status_code == 401
    assert app_client.patch(f"/v1/interventions/{item['id']}", json={"note": "x"}).status_code == 401
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
    ({"date": None}, 422),  # no day at all
    ({"date": None, "start": "2025-07-20", "end": "2025-07-10"}, 422),  # start after end
    ({"end": "2025-07-20"}, 422),  # date is the end: two different ends
])
def test_invalid_interventions_are_refused(app_client, changes, status):
    r = app_client.post("/v1/interventions", json=BODY | changes, headers=AUTH)
    assert r.status_code == status, r.text
    assert "error" in r.json()


def test_injected_cooling_is_found_with_matched_controls_and_the_weather(app_client):
    item = _record(app_client)
    r = app_client.get(f"/v1/interventions/{item['id']}/effect")
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["licence"]["id"] == "Etalab-2.0"
    eff = r.json()["data"]
    assert eff["window"]["before"] == {"from": "2025-05-16", "to": "2025-07-14"}
    assert eff["window"]["after"] == {"from": "2025-07-16", "to": "2025-09-13"}
    assert eff["window"]["excluded"]["from"] == eff["window"]["excluded"]["to"] == "2025-07-15"
    # Controls matched by Local Climate Zone: the other LCZ 2 streets, not the parks, the river banks or the
    # replaced (retired) sensor — a park does not answer the weather like a street.
    assert eff["controls"] == ["vitre-centre-01", "vitre-centre-02", "vitre-centre-06"]
    assert eff["controls_source"].startswith("matched: same Local Climate Zone") and "LCZ 2" in eff["controls_source"]
    night = eff["outcomes"]["uhi_night"]
    assert night["status"] == "ok", night
    assert night["ci_low"] <= EFFECT <= night["ci_high"] < 0
    assert night["significant"] and "decreased" in night["conclusion"]
    assert night["conclusion"].startswith("Nocturnal UHI")
    assert night["weather_adjusted"] and set(night["weather_coefficients"]) == {"tn", "tx"}
    assert "after adjusting for the weather" in night["conclusion"]
    assert eff["weather"]["source"].startswith("rural reference sensor(s) vitre-rural-01")
    placebo = night["placebo"]
    assert placebo["parallel_trends"] == "not_rejected" and placebo["ci_low"] <= 0 <= placebo["ci_high"]
    assert placebo["first_half"]["from"] == "2025-06-02" and placebo["second_half"]["to"] == "2025-07-14"
    # June 1 has no reference Tx of the afternoon before: June 2 – July 14 before, July 16 – Aug 31 after.
    assert night["n_days_before"] == 43 and night["n_days_after"] == 47
    assert night["n_treated"] == 1 and night["n_controls"] == 3 and night["n_obs"] > 300
    hot = eff["outcomes"]["hot_hours"]
    # Hot hours exist only in the early-July heat wave, all before the works: nothing to compare after.
    assert hot["status"] == "insufficient_data" and "0 day(s) with a non-zero value after" in hot["conclusion"]
    assert eff["status"] == "partial"


def test_works_recorded_in_progress_then_finished(app_client):
    item = _record(app_client, date=None, start="2025-07-08")
    assert item["end"] is None and item["date"] is None
    eff = _effect(app_client, item)
    assert eff["status"] == "insufficient_data" and "no end date yet" in eff["reasons"][0]
    r = app_client.patch(f"/v1/interventions/{item['id']}", json={"end": "2025-07-15"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["start"] == "2025-07-08" and r.json()["end"] == r.json()["date"] == "2025-07-15"
    eff = _effect(app_client, item)
    # Every day of the works is left out, not only the last: before ends the day before they started.
    assert eff["window"]["excluded"] == {"from": "2025-07-08", "to": "2025-07-15",
                                         "why": "the works themselves, and any day between the two windows"}
    assert eff["window"]["before"]["to"] == "2025-07-07" and eff["window"]["after"]["from"] == "2025-07-16"
    night = eff["outcomes"]["uhi_night"]
    assert night["status"] == "ok" and night["ci_low"] <= EFFECT <= night["ci_high"] < 0
    bad = app_client.patch(f"/v1/interventions/{item['id']}", json={"end": "2025-07-01"}, headers=AUTH)
    assert bad.status_code == 422 and "after end" in bad.json()["error"]["message"]
    assert app_client.patch(f"/v1/interventions/{item['id']}", json={"town": "saint-omer"},
                            headers=AUTH).status_code == 422
    assert app_client.patch("/v1/interventions/999999", json={"note": "x"}, headers=AUTH).status_code == 404


def test_explicit_controls_and_no_effect(app_client):
    # Same date, a sensor without any change, urban controls only.
    item = _record(app_client, sensors=["vitre-centre-02"], controls=["vitre-centre-01", "vitre-centre-04",
                                                                     "vitre-centre-06", "vitre-gare-01"])
    eff = _effect(app_client, item)
    assert eff["controls_source"] == "recorded with the intervention"
    night = eff["outcomes"]["uhi_night"]
    assert night["status"] == "ok" and night["ci_low"] <= 0 <= night["ci_high"]
    assert not night["significant"] and "No change" in night["conclusion"]
    # Controls chosen in the request win over the recorded ones.
    eff = _effect(app_client, item, controls="vitre-centre-01,vitre-centre-06,vitre-centre-03")
    assert eff["controls_source"] == "chosen in the request"
    assert eff["outcomes"]["uhi_night"]["controls_used"] == ["vitre-centre-01", "vitre-centre-06", "vitre-centre-03"]


def test_thin_data_is_said_plainly(app_client):
    item = _record(app_client, date="2025-08-25")  # six days of data after
    eff = _effect(app_client, item, after_days=30)
    night = eff["outcomes"]["uhi_night"]
    assert eff["status"] == "insufficient_data" and night["status"] == "insufficient_data"
    assert night["estimate"] is None and night["n_days_after"] == 6
    assert night["conclusion"].startswith("Insufficient data") and "at least 21 needed" in night["conclusion"]
    few = _record(app_client, controls=["vitre-centre-01", "vitre-centre-02"])
    night = _effect(app_client, few)["outcomes"]["uhi_night"]
    assert night["status"] == "insufficient_data" and "2 control sensor(s)" in night["conclusion"]


def test_effect_parameters_are_checked(app_client):
    item = _record(app_client)
    for params, status in (({"before_days": 5}, 422), ({"alpha": 0.5}, 422), ({"window": "weeks"}, 422),
                           ({"controls": "bad id"}, 400), ({"controls": "nope-01"}, 400),
                           ({"controls": TREATED}, 400), ({"controls": "so-centre-01"}, 400)):
        r = app_client.get(f"/v1/interventions/{item['id']}/effect", params=params)
        assert r.status_code == status, (params, r.text)
        assert "error" in r.json()
    assert app_client.get("/v1/interventions/999999/effect").status_code == 404


@pytest.fixture(scope="module")
def summers_client(influxd, tmp_path_factory) -> Iterator[TestClient]:
    from fastapi.testclient import TestClient

    from heatwatch.api.app import create_app
    from heatwatch.core.settings import Settings
    from support.apps import with_api
    from support.insights_data import load_registry, write_agg
    from support.two_summers import lines

    folder = tmp_path_factory.mktemp("two_summers")
    settings = Settings.load(influx_url=influxd.url, influx_db="two_summers", data_dir=folder / "var",
                             admin_token=TOKEN)
    load_registry(settings.registry_path)
    # Vitré: no true effect. Saint-Omer: a true −1.0 °C cooling. Both with a warmer, calmer summer after.
    data = lines("vitre", "vitre-centre-03", ["vitre-centre-01", "vitre-centre-02", "vitre-centre-06"],
                 "vitre-rural-01", 0.0, seed=0)
    # Saint-Omer's weather comes from its published reference (an imported Météo-France station), Vitré's from
    # its rural reference sensor.
    data += lines("saint-omer", "so-centre-01", ["so-centre-02", "so-centre-03", "so-centre-04", "so-gare-01"],
                  "so-rural-01", -1.0, seed=0, station="62765001")
    write_agg(influxd.url, settings.influx_db, data)
    with TestClient(create_app(with_api(settings, rate_limit_per_s=0, cache_ttl_agg_s=0))) as c:
        yield c


def test_a_warmer_summer_after_winter_works_is_not_an_effect(summers_client):
    from support.two_summers import WORKS

    item = _record(summers_client, {"town": "vitre", "site": "Rue Notre-Dame (EXAMPLE)", "sensors": ["vitre-centre-03"],
                                    "start": WORKS[0].isoformat(), "end": WORKS[1].isoformat(),
                                    "kind": "tree_planting"})
    eff = _effect(summers_client, item, window="seasons")
    assert eff["window"]["before"] == {"from": "2024-06-01", "to": "2024-09-15"}
    assert eff["window"]["after"] == {"from": "2025-06-01", "to": "2025-09-15"}
    assert eff["window"]["mode"] == "seasons"
    night = eff["outcomes"]["uhi_night"]
    assert night["status"] == "ok" and night["weather_adjusted"] and night["n_controls"] == 3
    # The hot spot warmed more than its peers in the warmer, calmer summer: a plain comparison reads that as
    # +0.9 °C; adjusted for the reference's Tn/Tx there is no effect.
    assert night["unadjusted_estimate"] > 0.7
    assert night["ci_low"] <= 0 <= night["ci_high"] and not night["significant"]
    assert "No change" in night["conclusion"] and night["placebo"]["parallel_trends"] == "not_rejected"
    assert eff["weather"]["source"].startswith("rural reference sensor(s) vitre-rural-01")


def test_a_cooling_hidden_by_a_warmer_summer_is_found(summers_client):
    from support.two_summers import WORKS

    item = _record(summers_client, {"town": "saint-omer", "site": "Place Foch (EXAMPLE)", "sensors": ["so-centre-01"],
                                    "start": WORKS[0].isoformat(), "end": WORKS[1].isoformat(),
                                    "kind": "de_sealing"})
    eff = _effect(summers_client, item, window="seasons")
    # Only two other LCZ 2 sensors: the controls fall back to the other urban sensors.
    assert eff["controls"] == ["so-centre-02", "so-centre-03", "so-centre-04", "so-gare-01"]
    assert "same site class" in eff["controls_source"] and "fewer than 3" in eff["controls_source"]
    night = eff["outcomes"]["uhi_night"]
    assert night["status"] == "ok" and night["weather_adjusted"]
    assert abs(night["unadjusted_estimate"]) < 0.4  # the warmer summer hides most of the cooling
    assert "town_daily" in eff["weather"]["source"] and "station:62765001 only" in eff["weather"]["source"]
    assert night["ci_low"] <= -1.0 <= night["ci_high"] < 0 and "decreased" in night["conclusion"]


def test_a_sensor_replaced_inside_the_window_is_not_compared_across_it(app_client):
    """The visit log (docs/maintenance.md): a control replaced during the 'before' period keeps only its days after
    the replacement — too few to be used — and the treated sensor replaced on the works' day keeps no 'before' day."""
    item = _record(app_client, sensors=["vitre-centre-02"], controls=["vitre-centre-01", "vitre-centre-04",
                                                                     "vitre-centre-06", "vitre-gare-01"])
    assert _effect(app_client, item, before_days=59)["outcomes"]["uhi_night"]["controls_used"] == [
        "vitre-centre-01", "vitre-centre-04", "vitre-centre-06", "vitre-gare-01"]
    visit = {"sensor": "vitre-centre-06", "at": "2025-07-01T10:00:00+02:00", "who": "tech", "actions": ["replaced"]}
    r = app_client.post("/v1/maintenance/visits", json=visit, headers=AUTH)
    assert r.status_code == 201, r.text
    eff = _effect(app_client, item, before_days=58)
    assert eff["series_breaks"] == [{"sensor": "vitre-centre-06", "day": "2025-07-01"}]
    assert eff["outcomes"]["uhi_night"]["controls_used"] == ["vitre-centre-01", "vitre-centre-04", "vitre-gare-01"]
    treated = app_client.post("/v1/maintenance/visits", headers=AUTH, json=visit | {
        "sensor": "vitre-centre-02", "at": f"{INTERVENTION_DAY.isoformat()}T09:00:00+02:00"})
    night = _effect(app_client, item, before_days=57)["outcomes"]["uhi_night"]
    assert night["status"] == "insufficient_data" and night["treated_used"] == []
    for v in (r, treated):
        assert app_client.delete(f"/v1/maintenance/visits/{v.json()['id']}", headers=AUTH).status_code == 200
    assert _effect(app_client, item, before_days=56)["series_breaks"] == []
