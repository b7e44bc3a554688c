"""The drivers model, maps, scenarios and heat × biodiversity through the api, on Vitré with its committed
layers and a summer made from them with a known canopy effect (tests/support/layers_town.py)."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.core.interventions import InterventionIn, InterventionStore
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
    InterventionStore.for_data_dir(settings.data_dir).add(InterventionIn(
        town="vitre", site="Parvis de la gare", sensors=["vitre-gare-01"], start=date(2025, 6, 20),
        end=date(2025, 6, 22), kind="tree_planting", canopy_points=15, sealed_points=-10))
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


def test_heat_biodiversity_grid_and_classes(town_app) -> None:  # type: ignore[no-untyped-def]
    client, _ = town_app
    r = client.get(f"/v1/towns/vitre/heat-biodiversity?season={SEASON}")
    assert r.status_code == 200, r.text
    body = r.json()
    cells = body["data"]
    s = body["meta"]["summary"]
    assert s["effort_curve"]["status"] == "ok" and s["cells"] == len(cells) > 20
    classes = {c["class"] for c in cells}
    assert {"cool refuge", "hot and poor"} <= classes
    # The synthetic observations are richer in parks and along the river, where canopy is high and nights cool.
    assert s["spearman_richness_vs_uhi"]["rho"] < 0 < s["spearman_richness_vs_canopy"]["rho"]
    observed = [c for c in cells if c["obs_days"] >= 3]
    assert all(c["richness_index"] is not None for c in observed)
    assert any(c["residents"] for c in cells)  # the Filosofi squares were imported
    g = client.get(f"/v1/towns/vitre/heat-biodiversity?season={SEASON}&format=geojson&cell_m=100").json()
    assert g["features"][0]["geometry"]["type"] == "Polygon" and len(g["features"]) > len(cells)
    csv_text = client.get(f"/v1/towns/vitre/heat-biodiversity?season={SEASON}&format=csv").text
    assert csv_text.splitlines()[0].startswith("cell,longitude,latitude,uhi_model")
    assert client.get(f"/v1/towns/saint-omer/heat-biodiversity?season={SEASON}").status_code == 409


def test_greening_priorities_put_hot_sealed_inhabited_blocks_first(town_app) -> None:  # type: ignore[no-untyped-def]
    client, _ = town_app
    body = client.get(f"/v1/towns/vitre/greening-priorities?season={SEASON}&limit=200").json()
    rows = body["data"]
    assert rows[0]["rank"] == 1 and "residents" in body["meta"]["score"]
    top, bottom = rows[: len(rows) // 4], rows[-len(rows) // 4:]
    mean = lambda rs, k: sum(r[k] or 0 for r in rs) / len(rs)  # noqa: E731
    assert mean(top, "uhi_model") > mean(bottom, "uhi_model")
    assert mean(top, "impervious") > mean(bottom, "impervious")
    assert all(r["cooling_c"] < 0 and r["cooling_lo"] <= r["cooling_c"] <= r["cooling_hi"] for r in rows)
    g = client.get(f"/v1/towns/vitre/greening-priorities?season={SEASON}&format=geojson&limit=5").json()
    assert len(g["features"]) == 5 and g["meta"]["caveat"].startswith("model estimate")


def test_scenarios_site_polygon_and_intervention(town_app) -> None:  # type: ignore[no-untyped-def]
    client, _ = town_app
    r = client.get(f"/v1/towns/vitre/scenario?season={SEASON}&site=vitre-centre-02&canopy=20&sealed=-10")
    assert r.status_code == 200, r.text
    est = r.json()["data"]["estimate"]["vitre-centre-02"]
    lo, hi = est["ci95"]
    # The summer was made with −0.4 °C per 10 points of canopy and +0.15 per 10 points of sealing: −0.95 °C.
    assert lo < -0.95 < hi and hi < 0 and r.json()["meta"]["label"] == "model estimate"
    capped = client.get(f"/v1/towns/vitre/scenario?season={SEASON}&site=vitre-parc-01&canopy=90").json()
    assert capped["data"]["estimate"]["vitre-parc-01"]["notes"]
    assert client.get(f"/v1/towns/vitre/scenario?season={SEASON}&site=nope&canopy=5").status_code == 404
    assert client.get(f"/v1/towns/vitre/scenario?season={SEASON}").status_code == 400
    # A square of 120 m around the station forecourt, planted to +30 points.
    lon, lat, d = -1.20760, 48.12130, 0.0008
    poly = {"type": "Polygon", "coordinates": [[[lon - d, lat - d / 1.5], [lon + d, lat - d / 1.5],
                                                [lon + d, lat + d / 1.5], [lon - d, lat + d / 1.5],
                                                [lon - d, lat - d / 1.5]]]}
    p = client.post("/v1/towns/vitre/scenario", json={"season": SEASON, "polygon": poly, "canopy": 30})
    assert p.status_code == 200, p.text
    inside = p.json()["data"]["inside_polygon"]
    assert inside["delta_uhi_c"] < 0 and 0 < p.json()["data"]["mean_share_of_disc_in_polygon"] < 1
    assert any(s["sensor"] == "vitre-gare-01" for s in p.json()["data"]["sites"])
    bad = client.post("/v1/towns/vitre/scenario", json={"season": SEASON, "polygon": {"type": "Point",
                                                                                       "coordinates": [0, 0]},
                                                        "canopy": 5})
    assert bad.status_code == 400


def test_intervention_estimate_beside_its_measured_effect(town_app) -> None:  # type: ignore[no-untyped-def]
    client, _ = town_app
    r = client.get(f"/v1/towns/vitre/scenario?season={SEASON}&intervention=1")
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["scenario"] == {"sites": ["vitre-gare-01"], "canopy_points": 15, "sealed_points": -10, "radius_m": 100}
    assert d["estimate"]["vitre-gare-01"]["delta_uhi_c"] < 0
    assert d["measured"]["href"] == "/v1/interventions/1/effect" and d["measured"]["status"] in (
        "ok", "insufficient_data")
    assert client.get(f"/v1/towns/vitre/scenario?season={SEASON}&intervention=99").status_code == 404
