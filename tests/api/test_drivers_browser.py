"""The dashboard's "drivers and priorities" card in headless Chromium against a running ``heatwatch api`` over
Vitré with its layers and a summer made from them (tests/support/layers_town.py): the canopy effect is read out,
the greening priorities are listed, and the layer switcher offers the priorities, heat × biodiversity, the
sensors' context and the town's own layers. Screenshot in ``test-artifacts/dashboard/``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from heatwatch.core.registry import Registry
from heatwatch.core.settings import CoreSettings
from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import free_port
from support.browser import MARKS, TILE_HOST, launch

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"

pytestmark = MARKS


@pytest.fixture(scope="module")
def api_url(mosquitto, influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from support.insights_data import load_registry, write_agg
    from support.layers_town import import_layers, layered_season

    tmp = tmp_path_factory.mktemp("drivers_browser")
    db = f"drivers_{int(time.time())}"
    load_registry(tmp / "var" / "registry.sqlite")
    with Registry(tmp / "var" / "registry.sqlite") as reg:
        sensors = reg.list(town="vitre")
    town = CoreSettings.load().towns["vitre"]
    store = import_layers(tmp / "var" / "layers", town, sensors)
    write_agg(influxd.url, db, layered_season(store, town, sensors).lines)
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


def test_drivers_card_reads_effects_priorities_and_switches_layers(api_url):
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            pg = browser.new_page(viewport={"width": 1366, "height": 1600}, locale="fr-FR")
            pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            pg.route(f"https://{TILE_HOST}/**", lambda route: route.abort("internetdisconnected"))
            pg.goto(f"{api_url}/#vitre")
            pg.wait_for_selector("body[data-ready='vitre']", timeout=20_000)
            pg.wait_for_selector("#drivers-season", timeout=10_000)
            pg.fill("#drivers-season", "2025")
            pg.dispatch_event("#drivers-season", "change")
            pg.wait_for_function("document.getElementById('drivers-effects').textContent.includes('canopée')",
                                 timeout=60_000)
            pg.wait_for_selector("#drivers-priorities tbody tr", timeout=30_000)
            pg.wait_for_selector("#drivers .leaflet-control-layers", timeout=30_000)
            effects = pg.text_content("#drivers-effects") or ""
            rows = pg.locator("#drivers-priorities tbody tr").count()
            labels = pg.locator("#drivers .leaflet-control-layers-overlays label").all_text_contents()
            # Switch the heritage perimeter on: its GeoJSON is fetched and drawn.
            spr = pg.locator("#drivers .leaflet-control-layers-overlays label", has_text="spr")
            spr.locator("input").check()
            pg.wait_for_function("document.querySelectorAll('#drivers .leaflet-overlay-pane path').length > 60",
                                 timeout=15_000)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.locator("#drivers").screenshot(path=str(ARTIFACTS / "drivers-vitre.png"))
        finally:
            browser.close()
    assert "par +10 points de canopée à 100 m" in effects and "13 sites" in effects, effects
    assert rows == 8
    text = " | ".join(labels)
    for wanted in ("Priorités de verdissement", "Chaleur × biodiversité", "Contexte des capteurs", "spr",
                   "espaces_verts"):
        assert wanted in text, text
    assert problems == []
