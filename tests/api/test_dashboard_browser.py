"""The dashboard in a real headless Chromium (Debian's, CONTRIBUTING.md) against a running ``heatwatch api``.

The initial state is written straight into InfluxDB in line protocol (24 h of readings for every
sensor of the example registries, hourly QC, 30 days of town indices, one open alert); live changes
are published on the real mosquitto, as ingest (``heatwatch/live/<town>``: what it stored) and analytics
(``heat/alerts/<town>``) do. The map tiles' host is blocked so
the page is tested as it runs with no internet. Screenshots go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from heatwatch.analytics.last import LastReadings
from heatwatch.core.deadletters import FILENAME as DEADLETTER_FILE
from heatwatch.core.deadletters import DeadLetter, DeadLetterStore
from heatwatch.core.influx import AGG_RP, RAW_RP, InfluxClient
from heatwatch.core.model import Sensor
from heatwatch.core.notifications import NotificationStore, SubscriptionIn
from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import free_port
from support.browser import MARKS, TILE_HOST, example_registry, launch, marker_values
from support.mqtt import publish_all, subscribed

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
AXE = Path(__file__).resolve().parents[2] / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
SILENT = "vitre-za-01"  # last heard 3 h ago: must show as silent
ADMIN_TOKEN = "dashboard-admin-token-0123456789-abcdef"
LHT65_TOPIC = "v3/capteurs-vitre@ttn/devices/lht65-mairie/up"
DEAD_LETTERS = [
    DeadLetter(LHT65_TOPIC, b'{"n": 1}', "unknown_profile", "lht65-mairie: the registry names device profile 'x'", 1),
    DeadLetter(LHT65_TOPIC, b'{"n": 2}', "unknown_profile", "lht65-mairie: the registry names device profile 'x'", 2),
    DeadLetter("heat/saint-omer/vitre-centre-01", b'{"temperature": 21}', "town_mismatch",
               "sensor 'vitre-centre-01' is registered in 'vitre'", 3),
]
FLAGGED = "vitre-gare-01"  # hourly QC flag "too warm vs. peers"
TODAY = datetime.now(UTC).date()
SEASON = TODAY.year if TODAY.month >= 6 else TODAY.year - 1  # the dashboard's newest summer
IN_SEASON = (6, 1) <= (TODAY.month, TODAY.day) <= (9, 15)
SO_SUMMER_DAYS = (10, 11, 12)  # July

pytestmark = MARKS


# The stack: registry + seeded InfluxDB + a running api ---------------------------------------------




def _seed_lines(sensors: dict[str, list[Sensor]]) -> tuple[list[str], list[str]]:
    now = int(time.time() * 1000) // 60_000 * 60_000
    raw: list[str] = []
    agg: list[str] = []
    for town, items in sensors.items():
        for i, s in enumerate(items):
            offset = {"urban": 2.5, "suburban": 1.0, "park": 0.3, "water": -0.2}.get(str(s.site_class), 0.0)
            last = now - (3 * 3600_000 if s.id == SILENT else 0)
            for k in range(144):  # 24 h every 10 min
                ts = last - k * 600_000
                hour = (ts / 3600_000) % 24
                t = 21.0 + offset + 6 * math.sin((hour - 9) / 24 * 2 * math.pi) + i * 0.05
                raw.append(f"reading,town={town},sensor={s.id} temperature={t:.2f},humidity=55.0,"
                           f"battery_v={3.05 + (i % 4) * 0.07:.2f} {ts}")
            for h in range(1, 4):
                hour_ts = (now // 3600_000 - h) * 3600_000
                qc = 32 if s.id == FLAGGED else 0
                agg.append(f"hourly,town={town},sensor={s.id} t_mean=24.0,uhi={offset:.1f},n=6i,qc={qc}i {hour_ts}")
    day = 86_400_000
    for d in range(30):
        ts = (now // day - d) * day - 2 * 3600_000
        hot = 5 <= d <= 8
        agg.append(f"town_daily,town=vitre ibmn={19.5 if hot else 15.0 + d % 3},ibmx={34.5 if hot else 26.0 + d % 4},"
                   f"canicule={'true' if hot else 'false'},uhi_mean={1.2 + (d % 5) * 0.3:.1f},"
                   f'uhi_max={3.0 + (d % 4) * 0.5:.1f},hottest_sensor="vitre-centre-01",sensors_ok=13i {ts}')
    # Saint-Omer: one day of indices in the last 30 days, three in the newest summer (the axis with one or few days).
    agg.append(f"town_daily,town=saint-omer ibmn=12.0,ibmx=17.0,canicule=false,uhi_mean=0.8,uhi_max=2.1 "
               f"{(now // day - 1) * day - 3600_000}")
    for d in SO_SUMMER_DAYS:
        ts = int(datetime(SEASON, 7, d, tzinfo=UTC).timestamp() * 1000) - 2 * 3600_000
        agg.append(f"town_daily,town=saint-omer ibmn=19.0,ibmx=33.5,canicule=true,uhi_mean=1.9,uhi_max=3.8 {ts}")
    agg.append(f'alert,town=vitre,sensor=vitre-centre-01,kind=tropical_night value=21.2,threshold=20.0,'
               f'message="Nuit tropicale : Tn 21,2 °C",state="open",started={now - 2 * 3600_000}i '
               f'{now - 2 * 3600_000}')
    return raw, agg


def _write(url: str, db: str, raw: list[str], agg: list[str]) -> None:
    async def go() -> None:
        async with InfluxClient(url, db) as c:
            await c.setup()
            await c.write_lines(raw, rp=RAW_RP)
            await c.write_lines(agg, rp=AGG_RP)
            await LastReadings(c).refresh(0, int(time.time() * 1000))  # as analytics keeps it

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


@pytest.fixture(scope="module")
def stack(mosquitto, influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dashboard")
    db = f"dash_{int(time.time())}"
    sensors = example_registry(tmp / "var")
    _write(influxd.url, db, *_seed_lines(sensors))
    with DeadLetterStore(tmp / "var" / "deadletter" / DEADLETTER_FILE) as store:
        store.add_many(DEAD_LETTERS)
    port = free_port()
    env = {
        "HEATWATCH_MQTT_URL": mosquitto.url,
        "HEATWATCH_INFLUX_URL": influxd.url,
        "HEATWATCH_INFLUX_DB": db,
        "HEATWATCH_DATA_DIR": str(tmp / "var"),
        "HEATWATCH_LIVE_COALESCE_S": "1",
        "HEATWATCH_API_RATE_LIMIT_PER_S": "0",
        "HEATWATCH_API_CACHE_TTL_LATEST_S": "0",
        # Not the default: the page must mark low batteries at the configured alert threshold.
        "HEATWATCH_ALERT_BATTERY_V": "3.0",
        "HEATWATCH_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    api = ServiceProcess(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp / "api.log", name="api")
    api.start(ready_marker="live.subscribed", timeout=60)
    api.wait_for("Application startup complete", timeout=30)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "sensors": sensors, "mqtt": mosquitto.url, "log": api,
               "influx": influxd.url, "db": db, "data": tmp / "var"}
    finally:
        api.stop()


# The browser -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, stack, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page with the tile server unreachable; fails the test on any console error or uncaught
    exception, except the tile requests that fail by design offline."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="fr-FR")
    pg = context.new_page()
    problems: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type == "error" and TILE_HOST not in (msg.location or {}).get("url", ""):
            problems.append(f"console: {msg.text} at {msg.location}")

    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.route(f"https://{TILE_HOST}/**", lambda route: route.abort("internetdisconnected"))
    yield pg
    context.close()
    assert problems == [], "\n".join(problems)


def shot(pg: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_town(pg: Any, url: str, town: str) -> None:
    pg.goto(f"{url}/#{town}")
    pg.wait_for_selector(f"body[data-ready='{town}']", timeout=20_000)
    pg.wait_for_selector("#live[data-state='open']", timeout=10_000)


def placed(sensors: list[Sensor]) -> set[str]:
    return {s.id for s in sensors if s.latitude is not None and s.longitude is not None and not s.retired}


def marker_value(pg: Any, sensor: str) -> str | None:
    return marker_values(pg).get(sensor)


# Tests ---------------------------------------------------------------------------------------------------


def test_map_list_alerts_and_charts_for_each_town(page, stack):
    url, sensors = stack["url"], stack["sensors"]
    open_town(page, url, "vitre")
    shown = set(marker_values(page))
    assert shown == placed(sensors["vitre"])  # every sensor of the town, nothing else (the retired one neither)
    assert all(marker_value(page, s) not in (None, "") for s in shown)
    rows = page.eval_on_selector_all("#sensors tbody tr", "els => els.map(e => e.dataset.sensor)")
    assert set(rows) == {s.id for s in sensors["vitre"] if not s.retired}

    # Sensor list: last seen, battery, status and QC of each sensor.
    silent = page.locator(f"#sensors tr[data-sensor='{SILENT}']")
    assert "muet" in silent.inner_text() and "il y a 3 h" in silent.inner_text()
    assert "trop chaud" in page.locator(f"#sensors tr[data-sensor='{FLAGGED}']").inner_text()
    assert " V" in page.locator("#sensors tr[data-sensor='vitre-centre-01']").inner_text()
    assert "conforme" in page.locator("#sensors tr[data-sensor='vitre-centre-01']").inner_text()
    assert page.locator("#sensors td.low-batt").count() == 0  # every seeded battery is at 3.05 V or more

    # The open alert from the database, the legend in °C, both charts drawn, the offline note.
    assert "Nuit tropicale" in page.inner_text("#alerts")
    assert "°C" in page.inner_text("#legend")
    page.wait_for_selector("#chart-day canvas")
    page.wait_for_selector("#chart-month canvas")
    assert "18" in page.inner_text("#month-desc") and "33" in page.inner_text("#month-desc")
    assert page.locator(".leaflet-control-scale").count() == 1
    shot(page, "vitre-desktop")

    # The UHI toggle recolours the map against the rural reference: the reference itself is at 0.
    page.click("label[for='mode-uhi']")
    assert marker_value(page, "vitre-rural-01") == "0"
    assert "référence rurale" in page.inner_text("#legend")
    shot(page, "vitre-uhi")

    page.select_option("#town", "saint-omer")
    page.wait_for_selector("body[data-ready='saint-omer']", timeout=20_000)
    shown = set(marker_values(page))
    assert shown == placed(sensors["saint-omer"])
    shot(page, "saint-omer-desktop")


def test_new_reading_changes_its_marker_within_seconds(page, stack):
    open_town(page, stack["url"], "vitre")
    sensor = "vitre-centre-02"
    before = marker_value(page, sensor)
    # As the ingester publishes a reading it stored (here one of a SenML sensor).
    payload = json.dumps({"town": "vitre", "readings": [
        {"sensor": sensor, "ts": int(time.time() * 1000), "temperature": 36.6, "humidity": 31.0, "battery_v": 2.91,
         "rssi": None, "source": "senml"}]})
    t0 = time.monotonic()
    assert publish_all(stack["mqtt"], [("heatwatch/live/vitre", payload.encode())]) == 1
    page.wait_for_function(
        "s => heatwatch.markers()[s]?.value === '36.6'",
        arg=sensor, timeout=5_000)
    took = time.monotonic() - t0
    assert before != "36.6" and took < 5
    row = page.locator(f"#sensors tr[data-sensor='{sensor}']").inner_text()
    assert "36,6" in row and "2.91 V" in row and "à l'instant" in row
    # Under HEATWATCH_ALERT_BATTERY_V (3.0 here), so marked low, as the battery alert would be.
    assert page.locator(f"#sensors tr[data-sensor='{sensor}'] td.low-batt").count() == 1
    # The list is sorted hottest first: this sensor is now on top.
    assert page.eval_on_selector("#sensors tbody tr", "e => e.dataset.sensor") == sensor
    shot(page, "vitre-live-reading")


def test_alert_published_by_analytics_appears(page, stack):
    open_town(page, stack["url"], "vitre")
    assert page.locator("#alerts li").count() == 1
    alert = {"sensor": "vitre-centre-03", "kind": "heat_index", "value": 41.0, "threshold": 40.0,
             "message": "Indice de chaleur 41 °C, seuil 40 °C", "ts": int(time.time() * 1000)}
    other = dict(alert, sensor="so-centre-01", message="ailleurs")
    assert publish_all(stack["mqtt"], [("heat/alerts/saint-omer", json.dumps(other).encode()),
                                       ("heat/alerts/vitre", json.dumps(alert).encode())]) == 2
    page.wait_for_selector("#alerts li:has-text('Indice de chaleur 41')", timeout=5_000)
    assert page.inner_text("#alerts-count") == "2"
    assert page.locator("#alerts li:has-text('Indice de chaleur 41') .new").count() == 1  # marked as news
    assert page.locator("#alerts li:has-text('Nuit tropicale') .new").count() == 0
    assert "ailleurs" not in page.inner_text("#alerts")
    shot(page, "vitre-live-alert")


def test_a_close_event_removes_the_alert_from_the_list(page, stack):
    open_town(page, stack["url"], "vitre")
    page.wait_for_selector("#alerts li:has-text('Nuit tropicale')")
    now = int(time.time() * 1000)

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    opened = {"event": "open", "town": "vitre", "sensor": "vitre-centre-04", "kind": "temperature", "value": 35.2,
              "threshold": 35.0, "message": "Température 35,2 °C", "state": "open", "started": iso(now),
              "ended": None, "ts": now}
    assert publish_all(stack["mqtt"], [("heat/alerts/vitre", json.dumps(opened).encode())]) == 1
    hot = "#alerts li[data-kind='temperature'][data-sensor='vitre-centre-04']"
    page.wait_for_selector(hot, timeout=5_000)
    assert "35,2 °C sur les 30 dernières minutes (seuil 35 °C)" in page.inner_text(hot)
    before = int(page.inner_text("#alerts-count"))
    # Analytics closes it, and the tropical night loaded over REST (same sensor and kind, whatever the ts).
    closed = opened | {"event": "close", "state": "closed", "ended": iso(now + 10_000), "ts": now + 10_000}
    night = {"event": "close", "town": "vitre", "sensor": "vitre-centre-01", "kind": "tropical_night",
             "value": 21.2, "threshold": 20.0, "message": "Nuit tropicale : Tn 21,2 °C", "state": "closed",
             "started": iso(now - 2 * 3600_000), "ended": iso(now + 10_000), "ts": now + 10_000}
    assert publish_all(stack["mqtt"], [("heat/alerts/vitre", json.dumps(closed).encode()),
                                       ("heat/alerts/vitre", json.dumps(night).encode())]) == 2
    page.wait_for_function("() => !document.querySelector(\"#alerts li[data-sensor='vitre-centre-04']\")"
                           " && !document.querySelector('#alerts').textContent.includes('Nuit tropicale')",
                           timeout=5_000)
    assert int(page.inner_text("#alerts-count")) == before - 2  # removed, no "closed" entry added
    shot(page, "vitre-alert-closed")

    # A new page: the REST API (seeded, never updated here) still lists the tropical night as open, the
    # replayed close event keeps it out whichever of the two arrives first; the replayed open/close pair too.
    open_town(page, stack["url"], "vitre")
    page.wait_for_timeout(1000)
    text = page.inner_text("#alerts")
    assert "Nuit tropicale" not in text and "35,2" not in text


def test_english_keyboard_and_phone_width(browser, stack):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2, locale="fr-FR")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error"
          and TILE_HOST not in (m.location or {}).get("url", "") else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.route(f"https://{TILE_HOST}/**", lambda route: route.abort("internetdisconnected"))
    try:
        open_town(pg, stack["url"], "vitre")
        # Phone width: one column, nothing wider than the screen.
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390
        shot(pg, "vitre-phone-fr")

        # Keyboard only: the language toggle, then a sensor of the list.
        pg.focus("#lang")
        pg.keyboard.press("Enter")
        assert pg.get_attribute("html", "lang") == "en"
        assert pg.inner_text("#sensors-title") == "Sensors"
        assert "silent" in pg.locator(f"#sensors tr[data-sensor='{SILENT}']").inner_text()
        pg.focus("#sensors tbody tr[data-sensor='vitre-parc-01'] button")
        pg.keyboard.press("Enter")
        pg.wait_for_function("() => document.querySelector('#day-sensor').textContent.includes('Parc')"
                             " || document.querySelector('#day-sensor').textContent.includes('parc')")
        assert pg.get_attribute("#sensors tr[data-sensor='vitre-parc-01']", "class") == "selected"
        # Town selector by keyboard too.
        pg.focus("#town")
        pg.keyboard.press("ArrowDown")
        pg.wait_for_selector("body[data-ready='saint-omer']", timeout=20_000)
        shot(pg, "saint-omer-phone-en")
    finally:
        context.close()
    assert errors == []


def test_technician_sees_dead_letters_per_device_and_replays_them(page, stack):
    open_town(page, stack["url"], "vitre")
    page.wait_for_selector("#deadletters form.dl-token", timeout=10_000)  # nothing shown without the token
    page.fill("#dl-token", ADMIN_TOKEN)
    page.click("#deadletters form.dl-token button")
    page.wait_for_selector("#deadletters-table", timeout=10_000)
    assert page.inner_text("#deadletters-totals strong") == "3"
    assert page.get_attribute(".dl-reason[data-reason='unknown_profile']", "data-reason") == "unknown_profile"
    rows = page.locator("#deadletters-table tbody tr")
    assert rows.count() == 2
    assert "lht65-mairie" in rows.nth(0).inner_text() and "unknown_profile (2)" in rows.nth(0).inner_text()
    shot(page, "deadletters")
    with subscribed(stack["mqtt"], "v3/#") as replayed:
        page.click("#deadletters-table button[data-device='lht65-mairie']")
        page.wait_for_selector("#deadletters [role=status]", timeout=10_000)
        deadline = time.monotonic() + 10
        while len(replayed) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(m.payload for m in replayed) == [b'{"n": 1}', b'{"n": 2}']
    # The page reloads the counts: what is left is the town mismatch.
    page.wait_for_function("document.querySelector('#deadletters-totals strong')?.textContent === '1'",
                           timeout=10_000)


def test_technician_acknowledges_an_alert_and_sees_who_and_when(page, stack):
    started = int(time.time() * 1000) - 3600_000  # an alert of its own: other tests close the seeded one
    _write(stack["influx"], stack["db"], [], [
        f'alert,town=vitre,sensor=vitre-gare-01,kind=temperature value=36.4,threshold=35.0,message="hot",'
        f'state="open",started={started}i {started}'])
    open_town(page, stack["url"], "vitre")
    item = "#alerts li[data-sensor='vitre-gare-01'][data-kind='temperature']"
    page.wait_for_selector(item, timeout=10_000)
    assert page.locator(f"{item} .ack").count() == 0  # no token: nothing to acknowledge with
    page.fill("#dl-token", ADMIN_TOKEN)  # the technician's token, entered once in the dead-letters card
    page.click("#deadletters form.dl-token button")
    page.wait_for_selector(f"{item} button.ack", timeout=15_000)
    page.once("dialog", lambda d: d.accept("Camille Martin"))  # asked once, remembered in this browser
    page.click(f"{item} button.ack")
    page.wait_for_selector(f"{item} div.ack", timeout=10_000)
    assert page.inner_text(f"{item} div.ack").startswith("Acquittée par Camille Martin, ")
    shot(page, "vitre-alert-acknowledged")
    # Stored with who and when, and shown again after a reload.
    acks = httpx.get(f"{stack['url']}/v1/notifications/acks", params={"town": "vitre"},
                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()["data"]
    assert [(a["sensor"], a["kind"], a["by"], a["started"]) for a in acks] == [
        ("vitre-gare-01", "temperature", "Camille Martin", started)]
    page.reload()
    page.wait_for_selector(f"{item} div.ack", timeout=15_000)
    # A notification every attempt of which failed is listed below the alerts and can be sent again.
    store = NotificationStore.for_data_dir(stack["data"])
    sub = store.add_subscription(SubscriptionIn(town="vitre", channel="webhook", target="https://hooks.example/x",
                                                digest=False))
    did = store.add_delivery(sub.id, "open", started, started, payload={"subject": "Alerte u1", "text": "", "json": {}})
    store.update_delivery(did, status="dead", attempts=6, last_error="POST https://hooks.example/x: HTTP 503")
    page.reload()
    page.click("#notify-dead summary", timeout=15_000)
    assert "HTTP 503" in page.inner_text(f"#notify-dead li[data-delivery='{did}']")
    page.click(f"#notify-dead li[data-delivery='{did}'] button")
    page.wait_for_function(f"document.querySelector(\"#notify-dead li[data-delivery='{did}']\").textContent"
                           ".includes('renvoi demandé')", timeout=10_000)
    assert store.delivery(did).status == "pending"


def month_axis(pg: Any) -> dict[str, Any]:
    """The daily chart's x scale (days) and the labels its axis drew."""
    return pg.evaluate("() => { const u = heatwatch.state.monthChart; return { span_days: (u.scales.x.max - "
                       "u.scales.x.min) / 86400, n: u.data[0].length, labels: heatwatch.state.monthAxis, "
                       "period: heatwatch.state.monthPeriod, first: u.data[0][0] }; }")


def day_label(pg: Any, epoch_s: float) -> str:
    return pg.evaluate("x => new Date(x * 1000).toLocaleString('fr-FR', {timeZone: 'Europe/Paris', day: 'numeric', "
                       "month: 'short'})", epoch_s)


def test_daily_chart_axis_with_one_or_a_few_days(page, stack):
    """One day of indices used to stretch the axis over years ("1 mai, 1 nov., 1 mai…"): it spans a week of days."""
    open_town(page, stack["url"], "saint-omer")
    page.wait_for_selector("#chart-month canvas")
    # Out of the vigilance season the card opens on the last summer when the town has indices for it.
    assert month_axis(page)["period"] == ("30d" if IN_SEASON else "season")
    for period, days in (("30d", 1), ("season", len(SO_SUMMER_DAYS))):
        page.select_option("#month-period", period)
        page.wait_for_function("([p, n]) => heatwatch.state.monthPeriod === p && heatwatch.state.monthChart"
                               " && heatwatch.state.monthChart.data[0].length === n", arg=[period, days])
        axis = month_axis(page)
        assert 7 <= axis["span_days"] <= 8, axis  # a week, not years
        labels = axis["labels"]
        assert len(labels) >= 3 and len(set(labels)) == len(labels), axis  # one tick per day, no repeats
        assert day_label(page, axis["first"]) in labels, axis
        assert all(any(m in x for m in ("janv", "févr", "mars", "avr", "mai", "juin", "juil", "août", "sept", "oct",
                                          "nov", "déc")) and x.split()[0].isdigit() for x in labels), labels
    assert "Été" in page.inner_text("#month-period")
    shot(page, "saint-omer-few-days")


def test_nearby_markers_are_clustered_and_open_on_click(page, stack):
    open_town(page, stack["url"], "vitre")
    expected = placed(stack["sensors"]["vitre"])
    states = page.evaluate("heatwatch.markers()")
    assert set(states) == expected
    clusters = page.eval_on_selector_all(".hw-cluster .cl", "els => els.map(e => Number(e.dataset.count))")
    alone = page.eval_on_selector_all(".hw-marker span[data-sensor]", "els => els.map(e => e.dataset.sensor)")
    # The town centre's sites overlap at the town's zoom: some are grouped; every sensor is drawn once.
    assert clusters and len(alone) + sum(clusters) == len(expected), (clusters, alone)
    assert sum(1 for m in states.values() if m["cluster"]) == sum(clusters)
    # A cluster names its count and hottest value for screen readers.
    assert "capteurs proches" in page.inner_text(".hw-cluster .cl .sr-only")
    page.click(".hw-cluster")
    page.wait_for_function("n => document.querySelectorAll('.hw-marker span[data-sensor]').length > n",
                           arg=len(alone), timeout=10_000)
    shot(page, "vitre-cluster-opened")


def test_alerts_read_as_plain_words(page, stack):
    open_town(page, stack["url"], "vitre")
    now = int(time.time() * 1000)
    alerts = [
        {"sensor": "vitre-centre-06", "kind": "offline", "value": 1684.0, "threshold": 60.0,
         "message": "vitre-centre-06: no reading for 1684 min"},
        {"sensor": "vitre-parc-02", "kind": "battery", "value": 2.55, "threshold": 2.6,
         "message": "vitre-parc-02: battery 2.55 V, threshold 2.6 V"},
        {"sensor": "vitre-vilaine-02", "kind": "battery", "value": 12.0, "threshold": 20.0,
         "message": "vitre-vilaine-02: battery 12 %, threshold 20 %"},
        {"sensor": "vitre-sub-01", "kind": "qc", "value": 4.0, "threshold": 3.0,
         "message": "vitre-sub-01: quality control failing for 4 h (PERSISTENCE)"},
        {"sensor": None, "kind": "offline", "value": 95.0, "threshold": 60.0,
         "message": "no reading from any sensor of the town for 95 min"},
    ]
    payloads = [("heat/alerts/vitre", json.dumps(a | {"event": "open", "town": "vitre", "ts": now}).encode())
                for a in alerts]
    assert publish_all(stack["mqtt"], payloads) == len(payloads)
    page.wait_for_selector("#alerts li[data-kind='qc']", timeout=5_000)
    text = page.inner_text("#alerts")
    for words in ("Capteur muet", "silencieux depuis 28 h", "batterie à 2,55 V (seuil 2,6 V)",
                  "batterie à 12 % (seuil 20 %)", "valeur figée", "aucune mesure de la commune depuis 1 h 35"):
        assert words in text, (words, text)
    assert "1684" not in text and "1 684" not in text and " / " not in text
    shot(page, "vitre-alert-words")
    page.click("#lang")
    page.wait_for_function("() => document.querySelector('#alerts').textContent.includes('silent for 28 h')")
    assert "battery at 12 % (threshold 20 %)" in page.inner_text("#alerts")


def run_axe(pg: Any) -> list[dict[str, Any]]:
    """axe-core (npm, frontend/node_modules) injected into the page: its serious and critical violations."""
    pg.add_script_tag(path=str(AXE))
    found = pg.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                        ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target)}))")
    return [v for v in found if v["impact"] in ("serious", "critical")]


def test_no_serious_or_critical_accessibility_violation(page, stack):
    assert AXE.exists(), "axe-core is not installed: npm ci --prefix frontend"
    open_town(page, stack["url"], "vitre")
    page.wait_for_selector("#chart-month canvas")
    page.wait_for_selector("#insights-ranking")
    assert run_axe(page) == []
    page.click("#lang")  # English, and the UHI colouring
    page.click("label[for='mode-uhi']")
    assert run_axe(page) == []


def test_a_resident_joins_through_the_contribute_page(page, stack) -> None:
    """The /contribute page: the charter's terms from /v1/governance, the form, the credentials shown once; the
    private view then holds the consent recorded as given on the page; /governance lists the sources."""
    lat, lon = 48.1253417, -1.2081133  # a garden of Vitré: its digits must not come back in public
    page.goto(f"{stack['url']}/contribute")
    page.wait_for_function("() => document.getElementById('town').options.length > 0"
                           " && document.getElementById('purpose').textContent.length > 0")
    page.select_option("#town", "vitre")
    page.fill("#pseudonym", "Jardin de Mme Test")
    page.fill("#contact", "jardin.test@exemple-mail.fr")
    page.fill("#device_model", "BME280 + ESP32")
    page.fill("#latitude", str(lat))
    page.fill("#longitude", str(lon))
    page.select_option("#licence", "odbl-1.0")
    # Without the consent box ticked the browser does not send the form (and the api refuses it: test_citizens).
    assert page.evaluate("() => document.getElementById('form').checkValidity()") is False
    page.check("#consent")
    assert page.evaluate("() => document.getElementById('form').checkValidity()") is True
    page.click("button[type=submit]")
    page.wait_for_selector("#done", state="visible")
    text = page.inner_text("#result")
    sensor = text.split("Capteur / sensor: ", 1)[1].split(" ", 1)[0]
    token = text.split("affiché une seule fois): ", 1)[1].split("\n", 1)[0].strip()
    assert "(provisional)" in text and "POST" in text and f"{lat}" not in text.split("Position publiée", 1)[1]
    me = httpx.get(f"{stack['url']}/v1/contribute/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["contribution"]["sensor"] == sensor and body["trust"] == "provisional"
    consent = body["contribution"]["consent"]
    assert consent["licence"] == "odbl-1.0" and consent["charter_version"] and consent["given"]
    page.goto(f"{stack['url']}/governance")
    page.wait_for_function("() => document.getElementById('towns').textContent.includes('contributors')")
    assert "ODbL-1.0" in page.inner_text("#towns")
