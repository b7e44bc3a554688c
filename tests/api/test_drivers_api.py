"""The drivers model, maps, scenarios and heat × biodiversity through the api, on Vitré with its committed
layers and a summer made from them with a known canopy effect (tests/support/layers_town.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from support.apps import NO_LIMITS, with_api
from support.insights_data import load_registry, write_agg
from support.layers_town import CANOPY_PER_10, SEASON, import_layers, layered_season


@pytest.fixture(scope="module")
def town_app(influxd, tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("drivers")
    settings = Settings.load(influx_url=influxd.url, influx_db="m_drivers", data_dir=folder / "var")
    load_registry(settings.registry_path)
    with Registry(settings.registry_path) as reg:
        sensors = reg.list(town="vitre")
    town = settings.towns["vitre"]
    store = import_layers(settings.layers_dir, town, sensors)
    season = layered_season(store, town, sensors)
    write_agg(influxd.url, settings.influx_db, season.lines)
    with TestClient(create_app(with_api(settings, **NO_LIMITS))) as c:
        yield c, season


def test_the_model_recovers_the_canopy_effect_within_its_interval(town_app) -> None:  # type: ignore[no-untyped-def]
    client, _ = town_app
    r = client.get(f"/v1/towns/vitre/uhi-drivers?season={SEASON}")
    assert r.status_code == 200, r.text
    body = r.json()
    night = body["data"]["uhi_night"]
    assert night["status"] == "ok" and night["n_sites"] == 13
    canopy = next(e for e in night["effects"] if e["predictor"] == "canopy_100")
    lo, hi = canopy["ci95"]
    assert lo <= CANOPY_PER_10 <= hi and hi < 0, canopy
    assert canopy["text"].endswith("per +10 points of tree canopy within 100 m") and "°C [" in canopy["text"]
    assert night["cv_rmse"] < night["cv_rmse_null"]
    assert {s["sensor"] for s in night["sites"]} >= {"vitre-parc-01", "vitre-centre-02"}
    assert "vitre-rural-01" not in {s["sensor"] for s in night["sites"]}  # the reference is not a site
    hot = body["data"]["hot_hours"]
    assert hot["status"] == "ok" and hot["unit"] == "h"
    assert next(e for e in hot["effects"] if e["predictor"] == "canopy_100")["effect"] < 0
    assert "not the measured effect of works" in body["meta"]["caveat"]


def test_the_model_refuses_without_layers_or_sites(town_app) -> None:  # type: ignore[no-untyped-def]
    client, _ = town_app
    so = client.get(f"/v1/towns/saint-omer/uhi-drivers?season={SEASON}").json()["data"]["uhi_night"]
    assert so["status"] == "insufficient_data" and "heatwatch layers import" in so["reason"]
    assert client.get(f"/v1/towns/vitre/uhi-drivers?season={SEASON - 5}").json()["data"]["uhi_night"][
        "status"] == "insufficient_data"
    assert client.get("/v1/towns/vitre/uhi-drivers").status_code in (400, 422)
