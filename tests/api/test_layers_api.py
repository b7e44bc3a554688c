"""``heatwatch layers`` on the command line, then the layers and site context through the api."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import pytest
import rasterio
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.cli import layers as layers_cli
from heatwatch.core.settings import Settings
from support.apps import NO_LIMITS, with_api
from support.insights_data import load_registry

DATA = Path(__file__).resolve().parent.parent / "data" / "layers"


def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="heatwatch layers")
    layers_cli.add_arguments(parser)
    return layers_cli.run(parser.parse_args(argv), settings)


@pytest.fixture(scope="module")
def settings(influxd, tmp_path_factory) -> Settings:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("layers_api")
    s = Settings.load(influx_url=influxd.url, influx_db="m_layers_api", data_dir=folder / "var")
    load_registry(s.registry_path)
    return s


@pytest.fixture(scope="module")
def imported(settings: Settings) -> Settings:
    for argv in (["--kind", "trees", str(DATA / "vitre_layers.gpkg"), "--source-layer", "arbres", "--name", "arbres",
                  "--source", "Ville de Vitré", "--licence", "Etalab-2.0"],
                 ["--kind", "vegetation", str(DATA / "vitre_layers.gpkg"), "--source-layer", "espaces_verts"],
                 ["--kind", "buildings", str(DATA / "bdtopo_batiment.shp")],
                 ["--kind", "impervious", str(DATA / "impermeabilite_hrl.tif")],
                 ["--kind", "perimeter", str(DATA / "perimetre_spr.geojson"), "--name", "spr"]):
        assert run(settings, "import", "--town", "vitre", *argv) == 0
    return settings


@pytest.fixture(scope="module")
def client(imported: Settings):  # type: ignore[no-untyped-def]
    with TestClient(create_app(with_api(imported, **NO_LIMITS))) as c:
        yield c


def test_cli_refuses_with_the_reason_and_lists(imported: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(imported, "import", "--town", "saint-omer", "--kind", "water", str(DATA / "cours_eau.geojson")) == 2
    assert "outside the town" in capsys.readouterr().err
    assert run(imported, "import", "--town", "vitre", "--kind", "buildings", str(DATA / "bdtopo_batiment.shp"),
               "--field", "height_m") == 2
    assert "ROLE=COLUMN" in capsys.readouterr().err
    assert run(imported, "list", "--town", "vitre") == 0
    out = capsys.readouterr().out
    assert "arbres" in out and "Ville de Vitré (Etalab-2.0)" in out and "IGN BD TOPO" in out
    assert run(imported, "context", "--town", "vitre") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["sensor"] for r in rows} >= {"vitre-parc-01", "vitre-centre-02"}


def test_layers_listed_with_source_and_licence(client: TestClient) -> None:
    r = client.get("/v1/towns/vitre/layers")
    assert r.status_code == 200
    by = {d["name"]: d for d in r.json()["data"]}
    assert set(by) == {"arbres", "vegetation", "buildings", "impervious", "spr"}
    assert by["arbres"]["licence"] == "Etalab-2.0" and by["arbres"]["source"] == "Ville de Vitré"
    assert by["impervious"]["geometry"] == "raster" and by["impervious"]["source_crs"] == "EPSG:3035"
    assert by["buildings"]["import"]["columns"]["height_m"] == "HAUTEUR"
    assert client.get("/v1/towns/saint-omer/layers").json()["data"] == []
    assert client.get("/v1/towns/nowhere/layers").status_code == 404


def test_a_vector_layer_as_wgs84_geojson(client: TestClient) -> None:
    r = client.get("/v1/towns/vitre/layers/buildings")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    assert len(doc["features"]) == 219 and doc["meta"]["layer"]["stored_crs"] == "EPSG:2154"
    lon, lat = doc["features"][0]["geometry"]["coordinates"][0][0]
    assert -1.3 < lon < -1.1 and 48.0 < lat < 48.2
    assert doc["features"][0]["properties"]["height_m"] > 0
    assert client.get("/v1/towns/vitre/layers/none").status_code == 404
    assert client.get("/v1/towns/vitre/layers/buildings?format=geotiff").status_code == 400


def test_a_raster_layer_as_geotiff(client: TestClient, tmp_path: Path) -> None:
    r = client.get("/v1/towns/vitre/layers/impervious")
    assert r.status_code == 200 and r.headers["content-type"] == "image/tiff"
    (tmp_path / "i.tif").write_bytes(r.content)
    with rasterio.open(tmp_path / "i.tif") as src:
        assert src.crs.to_epsg() == 2154 and src.res == (10.0, 10.0)
        assert 0 <= float(src.read(1, masked=True).max()) <= 100


def test_site_context_in_three_formats(client: TestClient) -> None:
    j = client.get("/v1/towns/vitre/site-context").json()
    by = {r["sensor"]: r for r in j["data"]}
    assert by["vitre-parc-01"]["canopy_100"] > by["vitre-centre-02"]["canopy_100"]
    assert by["vitre-centre-04"]["in_perimeter"] == "Site patrimonial remarquable de Vitré"
    assert by["vitre-centre-02"]["water_distance_m"] is None  # no water layer imported
    assert set(j["meta"]["layers"]) == {"arbres", "vegetation", "buildings", "impervious", "spr"}
    c = client.get("/v1/towns/vitre/site-context?format=csv&sep=;")
    assert c.status_code == 200 and "canopy_100" in c.text.splitlines()[0]
    g = client.get("/v1/towns/vitre/site-context", headers={"Accept": "application/geo+json"}).json()
    assert g["type"] == "FeatureCollection" and g["features"][0]["geometry"]["type"] == "Point"
    # Saint-Omer has no layer: every share is null, positions still there.
    so = client.get("/v1/towns/saint-omer/site-context").json()["data"]
    assert so and all(r["canopy_100"] is None for r in so)
