"""Issue 19 item 4: the maintenance view and the visit log (docs/maintenance.md), against the session's influxd and
mosquitto.

Twelve days of half-hourly readings for a few sensors of Vitré, as ingest stores them: a LoRaWAN sensor whose
battery falls 0.02 V a day, one steady, one silent for 30 h, one reporting its charge in percent, a resident's
sensor, one that quality control flags DRIFT on the last three days, and a device whose uplinks are dead-lettered.
"""

from __future__ import annotations

import csv
import io
import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.core.deadletters import DeadLetter, DeadLetterStore
from heatwatch.core.influx import AGG_RP, RAW_RP
from heatwatch.core.measurements import QcFlag
from heatwatch.core.model import Sensor, SiteClass
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from heatwatch.stack.embedded import free_port
from support.apps import NO_LIMITS, with_api
from support.browser import MARKS, launch
from support.wait import wait_until

from .conftest import write

TOKEN = "maintenance-admin-token-0123456789-abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEVEUI = "70B3D57ED0041234"
NOW = int(time.time() * 1000) // 60_000 * 60_000
DAY = 86_400_000
HOME = (48.12415, -1.20456)  # a resident's exact position: never published

SENSORS = [
    Sensor(id="mt-falling", town="vitre", site_class=SiteClass.urban, latitude=48.1236, longitude=-1.2089,
           mqtt_identity="mt-falling"),
    Sensor(id="mt-steady", town="vitre", site_class=SiteClass.urban, latitude=48.1240, longitude=-1.2080),
    Sensor(id="mt-silent", town="vitre", site_class=SiteClass.urban, latitude=48.1230, longitude=-1.2100),
    Sensor(id="mt-pct", town="vitre", site_class=SiteClass.park, latitude=48.1250, longitude=-1.2050),
    Sensor(id="mt-drift", town="vitre", site_class=SiteClass.urban, latitude=48.1220, longitude=-1.2070),
    Sensor(id="mt-lora", town="vitre", site_class=SiteClass.urban, latitude=48.1210, longitude=-1.2060,
           mqtt_identity=DEVEUI.lower()),
    Sensor(id="c-vitre-1a2b3c4d", town="vitre", site_class=SiteClass.urban, latitude=HOME[0], longitude=HOME[1],
           owner="citizen", trust="provisional"),
]


def _lines() -> tuple[list[str], list[str]]:
    raw, agg = [], []
    wiggle = itertools.cycle([0.01, -0.01, 0.0, 0.005])  # ADC noise, and a cold night's dip now and then
    for k in range(12 * 48):
        ts = NOW - k * 1_800_000
        age_d = k / 48
        raw.append(f"reading,sensor=mt-falling,town=vitre temperature=21.5,humidity=60.0,"
                   f"battery_v={2.80 + 0.02 * age_d + next(wiggle) - (0.03 if k % 48 < 8 else 0):.3f},"
                   f"rssi={-95 - k % 7}.0,snr={7.5 - k % 3 * 0.25} {ts}")
        for sid in ("mt-steady", "mt-drift", "mt-lora", "c-vitre-1a2b3c4d"):
            raw.append(f"reading,sensor={sid},town=vitre temperature=21.0,humidity=60.0,"
                       f"battery_v={3.05 + next(wiggle):.3f},rssi=-88.0 {ts}")
        raw.append(f"reading,sensor=mt-pct,town=vitre temperature=20.0,battery_pct={80 + (k % 3)}.0 {ts}")
        if ts <= NOW - 30 * 3_600_000:
            raw.append(f"reading,sensor=mt-silent,town=vitre temperature=21.0,battery_v=3.0 {ts}")
    for h in range(3 * 24):  # the last three days' hours flagged DRIFT (with the monthly share)
        hour = (NOW // 3_600_000 - h - 1) * 3_600_000
        qc = int(QcFlag.DRIFT | QcFlag.MONTH_FLAGGED)
        agg.append(f"hourly,sensor=mt-drift,town=vitre t_mean=22.0,n=2i,qc={qc}i {hour}")
        agg.append(f"hourly,sensor=mt-steady,town=vitre t_mean=21.0,n=2i,qc=0i {hour}")
    return raw, agg


@pytest.fixture(scope="module")
def settings(influxd, mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("maintenance") / "var"
    db = f"maint_{int(time.time())}"
    with Registry(data_dir / "registry.sqlite", towns=["vitre", "saint-omer"]) as reg:
        reg.upsert_many(SENSORS)
    raw, agg = _lines()
    write(influxd.url, db, raw, RAW_RP)
    write(influxd.url, db, agg, AGG_RP)
    topic = f"application/1/device/{DEVEUI.lower()}/event/up"
    with DeadLetterStore(data_dir / "deadletter" / "deadletter.sqlite") as store:
        store.add_many([DeadLetter(topic, b'{"data": "AAE="}', "no_measurement", "codec gave no temperature", i)
                        for i in (1, 2)])
    return Settings.load(influx_url=influxd.url, influx_db=db, data_dir=data_dir, admin_token=TOKEN,
                         mqtt_url=mosquitto.url)


@pytest.fixture(scope="module")
def app(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(with_api(settings, **NO_LIMITS))) as c:
        yield c


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    """The same app under a real uvicorn, for the browser."""
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(with_api(settings, **NO_LIMITS)), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_until(lambda: srv.started, 20, "uvicorn started", interval=0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def view(client: TestClient, **headers: str) -> dict[str, Any]:
    r = client.get("/v1/maintenance", params={"town": "vitre"}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["sensor"]: d for d in body["data"]}


def test_a_falling_battery_gets_days_left_and_the_sensor_is_to_visit(app: TestClient) -> None:
    body = view(app)
    s = by_id(body)
    falling = s["mt-falling"]["battery"]
    # 2.80 V now, 0.02 V a day, threshold 2.6 V (the low-battery alert's): about 10 days.
    assert falling["status"] == "falling" and falling["unit"] == "V" and falling["threshold"] == 2.6
    assert falling["slope_per_day"] == pytest.approx(-0.02, abs=0.003)
    assert 8 <= falling["days_left"] <= 12, falling
    assert falling["days_left_range"][0] <= falling["days_left"] <= falling["days_left_range"][1]
    assert "mt-falling" in body["to_visit"]
    assert [r["code"] for r in s["mt-falling"]["reasons"]] == ["battery"]
    # Steady batteries, in volts or in percent, get no estimate and no visit.
    assert s["mt-steady"]["battery"]["status"] == "not_falling" and s["mt-steady"]["battery"]["days_left"] is None
    assert s["mt-pct"]["battery"]["unit"] == "%" and s["mt-pct"]["battery"]["status"] == "not_falling"
    assert "mt-steady" not in body["to_visit"] and "mt-pct" not in body["to_visit"]
    # Radio trend from the uplinks' RSSI.
    assert s["mt-falling"]["radio"]["rssi_median_7d"] == pytest.approx(-98, abs=1.5)
    assert s["mt-falling"]["radio"]["snr_median_7d"] == pytest.approx(7.25, abs=0.25)
    assert s["mt-steady"]["radio"]["snr_last"] is None  # no LoRaWAN uplink, no SNR
    assert s["mt-steady"]["radio"]["rssi_last"] == -88.0


def test_a_silent_sensor_comes_first_and_the_rest_is_ranked(app: TestClient) -> None:
    body = view(app)
    s = by_id(body)
    assert body["to_visit"][0] == "mt-silent"
    reason = s["mt-silent"]["reasons"][0]
    assert reason["code"] == "silent" and reason["text"] == "silent for 30 h"
    assert s["mt-silent"]["last_seen"] is not None
    assert set(body["to_visit"]) == {"mt-silent", "mt-falling", "mt-drift"}, body["to_visit"]
    assert [r["code"] for r in s["mt-drift"]["reasons"]] == ["drift", "qc"]
    # The dead letters of a device named by its DevEUI are counted for its sensor.
    assert s["mt-lora"]["dead_letters"] == {"total": 2, "by_reason": {"no_measurement": 2}}


def test_residents_sensors_stay_blurred(app: TestClient) -> None:
    for body in (view(app), app.get("/v1/maintenance/c-vitre-1a2b3c4d").json()["data"]):
        resident = by_id(body)["c-vitre-1a2b3c4d"] if "data" in body else body
        assert resident["position_blurred"] is True
        assert (resident["latitude"], resident["longitude"]) != HOME
        assert resident["battery"]["status"] == "not_falling"  # battery and signal are no one's personal data
    assert str(HOME[0]) not in app.get("/v1/maintenance/to-visit", params={"town": "vitre", "format": "csv"}).text


def test_csv_export_of_the_sensors_to_visit(app: TestClient) -> None:
    r = app.get("/v1/maintenance/to-visit", params={"town": "vitre", "format": "csv", "sep": ";"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text), delimiter=";"))
    assert [x["sensor"] for x in rows] == view(app)["to_visit"]
    assert [x["rank"] for x in rows] == [str(i + 1) for i in range(len(rows))]
    falling = next(x for x in rows if x["sensor"] == "mt-falling")
    assert falling["reason_codes"] == "battery" and "battery empty in about" in falling["reasons"]
    assert 8 <= float(falling["battery_days_left"]) <= 12


def test_visit_log_stored_shown_and_taken_into_account(app: TestClient) -> None:
    visit = {"sensor": "mt-drift", "at": datetime.now(UTC).isoformat(), "who": "Camille (services techniques)",
             "actions": ["cleaned", "inspected"], "note": "toile d'araignée dans l'abri"}
    assert app.post("/v1/maintenance/visits", json=visit).status_code == 401
    assert app.post("/v1/maintenance/visits", json=visit, headers={"Authorization": "Bearer nope"}).status_code == 403
    bad = app.post("/v1/maintenance/visits", json=visit | {"sensor": "nowhere-01"}, headers=AUTH)
    assert bad.status_code == 400 and "registry" in bad.json()["error"]["message"]
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    assert app.post("/v1/maintenance/visits", json=visit | {"at": future}, headers=AUTH).status_code == 422
    r = app.post("/v1/maintenance/visits", json=visit, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["who"] == visit["who"] and r.json()["recompute"] is None  # a cleaning starts no new series

    # Shown: publicly when and what; to technicians also who and the note.
    public = app.get("/v1/maintenance/mt-drift").json()["data"]
    assert public["last_visit"]["actions"] == ["cleaned", "inspected"]
    assert "who" not in public["last_visit"] and "note" not in str(public)
    assert "Camille" not in app.get("/v1/maintenance/visits", params={"town": "vitre"}).text
    tech = app.get("/v1/maintenance/mt-drift", headers=AUTH).json()["data"]
    assert tech["visit_log"][0]["note"] == visit["note"] and tech["visit_log"][0]["who"] == visit["who"]
    # The cleaning is on the QC history, on the day it was done; the flags before it no longer call for a visit.
    today = [d for d in tech["qc_history"] if d["visit"]]
    assert today and today[-1]["visit"] == ["cleaned", "inspected"]
    assert any(d["flags"].get("DRIFT") for d in tech["qc_history"])
    assert tech["reasons"] == [] and "mt-drift" not in view(app)["to_visit"]

    # A replacement starts a new series: analytics is asked to recompute from the visit's day, and the battery
    # estimate restarts with the new device.
    r = app.post("/v1/maintenance/visits", headers=AUTH, json={
        "sensor": "mt-falling", "at": datetime.now(UTC).isoformat(), "who": "Camille", "actions": ["replaced"]})
    assert r.status_code == 201 and r.json()["new_series"] is True
    assert r.json()["recompute"]["queued"] is True, r.json()
    falling = by_id(view(app))["mt-falling"]
    assert falling["battery"]["status"] == "too_few" and falling["reasons"] == []
    # Deleting a visit recorded by mistake.
    vid = r.json()["id"]
    assert app.delete(f"/v1/maintenance/visits/{vid}").status_code == 401
    assert app.delete(f"/v1/maintenance/visits/{vid}", headers=AUTH).status_code == 200
    assert by_id(view(app))["mt-falling"]["battery"]["status"] == "falling"


def test_bad_requests_are_4xx(app: TestClient) -> None:
    assert app.get("/v1/maintenance", params={"town": "nowhere"}).status_code == 404
    assert app.get("/v1/maintenance").status_code == 422
    assert app.get("/v1/maintenance/unknown-sensor").status_code == 404
    assert app.get("/v1/maintenance", params={"town": "vitre", "bogus": "1"}).status_code == 400
    wrong = {"Authorization": "Bearer x"}
    assert app.get("/v1/maintenance", params={"town": "vitre"}, headers=wrong).status_code == 403


AXE = Path(__file__).resolve().parents[2] / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "maintenance"


@MARKS[0]
@MARKS[1]
def test_the_maintenance_page_renders_and_records_a_visit(server: str) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR").new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto(f"{server}/maintenance#vitre")
        page.wait_for_selector("body[data-ready='vitre']", timeout=20_000)
        rows = page.locator("#to-visit tbody tr")
        assert rows.first.get_attribute("data-sensor") == "mt-silent"
        assert "muet depuis 30 h" in page.inner_text("#to-visit")
        assert "mt-falling" in page.inner_text("#to-visit") and "mt-steady" not in page.inner_text("#to-visit")
        assert "format=csv" in (page.get_attribute("#csv", "href") or "")
        page.wait_for_selector("#chart-battery canvas", timeout=10_000)  # the first sensor's trend, drawn by uPlot
        page.click("#sensors button[data-sensor='mt-falling']")
        page.wait_for_function("() => document.querySelector('#detail-sensor').textContent === 'mt-falling'")
        page.wait_for_function("() => /10 (jours|days)/.test(document.querySelector('#battery-desc').textContent)")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "maintenance-vitre.png"), full_page=True)
        page.add_script_tag(path=str(AXE))
        found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                              ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))")
        assert [v for v in found if v["impact"] in ("serious", "critical")] == []
        # A technician records a visit through the form: it shows in the log with the note.
        page.fill("#token", TOKEN)
        page.click("#token-form button[type='submit']")
        page.select_option("#v-sensor", "mt-steady")
        page.fill("#v-who", "Dominique")
        page.check("#va-cleaned")
        page.fill("#v-note", "abri nettoyé")
        page.click("#visit-form button[type='submit']")
        page.wait_for_function("() => document.querySelector('#status').textContent.includes('Visite enregistrée')")
        page.wait_for_function("() => document.querySelector('#visit-log').textContent.includes('abri nettoyé')")
        assert "Dominique" in page.inner_text("#visit-log")
        page.click("#lang")
        page.wait_for_function("() => document.querySelector('#to-visit').textContent.includes('silent for 30 h')")
        browser.close()
    assert problems == []
