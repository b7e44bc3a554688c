"""The dashboard in Debian's headless Chromium against the whole running stack (issue 7, item 3).

Nothing is seeded: ``heatwatch up`` runs mosquitto, influxd, ingest, analytics and the api; the
simulator streams readings of every example site (one every 10 s per sensor, each in its device
profile's format: native JSON, SenML or The Things Stack uplinks) through the broker; analytics
evaluates its rules every 10 s with a temperature threshold every reading passes, and no start-up grace,
so it raises real alerts and publishes them on ``heat/alerts/<town>``; its first evaluation, before any
reading, finds the whole town silent (one town-level "offline" alert, closed as soon as readings arrive).
The page is opened
before the first reading, so everything it shows after that arrived live. Map tiles are blocked (the
page as it runs offline). Screenshots go to ``test-artifacts/stack/``.

The tests share one stack and one page and run in file order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from heatwatch.core.model import Sensor
from heatwatch.simulate.formats import format_for
from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import free_port
from stack.upstack import Up, children_of, stack_processes, stop_stacks, wait_ready
from support.browser import MARKS, TILE_HOST, example_registry, launch, marker_values
from support.wait import wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "stack"
TOWN = "vitre"
PROBE = "vitre-centre-01"  # publishes native JSON

pytestmark = MARKS




def placed(sensors: list[Sensor]) -> set[str]:
    return {s.id for s in sensors if s.latitude is not None and s.longitude is not None and not s.retired}


def api(url: str, path: str, **params: Any) -> Any:
    r = httpx.get(f"{url}{path}", params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def stored_temperatures(url: str, sensor: str, wanted: set[float], timeout: float = 20) -> set[float]:
    """Temperatures stored for ``sensor`` over the last ten minutes, once they include ``wanted``."""
    since = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stored: set[float] = set()

    def complete() -> bool:
        nonlocal stored
        stored = {float(r["temperature"]) for r in api(url, "/v1/readings", town=TOWN, sensor=sensor,
                                                         **{"from": since})["data"]}
        return wanted <= stored

    try:
        wait_until(complete, timeout, f"readings of {sensor}", interval=0.5)
    except TimeoutError:
        pass  # the caller's assert shows what is missing
    return stored


def shot(pg: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def markers(pg: Any) -> dict[str, str]:
    """Sensor → data-value of every marker on the map ("" while it has no reading)."""
    return marker_values(pg)


def wait_markers_filled(pg: Any, sensors: set[str], timeout_ms: int) -> None:
    try:
        pg.wait_for_function(
            "ids => { const m = heatwatch.markers(); return ids.every(s => !!(m[s] && m[s].value)); }",
            arg=sorted(sensors), timeout=timeout_ms)
    except PlaywrightTimeout:
        empty = sorted(s for s, v in markers(pg).items() if s in sensors and not v)
        pytest.fail(f"markers still without a value after {timeout_ms} ms: {empty}")


# The stack, the simulator and one page, for the whole module -------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("stack-browser")
    data = (tmp / "var").resolve()
    sensors = example_registry(data)
    up = Up(data, [], {
        "HEATWATCH_API_PORT": str(free_port()),
        "HEATWATCH_ALERT_INTERVAL_S": "10",
        "HEATWATCH_ALERT_TEMPERATURE_C": "-30",  # every reading is above: a real alert per reporting sensor
        # (and, before the first reading, analytics finds the whole town silent: one town-level "offline" alert)
        "HEATWATCH_ALERT_GRACE_S": "0",  # no start-up grace: the alerts of the first seconds are what is tested
        "HEATWATCH_LIVE_COALESCE_S": "1",
    }, tmp / "up-output")
    simulator = ServiceProcess(["simulate", "--live", "--step", "10s"], {"HEATWATCH_DATA_DIR": str(data)},
                               tmp / "simulate.log", name="simulate")
    problems: list[str] = []
    try:
        up.start()
        url, mqtt = up.wait_up()
        wait_ready(url)
        with sync_playwright() as p:
            browser = launch(p)
            context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="fr-FR")
            pg = context.new_page()

            def on_console(msg: Any) -> None:
                if msg.type == "error" and TILE_HOST not in (msg.location or {}).get("url", ""):
                    problems.append(f"console: {msg.text} at {msg.location}")

            pg.on("console", on_console)
            pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            pg.route(f"https://{TILE_HOST}/**", lambda route: route.abort("internetdisconnected"))

            latest_before = api(url, "/v1/latest", town=TOWN)["data"]
            pg.goto(f"{url}/#{TOWN}")
            pg.wait_for_selector(f"body[data-ready='{TOWN}']", timeout=20_000)
            pg.wait_for_selector("#live[data-state='open']", timeout=10_000)
            before = {"latest": latest_before, "markers": markers(pg)}
            shot(pg, "vitre-before-readings")

            simulator.env["HEATWATCH_MQTT_URL"] = mqtt
            # up's broker takes no anonymous client: the simulator's account, as the demo's simulator uses it.
            simulator.env["HEATWATCH_MQTT_USERNAME"] = "simulator"
            simulator.env["HEATWATCH_MQTT_PASSWORD_FILE"] = str(data / "secrets" / "mqtt-simulator")
            simulator.start()
            try:
                yield {"url": url, "data": data, "up": up, "page": pg, "sensors": sensors, "before": before,
                       "problems": problems, "simulator": simulator}
            finally:
                context.close()
                browser.close()
    finally:
        simulator.stop()
        stop_stacks([up])


# Tests, in order -----------------------------------------------------------------------------------


def test_map_shows_every_placed_sensor_of_the_town(live):
    expected = placed(live["sensors"][TOWN])
    assert PROBE in expected and len(expected) >= 10
    # Before any reading: a marker for every placed site of the registry, nothing else (the retired
    # site neither), none with a value.
    assert live["before"]["latest"] == []
    assert live["before"]["markers"] == dict.fromkeys(expected, "")
    # Once the simulator runs, still exactly those.
    pg = live["page"]
    wait_markers_filled(pg, {PROBE}, 30_000)
    assert set(markers(pg)) == expected


def wait_marker_change(pg: Any, url: str, sensors: set[str], what: str) -> tuple[str, str, str]:
    """(sensor, old value, new value) of the first of ``sensors`` whose marker shows a new value.
    The simulator sends a reading of every sensor every 10 s; two in a row may round to the same
    value, hence the first of several sensors to change."""
    wait_markers_filled(pg, sensors, 40_000)
    before = {s: v for s, v in markers(pg).items() if s in sensors}
    try:
        sensor, second = pg.wait_for_function(
            "old => { for (const [s, v] of Object.entries(old)) {"
            " const m = heatwatch.markers()[s];"
            " if (m && m.value && m.value !== v) return [s, m.value]; } return null; }",
            arg=before, timeout=40_000).json_value()
    except PlaywrightTimeout:
        probe = sorted(sensors)[0]
        since = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = api(url, "/v1/readings", town=TOWN, sensor=probe, **{"from": since})["data"]
        pytest.fail(f"no {what} marker changed in 40 s from {before}; {probe} stored meanwhile: "
                    f"{[(r['time'], r['temperature']) for r in rows]}; live: {pg.inner_text('#live')!r}")
    return sensor, before[sensor], second


def test_a_marker_changes_within_seconds_as_new_readings_arrive(live):
    pg, url = live["page"], live["url"]
    shown = placed(live["sensors"][TOWN])
    by_format = {s.id: format_for(s) for s in live["sensors"][TOWN] if s.id in shown}
    native = {s for s, f in by_format.items() if f == "json"}
    others = {s for s, f in by_format.items() if f != "json"}  # SenML and The Things Stack uplinks
    assert PROBE in native and len(native) >= 3 and others
    # Whatever the payload format, the live stream carries what the ingester stored.
    for group, what in ((native, "native JSON"), (others, "SenML or TTS")):
        sensor, first, second = wait_marker_change(pg, url, group, what)
        assert float(first) != float(second)
        # Both are readings of that sensor the ingester stored (the live topic is published once the
        # batch is durable; the wait only covers the REST side's caching).
        values = {float(first), float(second)}
        assert values <= stored_temperatures(url, sensor, values), (what, sensor)
    assert set(markers(pg)) == shown
    shot(pg, "vitre-live-readings")


def test_an_alert_raised_by_analytics_appears_in_the_open_alerts(live):
    pg, url = live["page"], live["url"]
    item = f"#alerts li[data-kind='temperature']:has-text('{PROBE}')"
    pg.wait_for_selector(item, timeout=45_000)
    assert pg.locator(f"{item} .new").count() == 1  # arrived live, marked as news
    assert "-30" in pg.inner_text(item)  # the threshold analytics applied
    stored = api(url, "/v1/alerts", town=TOWN, status="open")["data"]
    assert any(a["sensor"] == PROBE and a["kind"] == "temperature" for a in stored), stored
    assert f"sensor={PROBE}" in (live["data"] / "logs" / "analytics.log").read_text()
    # Only the town's alerts: Saint-Omer's sensors report and raise theirs too.
    listed = pg.eval_on_selector_all("#alerts li", "els => els.map(e => e.textContent)")
    assert listed and not [t for t in listed if "so-" in t]
    shot(pg, "vitre-live-alerts")


def test_an_alert_analytics_closed_leaves_the_open_alerts(live):
    pg, url = live["page"], live["url"]
    # The town was silent until the first readings; analytics closed that alert, and raised none per sensor.
    pg.wait_for_selector(f"#alerts li[data-kind='temperature']:has-text('{PROBE}')", timeout=45_000)
    stored = api(url, "/v1/alerts", town=TOWN, status="open")["data"]
    assert not [a for a in stored if a["sensor"] == PROBE and a["kind"] == "offline"]
    assert "alert.close" in (live["data"] / "logs" / "analytics.log").read_text()
    pg.wait_for_function(
        "s => ![...document.querySelectorAll(\"#alerts li[data-kind='offline']\")]"
        ".some(e => e.textContent.includes(s))", arg=PROBE, timeout=5_000)


def test_every_marker_follows_live_readings_whatever_the_payload_format(live):
    pg = live["page"]
    expected = placed(live["sensors"][TOWN])
    others = {s.id for s in live["sensors"][TOWN] if s.id in expected and format_for(s) != "json"}
    assert others, "the example sites include SenML and LoRaWAN sensors"
    # The stack stores their readings (10 s apart) and publishes them on heatwatch/live/<town>.
    deadline = time.monotonic() + 30
    while not others <= {r["sensor"] for r in api(live["url"], "/v1/latest", town=TOWN)["data"]}:
        assert time.monotonic() < deadline, "the SenML and LoRaWAN sensors' readings are not stored"
        time.sleep(1)
    time.sleep(1)  # as long again as the native sensors' markers take after being stored
    wait_markers_filled(pg, others, 5_000)


def test_the_page_logged_no_error(live):
    assert live["problems"] == [], "\n".join(live["problems"])


def test_ctrl_c_stops_the_stack(live):
    live["simulator"].stop()
    up = live["up"]
    children = children_of(up.pid)
    assert up.interrupt() == 0, up.output()
    assert {pid for pid in children if pid in stack_processes(live["data"])} == set()
    assert stack_processes(live["data"]) == {}
