"""The drivers model, maps, scenarios and heat × biodiversity through the api, on Vitré with its committed
layers and a summer made from them with a known canopy effect (tests/support/layers_town.py)."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from support.apps import NO_LIMITS, with_api
from support.insights_data import load_registry, write_agg
from support.layers_town import CANOPY_PER_10, SEASON, import_layers, layered_season, local_midnight_ms


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
    with Registry(settings.registry_path) as reg:
        so = [s for s in reg.list(town="saint-omer") if s.placed and not s.is_reference]
    # Saint-Omer: one night of data and no layers.
    so_lines = [f"daily,town=saint-omer,sensor={s.id} uhi_night_max={1.0 + i / 10},qc=0i "
                f"{local_midnight_ms(date(2025, 6, 2))}" for i, s in enumerate(so)]
    write_agg(influxd.url, settings.influx_db, season.lines + so_lines)
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


def test_period_map_by_regression_kriging_with_errors(town_app) -> None:  # type: ignore[no-untyped-def]
    client, _season = town_app
    r = client.get("/v1/towns/vitre/uhi-map?kind=night&from=2025-06-01&to=2025-07-10&method=auto")
    assert r.status_code == 200, r.text
    doc = r.json()
    g = doc["meta"]["grid"]
    cv = g["cross_validation"]
    assert cv["status"] == "ok" and cv["sensors"] >= 8
    # The law the summer was made from is in the layers: regression-kriging beats distance alone.
    assert g["method"] == "regression-kriging", g["method_reason"]
    assert cv["rmse_regression_kriging"] < cv["rmse_idw"]
    assert all(f["properties"]["se"] is None or f["properties"]["se"] >= 0 for f in doc["features"])
    assert any(f["properties"]["se"] for f in doc["features"])
    # Cells inside the park are cooler than cells in the dense centre, even between sensors.
    vals = [f["properties"]["uhi"] for f in doc["features"]]
    assert max(vals) - min(vals) > 1.0
    forced = client.get("/v1/towns/vitre/uhi-map?kind=night&from=2025-06-01&to=2025-07-10&method=idw").json()
    assert forced["meta"]["grid"]["method"] == "inverse distance weighting"
    assert forced["meta"]["grid"]["method_reason"] == "asked for (method=idw)"
    assert "se" not in forced["features"][0]["properties"]
    png = client.get("/v1/towns/vitre/uhi-map?kind=night&from=2025-06-01&to=2025-07-10&format=png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


def test_map_without_layers_falls_back_to_idw_and_says_so(town_app) -> None:  # type: ignore[no-untyped-def]
    client, _ = town_app
    r = client.get("/v1/towns/saint-omer/uhi-map?kind=night&date=2025-06-01")
    assert r.status_code == 200, r.text
    g = r.json()["meta"]["grid"]
    assert g["method"] == "inverse distance weighting" and "no land-cover layer" in g["method_reason"]
