"""A town's geographic layers and its sensors' site context (docs/science/drivers.md).

Layers are imported with ``heatwatch layers import`` into the town's GeoPackage; here they are listed with
their source and licence, and served as GeoJSON in WGS84 (vectors) or GeoTIFF in Lambert-93 (rasters). The
site context is recomputed when a layer or a sensor's position has changed since it was last computed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from heatwatch.core.errors import LayerError
from heatwatch.core.privacy import is_private, public_sensor

from ..cache import Cached, build_entry, conditional
from ..deps import TOWN_PATTERN, CtxDep, SepParam, known_town
from ..errors import ApiError, not_found
from ..formats import GeoJSONBytes, choose_format, dumps, envelope, feature_collection, point_feature
from ..respond import csv_bytes
from ..sensorinfo import list_sensors

router = APIRouter(prefix="/v1", tags=["layers and site context"])
TownPath = Annotated[str, Path(pattern=TOWN_PATTERN, max_length=64, examples=["vitre"])]
NamePath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,40}$", max_length=41, examples=["trees"])]
#: a layer larger than this is not served whole as GeoJSON (download the GeoPackage layer instead)
MAX_FEATURES = 200_000
COORD_GRID_DEG = 1e-7  # about 1 cm: what a GeoJSON of the town needs, a third of the size of full doubles


def layer_store(ctx: Any, town: str) -> Any:
    # Imported here: geopandas, GDAL and PROJ load only when a layer endpoint is first asked for.
    from heatwatch.core.layers import LayerStore

    return LayerStore(ctx.settings.layers_dir, town)


def vector_features(store: Any, name: str) -> list[dict[str, Any]]:
    import shapely

    gdf = store.read(name).to_crs("EPSG:4326")
    gdf = gdf.set_geometry(shapely.set_precision(gdf.geometry.values, COORD_GRID_DEG, mode="pointwise"))
    doc = json.loads(gdf.to_json(na="null", drop_id=True))
    for i, f in enumerate(doc["features"], 1):
        f["id"] = i
    return doc["features"]


def raster_geotiff(store: Any, name: str) -> bytes:
    from rasterio.io import MemoryFile

    arr, transform = store.read_raster(name)
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1, dtype="float32",
                      crs="EPSG:2154", transform=transform, nodata=float("nan"), compress="deflate") as dst:
            dst.write(arr, 1)
        return bytes(mem.read())


@router.get("/towns/{town}/layers", summary="A town's imported layers, with source and licence")
async def layers(ctx: CtxDep, town: TownPath) -> Response:
    t = known_town(ctx.settings, town)
    store = layer_store(ctx, t.id)
    infos = await asyncio.to_thread(store.list)
    data = [{**i.describe(), "href": f"/v1/towns/{t.id}/layers/{i.name}"} for i in infos]
    body = envelope(ctx.meta(None, town=t.id, returned=len(data),
                             note="each layer keeps its own source and licence; heatwatch's outputs are Etalab-2.0"),
                    data)
    return conditional(ctx.request, build_entry(dumps(body), "application/json"), 60)


@router.get(
    "/towns/{town}/layers/{name}",
    summary="One layer: GeoJSON (vectors, WGS84) or GeoTIFF (rasters, Lambert-93)",
    responses={200: {"content": {"application/geo+json": {}, "image/tiff": {}}}, 404: {"description": "no such layer"}},
)
async def layer(ctx: CtxDep, town: TownPath, name: NamePath,
                format: Annotated[str | None, Query(alias="format", pattern=r"^(geojson|json|geotiff)$",
                                                    description="geojson (vectors), geotiff (rasters)")] = None
                ) -> Response:
    t = known_town(ctx.settings, town)
    store = layer_store(ctx, t.id)
    info = await asyncio.to_thread(store.get, name)
    if info is None:
        raise not_found(f"no layer {name!r} for {t.id}; see /v1/towns/{t.id}/layers")
    if info.raster:
        if format not in (None, "geotiff"):
            raise ApiError(400, "unsupported_format", f"{name} is a raster layer: format=geotiff")
    elif format == "geotiff":
        raise ApiError(400, "unsupported_format", f"{name} is a vector layer: format=geojson")
    if not info.raster and info.features > MAX_FEATURES:
        raise ApiError(400, "layer_too_large", f"{name} has {info.features} features, above the {MAX_FEATURES} served "
                                               "as GeoJSON")

    async def make() -> Cached:
        if info.raster:
            body = await asyncio.to_thread(raster_geotiff, store, name)
            return build_entry(body, "image/tiff", {"Content-Disposition":
                                                    f'attachment; filename="heatwatch-{t.id}-{name}.tif"'})
        feats = await asyncio.to_thread(vector_features, store, name)
        meta = ctx.meta(None, town=t.id, layer=info.describe(), licence_of_layer=info.licence,
                        note="the layer's own licence applies to its features (meta.layer.licence)")
        return build_entry(dumps(feature_collection(feats, meta)), GeoJSONBytes.media_type)

    key = f"{ctx.cache_key}|{info.imported_at}"
    entry = await ctx.cache.get_or_build(key, ctx.config.cache_ttl_agg_s, make)
    return conditional(ctx.request, entry, 60)


def context_columns(rows: list[dict[str, Any]]) -> list[str]:
    from heatwatch.core.layers.context import RADII_M

    base = ["sensor", "name", "site_class", "latitude", "longitude", "position_blurred"]
    per_r = [f"{n}_{r}" for r in RADII_M for n in ("vegetation", "canopy", "impervious", "building",
                                                    "building_volume", "building_height")]
    tail = ["water_distance_m", "park_distance_m", "in_perimeter", "lcz_registry", "lcz_suggested", "lcz_layers",
            "lcz_rule"]
    return base + per_r + [c for c in tail if any(c in r for r in rows) or c != "in_perimeter"]


async def town_context(ctx: Any, town: Any) -> dict[str, Any]:
    """The town's site context as the public may see it.

    The stored context is computed at each sensor's exact position (the drivers model needs it). A private
    site's row is recomputed at the centre of its privacy-grid cell before it is published: fifteen shares of
    canopy, sealing and buildings within 50–250 m, matched against the town's own layers, would otherwise find
    the exact spot again (core/privacy.py, docs/privacy.md).
    """
    from heatwatch.core.layers.context import compute_context, cover_for, site_context

    store = layer_store(ctx, town.id)
    sensors = list_sensors(ctx.registry, town.id, include_retired=False)

    def build() -> dict[str, Any]:
        data = site_context(store, town, sensors)
        private = [public_sensor(s) for s in sensors if is_private(s)]
        if not private:
            return data
        blurred = {r["sensor"]: r for r in compute_context(cover_for(store, town, sensors), private)}
        rows = [{**blurred[r["sensor"]], "position_blurred": True} if r["sensor"] in blurred
                else {**r, "position_blurred": False} for r in data["sensors"]]
        return {**data, "sensors": rows}

    try:
        return await asyncio.to_thread(build)
    except LayerError as exc:
        raise ApiError(409, "layers_unusable", str(exc)) from exc


@router.get(
    "/towns/{town}/site-context",
    summary="What surrounds each sensor within 50, 100 and 250 m (JSON, CSV, GeoJSON)",
    responses={200: {"content": {"text/csv": {}, "application/geo+json": {}}}},
    description=(
        "Per placed sensor, in percent of the disc's area within 50, 100 and 250 m: `vegetation_<r>` (green spaces "
        "and tree crowns), `canopy_<r>` (tree crowns), `impervious_<r>` (imperviousness raster), `building_<r>` "
        "(footprints); `building_volume_<r>` (m³) and `building_height_<r>` (footprint-weighted mean, m); "
        "`water_distance_m`, `park_distance_m` (green space ≥ 0.5 ha), `in_perimeter` (the perimeter's label or "
        "null); `lcz_suggested`: a Local Climate Zone from the layers (Stewart & Oke 2012 ranges) where the "
        "registry has none, with the rule in `lcz_rule`. Null where the layer a value needs is not imported. "
        "Recomputed when a layer or a sensor's position changes (`meta.fingerprint`)."),
)
async def site_context_route(
    ctx: CtxDep, town: TownPath,
    format: Annotated[str | None, Query(alias="format", pattern=r"^(json|csv|geojson)$",
                                        description="json, csv or geojson; else from Accept")] = None,
    sep: SepParam = ",",
) -> Response:
    t = known_town(ctx.settings, town)
    fmt = choose_format(ctx.request, format, ["json", "csv", "geojson"])
    data = await town_context(ctx, t)
    rows = data["sensors"]
    meta = ctx.meta(None, town=t.id, fingerprint=data["fingerprint"], computed_at=data["computed_at"],
                    layers=data["layers"], radii_m=data["radii_m"], extent=data["extent"], returned=len(rows))
    if fmt == "csv":
        body, media = csv_bytes(context_columns(rows), rows, sep), "text/csv; charset=utf-8; header=present"
    elif fmt == "geojson":
        feats = [point_feature(r["longitude"], r["latitude"],
                               {k: v for k, v in r.items() if k not in ("latitude", "longitude")}, r["sensor"])
                 for r in rows]
        body, media = dumps(feature_collection(feats, meta)), GeoJSONBytes.media_type
    else:
        body, media = dumps(envelope(meta, rows)), "application/json"
    return conditional(ctx.request, build_entry(body, media), 60)
