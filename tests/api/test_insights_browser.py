"""The dashboard's heat-island panel in headless Chromium against a running ``heatwatch api`` over the hot-spot
town (tests/support/hotspot_town.py): the ranking shows the hot spot first and says on how many common nights
the sites are compared, and the season map loads. Screenshot in ``test-artifacts/dashboard/``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import free_port
from support.browser import MARKS, TILE_HOST, launch

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"

pytestmark = MARKS


@pytest.fixture(scope="module")
def api_url(mosquitto, influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from support.hotspot_town import fortnight, load_registry
    from support.insights_data import write_agg

    tmp = tmp_path_factory.mktemp("insights_browser")
    db = f"insights_{int(time.time())}"
    load_registry(tmp / "var" / "registry.sqlite")
    write_agg(influxd.url, db, fortnight().lines)
    port = free_port()
    env = {"HEATWATCH_MQTT_URL": mosquitto.url, "HEATWATCH_INFLUX_URL": influxd.url, "HEATWATCH_INFLUX_DB": db,
           "HEATWATCH_DATA_DIR": str(tmp / "var"), "HEATWATCH_API_RATE_LIMIT_PER_S": "0"}
    api = ServiceProcess(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp / "api.log", name="api")
    api.start(ready_marker="live.subscribed", timeout=60)
    api.wait_for("Application startup complete", timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        api.stop()


def test_ranking_panel_puts_the_hot_spot_first_on_common_nights(api_url):
    from playwright.sync_api import sync_playwright

    from support.hotspot_town import DAYS, HOTSPOT

    problems: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            pg = browser.new_page(viewport={"width": 1366, "height": 1400}, locale="fr-FR")
            pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            pg.route(f"https://{TILE_HOST}/**", lambda route: route.abort("internetdisconnected"))
            pg.goto(f"{api_url}/#vitre")
            pg.wait_for_selector("body[data-ready='vitre']", timeout=20_000)
            pg.wait_for_selector("#insights-season", timeout=10_000)
            pg.fill("#insights-season", "2025")
            pg.dispatch_event("#insights-season", "change")
            pg.wait_for_function("document.querySelector('#insights-ranking caption').textContent.includes('nuits')",
                                 timeout=15_000)
            caption = pg.text_content("#insights-ranking caption") or ""
            first = pg.text_content("#insights-ranking tbody tr:first-child td:nth-child(2)") or ""
            title = pg.get_attribute("#insights-ranking tbody tr:first-child td:nth-child(2)", "title") or ""
            pg.wait_for_function("(() => { const i = document.getElementById('insights-map');"
                                 " return i && !i.hidden && i.complete && i.naturalWidth > 0; })()", timeout=20_000)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.locator("#insights").screenshot(path=str(ARTIFACTS / "insights-hotspot.png"))
        finally:
            browser.close()
    assert HOTSPOT in title and HOTSPOT in first, (first, title)
    assert f"comparés sur les {DAYS - 3} mêmes nuits" in caption, caption
    assert problems == []
