"""Layer import, checks and storage, on the committed real-format test files (tests/data/layers/: SYNTHETIC
data in real formats, written by scripts/make_layer_testdata.py) and on deliberately bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import Transformer

from heatwatch.core.errors import LayerError
from heatwatch.core.layers import LayerKind, LayerStore, town_extent
from heatwatch.core.layers.context import site_context, suggest_lcz
from heatwatch.core.layers.io import prepare_file
from heatwatch.core.registry import example_files, sensors_from_csv
from heatwatch.core.settings import CoreSettings

DATA = Path(__file__).resolve().parent.parent / "data" / "layers"


@pytest.fixture(scope="module")
def towns():  # type: ignore[no-untyped-def]
    return CoreSettings.load().towns


@pytest.fixture(scope="module")
def sensors():  # type: ignore[no-untyped-def]
    return [s for name, text in example_files() for s in sensors_from_csv(text, name) if s.town == "vitre"]


@pytest.fixture(scope="module")
def extent(towns, sensors):  # type: ignore[no-untyped-def]
    return town_extent(towns["vitre"], sensors)


@pytest.fixture(scope="module")
def store(tmp_path_factory, extent):  # type: ignore[no-untyped-def]
    """Every committed file imported once into a module-wide store."""
    st = LayerStore(tmp_path_factory.mktemp("layers"), "vitre")
    for file, kind, kw in [("vitre_layers.gpkg", "vegetation", {"source_layer": "espaces_verts"}),
                           ("vitre_layers.gpkg", "trees", {"source_layer": "arbres"}),
                           ("bdtopo_batiment.shp", "buildings", {}), ("impermeabilite_hrl.tif", "impervious", {}),
                           ("gbif_occurrences.csv", "biodiversity", {}), ("cours_eau.geojson", "water", {}),
                           ("perimetre_spr.geojson", "perimeter", {}), ("filosofi_200m.gpkg", "population", {})]:
        st.add(prepare_file(DATA / file, LayerKind(kind), extent, **kw), source=file, licence="test")
    return st


def test_every_real_format_lands_in_lambert93_with_its_roles(store: LayerStore) -> None:
    infos = {i.name: i for i in store.list()}
    assert set(infos) == {k.value for k in LayerKind}
    assert infos["impervious"].raster and infos["impervious"].source_crs == "EPSG:3035"
    assert infos["population"].source_crs == "EPSG:3035" and infos["water"].source_crs == "EPSG:4326"
    assert pyogrio.read_info(store.path, layer="trees")["crs"] == "EPSG:2154"
    # GeoJSON in WGS84 → Lambert-93: a vertex of the perimeter lands where pyproj puts it, to the centimetre.
    src = gpd.read_file(DATA / "perimetre_spr.geojson")
    lon, lat = src.geometry.iloc[0].exterior.coords[0]
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True).transform(lon, lat)
    stored = store.read("perimeter").geometry.iloc[0]
    assert min(np.hypot(cx - x, cy - y) for cx, cy in stored.exterior.coords) < 0.01
    assert store.read("perimeter")["label"].iloc[0] == "Site patrimonial remarquable de Vitré"


def test_bd_topo_heights_and_tree_crowns_fill_gaps_and_say_so(store: LayerStore) -> None:
    b = store.get("buildings")
    assert b is not None and b.report["columns"] == {"height_m": "HAUTEUR", "floors": "NB_ETAGES"}
    assert b.report["height_from_floors"] == 20 and b.report["height_default"] == 0  # 1 in 11 has no HAUTEUR
    assert store.read("buildings")["height_m"].notna().all()
    t = store.get("trees")
    assert t is not None and t.report["columns"]["crown_m"] == "diametre_couronne"
    assert t.report["crown_from_height"] == 199  # crowns missing in 1 of 9 rows: 0.6 × height
    assert store.read("trees")["crown_m"].between(0.5, 40).all()


def test_gbif_simple_csv(store: LayerStore) -> None:
    info = store.get("biodiversity")
    assert info is not None
    assert info.report["delimiter"] == "tab" and info.report["dropped_no_species"] == 1  # genus-only record
    occ = store.read("biodiversity")
    assert len(occ) == 252 and occ["date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert "Parus major" in set(occ["species"]) and occ["basis"].eq("HUMAN_OBSERVATION").all()


def test_hrl_raster_codes_are_nodata_and_values_stay_percent(store: LayerStore) -> None:
    info = store.get("impervious")
    assert info is not None and info.report["cells_out_of_range_as_nodata"] == 16  # the 254 block
    arr, transform = store.read_raster("impervious")
    v = arr[np.isfinite(arr)]
    assert v.min() >= 0 and v.max() <= 100 and abs(transform.a - 10) < 1e-9
    # A building of the BD TOPO file is 100 % sealed in the raster that was drawn from it.
    b = store.read("buildings").geometry
    big = b.iloc[int(np.argmax(b.area))].centroid
    row, col = rasterio.transform.rowcol(transform, big.x, big.y)
    assert arr[int(row), int(col)] > 90


def test_population_squares_from_filosofi(store: LayerStore) -> None:
    pop = store.read("population")
    assert pop["population"].gt(0).all() and len(pop) == 256
    assert abs(pop.geometry.area.median() - 40_000) < 400  # 200 m squares, reprojected from EPSG:3035


def test_replace_and_remove(tmp_path: Path, extent) -> None:  # type: ignore[no-untyped-def]
    st = LayerStore(tmp_path, "vitre")
    p = prepare_file(DATA / "cours_eau.geojson", LayerKind.water, extent)
    first = st.add(p, source="a", licence="x")
    fp = st.fingerprint()
    again = st.add(p, source="b", licence="x")
    assert [i.name for i in st.list()] == ["water"] and again.source == "b" and again.imported_at >= first.imported_at
    assert st.fingerprint() != fp
    with pytest.raises(LayerError, match="is a water layer"):
        st.add(prepare_file(DATA / "perimetre_spr.geojson", LayerKind.perimeter, extent), "water", source="s",
               licence="x")
    st.remove("water")
    assert st.list() == [] and "water" not in {str(n) for n, _ in pyogrio.list_layers(st.path)}
    with pytest.raises(LayerError, match="no layer"):
        st.remove("water")


# Bad files ---------------------------------------------------------------------------------------


def test_shapefile_without_prj_needs_a_crs(tmp_path: Path, extent) -> None:  # type: ignore[no-untyped-def]
    for f in DATA.glob("bdtopo_batiment.*"):
        if f.suffix != ".prj":
            shutil.copy(f, tmp_path / f.name)
    with pytest.raises(LayerError, match=r"no coordinate reference system \(a Shapefile without its .prj\?\)"):
        prepare_file(tmp_path / "bdtopo_batiment.shp", LayerKind.buildings, extent)
    ok = prepare_file(tmp_path / "bdtopo_batiment.shp", LayerKind.buildings, extent, crs="EPSG:2154")
    assert len(ok.gdf) == 219


def test_metres_tagged_as_degrees_are_refused_with_the_likely_crs(tmp_path: Path, extent) -> None:  # type: ignore[no-untyped-def]
    g = gpd.read_file(DATA / "bdtopo_batiment.shp").set_crs("EPSG:4326", allow_override=True)
    g.to_file(tmp_path / "b.gpkg")
    with pytest.raises(LayerError, match="look like Lambert-93 metres: give --crs EPSG:2154"):
        prepare_file(tmp_path / "b.gpkg", LayerKind.buildings, extent)
    assert len(prepare_file(tmp_path / "b.gpkg", LayerKind.buildings, extent, crs="EPSG:2154").gdf) == 219


def test_another_towns_file_and_swapped_coordinates(tmp_path: Path, towns, extent) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LayerError, match="outside the town"):
        prepare_file(DATA / "cours_eau.geojson", LayerKind.water, town_extent(towns["saint-omer"]))
    (tmp_path / "swapped.csv").write_text("species;date;latitude;longitude\nParus major;2024-05-01;-1.2089;48.1236\n",
                                          encoding="utf-8")
    with pytest.raises(LayerError, match="latitude and longitude swapped"):
        prepare_file(tmp_path / "swapped.csv", LayerKind.biodiversity, extent)


def test_empty_unreadable_and_wrong_geometry(tmp_path: Path, extent) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty.geojson").write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    with pytest.raises(LayerError, match="empty layer"):
        prepare_file(tmp_path / "empty.geojson", LayerKind.vegetation, extent)
    (tmp_path / "junk.gpkg").write_bytes(b"not a geopackage at all")
    with pytest.raises(LayerError, match="cannot read"):
        prepare_file(tmp_path / "junk.gpkg", LayerKind.vegetation, extent)
    with pytest.raises(LayerError, match="takes polygon geometries"):
        prepare_file(DATA / "vitre_layers.gpkg", LayerKind.buildings, extent, source_layer="arbres")
    with pytest.raises(LayerError, match="holds 2 layers"):
        prepare_file(DATA / "vitre_layers.gpkg", LayerKind.trees, extent)
    with pytest.raises(LayerError, match="no such column"):
        prepare_file(DATA / "bdtopo_batiment.shp", LayerKind.buildings, extent, fields={"height_m": "H_MOY"})
    with pytest.raises(LayerError, match="no column for population"):
        prepare_file(DATA / "cours_eau.geojson", LayerKind.population, extent)
    with pytest.raises(LayerError, match="is a raster"):
        prepare_file(DATA / "cours_eau.geojson", LayerKind.impervious, extent)


def test_invalid_polygons_are_repaired_not_lost(tmp_path: Path, extent) -> None:  # type: ignore[no-untyped-def]
    p = prepare_file(DATA / "vitre_layers.gpkg", LayerKind.vegetation, extent, source_layer="espaces_verts")
    assert p.report["repaired"] == 1 and p.report["kept"] == 17  # the bow-tie square
    assert p.gdf.geometry.is_valid.all() and (p.gdf.geometry.area > 0).all()


def test_raster_without_crs(tmp_path: Path, extent) -> None:  # type: ignore[no-untyped-def]
    with rasterio.open(DATA / "impermeabilite_hrl.tif") as src:
        profile, data = src.profile, src.read(1)
    profile.pop("crs")
    with rasterio.open(tmp_path / "nocrs.tif", "w", **profile) as dst:
        dst.write(data, 1)
    with pytest.raises(LayerError, match="Copernicus HRL rasters are EPSG:3035"):
        prepare_file(tmp_path / "nocrs.tif", LayerKind.impervious, extent)
    assert prepare_file(tmp_path / "nocrs.tif", LayerKind.impervious, extent, crs="EPSG:3035").count > 1000


# Site context ------------------------------------------------------------------------------------


def test_site_context_reads_the_layers(store: LayerStore, towns, sensors) -> None:  # type: ignore[no-untyped-def]
    ctx = {r["sensor"]: r for r in site_context(store, towns["vitre"], sensors)["sensors"]}
    park, street = ctx["vitre-parc-01"], ctx["vitre-centre-02"]
    assert park["canopy_100"] > 40 > 15 > street["canopy_100"]
    assert park["vegetation_100"] >= park["canopy_100"] and park["park_distance_m"] == 0
    assert street["impervious_100"] > 75 > 15 > park["impervious_100"]
    assert street["building_100"] > 10 and 8 < street["building_height_100"] < 17  # the file's 9–16 m blocks
    assert ctx["vitre-vilaine-01"]["water_distance_m"] < 60 < ctx["vitre-za-01"]["water_distance_m"]
    assert ctx["vitre-centre-04"]["in_perimeter"] == "Site patrimonial remarquable de Vitré"
    assert ctx["vitre-za-01"]["in_perimeter"] is None
    assert all(r["lcz_suggested"] is None for r in ctx.values())  # the registry has an LCZ for each: no overriding
    json.dumps(list(ctx.values()), allow_nan=False)


def test_site_context_follows_layers_and_registry(tmp_path: Path, towns, sensors, extent) -> None:  # type: ignore[no-untyped-def]
    st = LayerStore(tmp_path, "vitre")
    st.add(prepare_file(DATA / "bdtopo_batiment.shp", LayerKind.buildings, extent), source="s", licence="x")
    first = site_context(st, towns["vitre"], sensors)
    assert first["sensors"][0]["canopy_100"] is None  # no tree layer yet
    st.add(prepare_file(DATA / "vitre_layers.gpkg", LayerKind.trees, extent, source_layer="arbres"), source="s",
           licence="x")
    second = site_context(st, towns["vitre"], sensors)
    assert second["fingerprint"] != first["fingerprint"] and second["sensors"][0]["canopy_100"] is not None
    # A sensor moved into the park, with no LCZ: its context follows and an LCZ is suggested.
    moved = [s.model_copy(update={"latitude": 48.11950, "longitude": -1.20120})
             if s.id == "vitre-centre-02" else s.model_copy(update={"lcz": None}) if s.id == "vitre-centre-03" else s
             for s in sensors]
    third = {r["sensor"]: r for r in site_context(st, towns["vitre"], moved)["sensors"]}
    assert third["vitre-centre-02"]["canopy_100"] > 40 > second["sensors"][1]["canopy_100"]
    # Where the registry has no LCZ the layers suggest one: 9–16 m blocks on 10–40 % of the ground.
    assert third["vitre-centre-03"]["lcz_suggested"] == "LCZ 5" and "BSF" in third["vitre-centre-03"]["lcz_rule"]
    assert site_context(st, towns["vitre"], moved)["fingerprint"] == site_context(st, towns["vitre"], moved)[
        "fingerprint"]


@pytest.mark.parametrize(("ctx", "footprint", "lcz"), [
    ({"building_250": 50, "impervious_250": 90, "building_height_250": 14}, 200, "LCZ 2"),
    ({"building_250": 45, "impervious_250": 85, "building_height_250": 7}, 120, "LCZ 3"),
    ({"building_250": 25, "impervious_250": 50, "building_height_250": 6}, 150, "LCZ 6"),
    ({"building_250": 30, "impervious_250": 80, "building_height_250": 8}, 2500, "LCZ 8"),
    ({"building_250": 2, "impervious_250": 10, "canopy_250": 70, "vegetation_250": 90}, None, "LCZ A"),
    ({"building_250": 1, "impervious_250": 5, "canopy_250": 5, "vegetation_250": 80}, None, "LCZ D"),
    ({"building_250": 0, "water_share_250": 70}, None, "LCZ G"),
    ({"impervious_250": 50}, None, None),
])
def test_lcz_rules(ctx, footprint, lcz) -> None:  # type: ignore[no-untyped-def]
    assert suggest_lcz(ctx, footprint)[0] == lcz


def test_shapes_stay_valid_after_storage(store: LayerStore) -> None:
    veg = store.read("vegetation")
    assert shapely.is_valid(veg.geometry.values).all()


def test_large_files_are_read_through_the_towns_extent(monkeypatch, tmp_path: Path, towns, extent) -> None:  # type: ignore[no-untyped-def]
    """A département's BD TOPO or France's Filosofi squares: only the town's features are loaded."""
    from heatwatch.core.layers import io

    monkeypatch.setattr(io, "FILTER_ABOVE", 10)
    p = prepare_file(DATA / "bdtopo_batiment.shp", LayerKind.buildings, extent)
    assert len(p.gdf) == 219
    with pytest.raises(LayerError, match="none of its 219 features lies in the town's extent"):
        prepare_file(DATA / "bdtopo_batiment.shp", LayerKind.buildings, town_extent(towns["saint-omer"]))
    # A raster far wider than the town (30 km, as a Copernicus tile is 100 km): its window is read.
    big = np.full((3000, 3000), 37, dtype="uint8")
    big[:, :100] = 255
    t = rasterio.transform.from_origin(3_475_000, 2_857_000, 10, 10)  # EPSG:3035, Vitré inside
    with rasterio.open(tmp_path / "tile.tif", "w", driver="GTiff", width=3000, height=3000, count=1, dtype="uint8",
                       crs="EPSG:3035", transform=t, nodata=255, compress="deflate") as dst:
        dst.write(big, 1)
    r = prepare_file(tmp_path / "tile.tif", LayerKind.impervious, extent)
    v = r.raster[np.isfinite(r.raster)]
    assert v.size > 0.9 * r.raster.size and np.allclose(v, 37)
