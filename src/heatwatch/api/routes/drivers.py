"""What drives a town's heat islands, what greening would change, and where it pays most
(docs/science/drivers.md): the drivers model, scenarios, heat × biodiversity and greening priorities."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..cache import Cached, build_entry, conditional
from ..deps import SENSOR_PATTERN, TOWN_PATTERN, CtxDep, SepParam, known_town
from ..errors import ApiError, bad_request, not_found
from ..formats import JSONBytes, choose_format, dumps, envelope
from ..insights import queries
from ..insights.drivers import MIN_SITES, PREDICTORS
from ..insights.rankings import season_window
from ..insights.scenarios import CAVEAT
from ..insights.townmodel import TownSeason, town_season

router = APIRouter(prefix="/v1", tags=["drivers and priorities"])
TownPath = Annotated[str, Path(pattern=TOWN_PATTERN, max_length=64, examples=["vitre"])]
SeasonParam = Annotated[int, Query(ge=2000, le=2100, description="year of the summer season (1 June – 15 September)")]


async def load_season(ctx: Any, town: Any, season: int) -> TownSeason:
    return await town_season(ctx.store.client, town, ctx.registry, ctx.settings.layers_dir, season)


def season_key(ctx: Any, ts_fp: str) -> str:
    return f"{ctx.cache_key}|{ts_fp}"


async def cached(ctx: Any, town: Any, season: int, render: Any, max_age: int = 300) -> Response:
    """Build once per (request, layers/sensors fingerprint) for the api's aggregate cache lifetime."""
    from heatwatch.core.layers import LayerStore

    fp = LayerStore(ctx.settings.layers_dir, town.id).fingerprint()

    async def make() -> Cached:
        async with ctx.slots.hold(ctx.client):  # the season's model: one of the shared expensive slots
            ts = await load_season(ctx, town, season)
            last = await queries.last_update_ms(ctx.store.client, town.id)
            return await render(ts, last)

    entry = await ctx.cache.get_or_build(season_key(ctx, fp), ctx.config.cache_ttl_agg_s, make)
    return conditional(ctx.request, entry, max_age)


@router.get(
    "/towns/{town}/uhi-drivers",
    summary="What drives each site's heat: effects of tree canopy and sealed surfaces, with intervals",
    description=(
        "A Bayesian linear model per town and season of each site's **nocturnal UHI** (`uhi_night_max_mean`, the "
        "ranking's key over its common days) and of its **hot hours** (hours ≥ 30 °C over the same days) against "
        "the site context within 100 m: tree canopy (vegetation when the town has no tree layer) and "
        "imperviousness — predictors chosen up front. Effects are read as \"−0.4 °C [−0.7, −0.1] per +10 points "
        "of tree canopy within 100 m\" (posterior mean, 95 % credible interval), with the number of sites, the "
        "leave-one-site-out cross-validated error (`cv_rmse`) against the town mean's (`cv_rmse_null`), and per "
        f"site observed, fitted and left-out predictions. Below {MIN_SITES} sites with both a season value and "
        "the layers, the model does not speak (`status` `insufficient_data` and the reason). Associations "
        "between sites, not measured effects of works: see /v1/interventions for those."),
)
async def uhi_drivers(ctx: CtxDep, town: TownPath, season: SeasonParam) -> Response:
    t = known_town(ctx.settings, town)
    first, last = season_window(season)

    async def render(ts: TownSeason, last_ms: int | None) -> Cached:
        meta = ctx.meta(last_ms, town=t.id, season={"year": season, "window": [first.isoformat(), last.isoformat()],
                                                   "compared_on": ts.summary.get("compared_on")},
                        layers=ts.context.get("layers", []), context_fingerprint=ts.context.get("fingerprint"),
                        predictors=[{"column": p.column, "label": p.label, "step": p.step, "unit": p.unit,
                                     "fallback": p.fallback} for p in PREDICTORS],
                        min_sites=MIN_SITES,
                        caveat=("model estimates of how heat varies with the surroundings between sites, not the "
                                "measured effect of works"))
        return build_entry(dumps(envelope(meta, ts.describe_models())), "application/json")

    return await cached(ctx, t, season, render)


# Heat × biodiversity and greening priorities ------------------------------------------------------------

CellParam = Annotated[int, Query(ge=100, le=200, multiple_of=50, description="cell size, m (100, 150 or 200)")]
GridFormat = Annotated[str | None, Query(alias="format", pattern=r"^(json|csv|geojson)$",
                                         description="json, csv or geojson; else from Accept")]

GRID_COLUMNS = ["cell", "longitude", "latitude", "uhi_model", "uhi_model_lo", "uhi_model_hi", "heat", "canopy",
                "impervious", "canopy_100", "residents", "occurrences", "species", "obs_days", "richness_index",
                "class"]
PRIORITY_COLUMNS = ["rank", "cell", "longitude", "latitude", "score", "uhi_model", "impervious", "canopy",
                    "residents", "class", "canopy_added", "cooling_c", "cooling_lo", "cooling_hi"]


def _square(lon: float, lat: float, x: float, y: float, cell_m: float) -> dict[str, Any]:
    from heatwatch.core.layers.extent import to_wgs84

    h = cell_m / 2
    xs, ys = [x - h, x + h, x + h, x - h, x - h], [y - h, y - h, y + h, y + h, y - h]
    lo, la = to_wgs84(xs, ys)
    return {"type": "Polygon", "coordinates": [[[round(a, 7), round(b, 7)] for a, b in zip(lo, la, strict=True)]]}


def _grid_answer(ctx: Any, rows: list[dict[str, Any]], columns: list[str], meta: dict[str, Any], fmt: str, sep: str,
                 cell_m: int, name: str) -> Cached:
    from ..formats import feature_collection
    from ..respond import csv_bytes

    if fmt == "csv":
        return build_entry(csv_bytes(columns, rows, sep), "text/csv; charset=utf-8; header=present",
                           {"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if fmt == "geojson":
        feats = [{"type": "Feature", "id": r["cell"],
                  "geometry": _square(r["longitude"], r["latitude"], r["x_l93"], r["y_l93"], cell_m),
                  "properties": {c: r.get(c) for c in columns if c not in ("longitude", "latitude")}} for r in rows]
        return build_entry(dumps(feature_collection(feats, meta)), "application/geo+json")
    return build_entry(dumps(envelope(meta, [{c: r.get(c) for c in columns} for r in rows])), "application/json")


def _cells(ts: TownSeason, ctx: Any, cell_m: int) -> Any:
    from heatwatch.core.layers import LayerStore
    from heatwatch.core.layers.context import cover_for

    from ..insights.biodiversity import build_cells

    model = ts.model("uhi_night")
    store = LayerStore(ctx.settings.layers_dir, ts.town.id)
    cover = cover_for(store, ts.town, ts.sensors)
    return model, build_cells(model, store, cover, ts.sensors, float(cell_m))


def _refusal(ts: TownSeason) -> ApiError:
    return ApiError(409, "insufficient_data", "the drivers model of this season does not speak, so no cell can be "
                                              f"given a modelled heat: {ts.refused.get('uhi_night')}")


@router.get(
    "/towns/{town}/heat-biodiversity",
    summary="Heat × biodiversity per street block: modelled nocturnal UHI, canopy, effort-corrected richness",
    responses={200: {"content": {"text/csv": {}, "application/geo+json": {}}},
               409: {"description": "no drivers model this season (too few sites, no layers)"}},
    description=(
        "Cells of `cell_m` (100–200 m) within 800 m of a sensor. Per cell: `uhi_model`, the season's nocturnal UHI "
        "the drivers model predicts from the cell's surroundings, with its 95 % interval; the cell's own `canopy` "
        "and `impervious` shares; `residents` from a population layer; from the biodiversity layer, "
        "`occurrences`, `species` (observed richness) and `obs_days` (distinct observation dates: the effort), and "
        "`richness_index`, the observed richness over the richness expected for that effort from the town's "
        "species–effort curve (cells with fewer than 3 observation days get none). `class`: heat tercile × "
        "richness (above or below the median index) — `cool refuge`, `hot and poor`, `hot but rich`, `cool but "
        "poor`, `intermediate`, or `too few observations`. `meta.summary` gives the Spearman correlations of "
        "richness with modelled UHI and with canopy. Observed richness reflects where people look as much as "
        "where species live: read it with the effort."),
)
async def heat_biodiversity(ctx: CtxDep, town: TownPath, season: SeasonParam, cell_m: CellParam = 200,
                            format: GridFormat = None, sep: SepParam = ",") -> Response:
    t = known_town(ctx.settings, town)
    fmt = choose_format(ctx.request, format, ["json", "csv", "geojson"])

    async def render(ts: TownSeason, last_ms: int | None) -> Cached:
        if "uhi_night" not in ts.models:
            raise _refusal(ts)
        _, grid = await asyncio.to_thread(_cells, ts, ctx, cell_m)
        meta = ctx.meta(last_ms, town=t.id, season=season, summary=grid.summary, unit="°C",
                        caveat="modelled heat (drivers model), observed richness: an association, not a cause")
        return _grid_answer(ctx, grid.cells, GRID_COLUMNS, meta, fmt, sep, cell_m,
                            f"heatwatch-heat-biodiversity-{t.id}-{season}")

    return await cached(ctx, t, season, render)


@router.get(
    "/towns/{town}/greening-priorities",
    summary="Where greening pays most: hot, sealed, inhabited street blocks first",
    responses={200: {"content": {"text/csv": {}, "application/geo+json": {}}},
               409: {"description": "no drivers model this season"}},
    description=(
        "The cells of /heat-biodiversity ranked by `score`, the mean of their percentile ranks on modelled "
        "nocturnal UHI, sealed share and residents (when a population layer, e.g. INSEE's 200 m Filosofi squares, is "
        "imported): hot, sealed and inhabited first. Each cell carries the cooling the drivers model expects from "
        "`canopy` more points of tree canopy around it (capped by the room left: `canopy_added`), with its 95 % "
        "interval — a model estimate, not a measurement."),
)
async def greening_priorities(ctx: CtxDep, town: TownPath, season: SeasonParam, cell_m: CellParam = 200,
                              canopy: Annotated[float, Query(gt=0, le=100, description="points of canopy added "
                                                                                         "around a cell")] = 20.0,
                              limit: Annotated[int, Query(ge=1, le=5000)] = 50,
                              format: GridFormat = None, sep: SepParam = ",") -> Response:
    t = known_town(ctx.settings, town)
    fmt = choose_format(ctx.request, format, ["json", "csv", "geojson"])

    async def render(ts: TownSeason, last_ms: int | None) -> Cached:
        from ..insights.biodiversity import priorities

        if "uhi_night" not in ts.models:
            raise _refusal(ts)
        model, grid = await asyncio.to_thread(_cells, ts, ctx, cell_m)
        rows = (await asyncio.to_thread(priorities, grid, model, canopy))[:limit]
        with_people = any(r["residents"] is not None for r in grid.cells)
        meta = ctx.meta(last_ms, town=t.id, season=season, returned=len(rows), cells=len(grid.cells),
                        score=("mean of percentile ranks of modelled nocturnal UHI, sealed share"
                               + (" and residents" if with_people else " (no population layer: residents not used)")),
                        scenario={"canopy_points": canopy, "radius_m": 100}, caveat=CAVEAT)
        return _grid_answer(ctx, rows, PRIORITY_COLUMNS, meta, fmt, sep, cell_m,
                            f"heatwatch-greening-priorities-{t.id}-{season}")

    return await cached(ctx, t, season, render)


# Scenarios ---------------------------------------------------------------------------------------------


class PolygonScenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    season: int = Field(ge=2000, le=2100)
    polygon: dict[str, Any] = Field(description="a GeoJSON Polygon or MultiPolygon geometry, WGS84 (RFC 7946)")
    canopy: float = Field(default=0.0, ge=-100, le=100, description="points of tree canopy added inside the polygon")
    sealed: float = Field(default=0.0, ge=-100, le=100, description="points of sealed surface added (negative: "
                                                                       "de-sealing) inside the polygon")


async def _measured(ctx: Any, town: Any, item: Any) -> dict[str, Any]:
    """The intervention's measured nocturnal effect, as GET /v1/interventions/{id}/effect gives it by default."""
    from heatwatch.core.interventions import InterventionStore

    from ..insights.effect import EffectWindow, evaluate, match_controls

    sensors = list(ctx.registry.list(town=town.id, include_retired=True)) if ctx.registry is not None else []
    refs = list(dict.fromkeys([*town.reference_sensors, *(s.id for s in sensors if s.is_reference)]))
    window = EffectWindow()
    if item.controls is not None:
        controls, source = list(item.controls), "recorded with the intervention"
    else:
        start, end = item.works
        b0, _, _, a1 = window.spans(start, end or start)
        others = [o for o in InterventionStore.for_data_dir(ctx.settings.data_dir).list(town.id) if o.id != item.id]
        controls, source = match_controls(town, sensors, item.sensors, others, b0, a1)
    from heatwatch.core.maintenance import breaks_or_empty

    doc = await evaluate(ctx.store.client, town, item, controls, window, controls_source=source, references=refs,
                         breaks=breaks_or_empty(ctx.settings.data_dir, town.id))
    night = doc.get("outcomes", {}).get("uhi_night", {})
    return {"status": night.get("status", doc.get("status")), "estimate_c": night.get("estimate"),
            "ci": [night.get("ci_low"), night.get("ci_high")], "conclusion": night.get("conclusion"),
            "reasons": night.get("reasons", doc.get("reasons")), "href": f"/v1/interventions/{item.id}/effect"}


def scenario_meta(ctx: Any, t: Any, season: int, ts: TownSeason) -> dict[str, Any]:
    model = ts.model("uhi_night")
    return ctx.meta(None, town=t.id, season=season, label="model estimate", caveat=CAVEAT,
                    model={"n_sites": model.n, "effects": model.effects(), **model.cv()})


@router.get(
    "/towns/{town}/scenario",
    summary="Predicted change in nocturnal UHI for more canopy / less sealing around a site (model estimate)",
    responses={404: {"description": "unknown town, site or intervention"},
               409: {"description": "no drivers model this season"}},
    description=(
        "`site` (a sensor) with `canopy` (+X points of tree canopy within 100 m) and/or `sealed` (−Y points of sealed "
        "surface), or `intervention` (a recorded intervention with `canopy_points`/`sealed_points`: its treated "
        "sensors and those changes). The drivers model of `season` gives the change in the season's nocturnal UHI "
        "with its 95 % interval — a **model estimate**, labelled so. With `intervention`, its **measured** effect "
        "(weather-adjusted difference-in-differences, as /v1/interventions/{id}/effect) is set beside it. A polygon "
        "scenario is POSTed to the same path."),
)
async def scenario(ctx: CtxDep, town: TownPath, season: SeasonParam,
                   site: Annotated[str | None, Query(pattern=SENSOR_PATTERN, max_length=64)] = None,
                   canopy: Annotated[float, Query(ge=-100, le=100, description="points of tree canopy within 100 m")]
                   = 0.0,
                   sealed: Annotated[float, Query(ge=-100, le=100, description="points of sealed surface within "
                                                                               "100 m (negative: de-sealing)")] = 0.0,
                   intervention: Annotated[int | None, Query(ge=1)] = None) -> Response:
    from heatwatch.core.interventions import InterventionStore

    from ..insights.scenarios import site_scenario

    t = known_town(ctx.settings, town)
    if (site is None) == (intervention is None):
        raise bad_request("give either site (with canopy and/or sealed) or intervention", "invalid_parameter")
    item = None
    if intervention is not None:
        item = await asyncio.to_thread(InterventionStore.for_data_dir(ctx.settings.data_dir).get, intervention)
        if item is None or item.town != t.id:
            raise not_found(f"no intervention {intervention} in {t.id}")
        if item.canopy_points is None and item.sealed_points is None:
            raise bad_request(f"intervention {intervention} records neither canopy_points nor sealed_points: record "
                              "what the works changed (PATCH /v1/interventions/{id}) to get a model estimate",
                              "invalid_parameter")
        sites, canopy, sealed = list(item.sensors), item.canopy_points or 0.0, item.sealed_points or 0.0
    else:
        assert site is not None
        sites = [site]
        if not canopy and not sealed:
            raise bad_request("give canopy and/or sealed (points within 100 m), e.g. canopy=20", "invalid_parameter")

    async def render(ts: TownSeason, last_ms: int | None) -> Cached:
        if "uhi_night" not in ts.models:
            raise _refusal(ts)
        model = ts.model("uhi_night")
        contexts = ts.contexts
        unknown = [s for s in sites if s not in contexts]
        if unknown:
            raise not_found(f"no placed sensor {', '.join(unknown)} in {t.id}")
        out: dict[str, Any] = {"scenario": {"sites": sites, "canopy_points": canopy, "sealed_points": sealed,
                                            "radius_m": 100},
                               "estimate": {s: site_scenario(model, contexts[s], canopy, sealed) for s in sites}}
        if item is not None:
            out["intervention"] = item.model_dump(mode="json")
            out["measured"] = await _measured(ctx, t, item)
        return build_entry(dumps(envelope(scenario_meta(ctx, t, season, ts), out)), "application/json")

    return await cached(ctx, t, season, render, max_age=60)


@router.post(
    "/towns/{town}/scenario",
    summary="Predicted change in nocturnal UHI for greening or de-sealing inside a polygon (model estimate)",
    responses={400: {"description": "bad polygon"}, 409: {"description": "no drivers model this season"}},
)
async def polygon_scenario_route(ctx: CtxDep, town: TownPath, body: Annotated[PolygonScenario, Body()]) -> Response:
    import shapely
    from shapely.geometry import shape

    from heatwatch.core.layers import LayerStore
    from heatwatch.core.layers.context import cover_for
    from heatwatch.core.layers.extent import transformer

    from ..insights.scenarios import polygon_scenario

    t = known_town(ctx.settings, town)
    if not body.canopy and not body.sealed:
        raise bad_request("give canopy and/or sealed (points inside the polygon)", "invalid_parameter")
    try:
        geom = shape(body.polygon)
    except Exception as exc:  # shapely raises several types for a malformed GeoJSON geometry
        raise bad_request(f"polygon: not a GeoJSON geometry ({exc})", "invalid_polygon") from exc
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        raise bad_request("polygon: a GeoJSON Polygon or MultiPolygon in WGS84", "invalid_polygon")
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    l93 = shapely.transform(geom, lambda xy: np.column_stack(transformer("EPSG:4326", "EPSG:2154").transform(
        xy[:, 0], xy[:, 1])))
    ts = await load_season(ctx, t, body.season)
    if "uhi_night" not in ts.models:
        raise _refusal(ts)
    model = ts.model("uhi_night")

    def run() -> dict[str, Any]:
        from heatwatch.core.layers.extent import to_l93
        from heatwatch.core.privacy import public_sensors

        store = LayerStore(ctx.settings.layers_dir, t.id)
        cover = cover_for(store, t, ts.sensors)
        ctxs = ts.contexts
        # Which sites a polygon touches is answered at their public position: a private site's exact one could
        # be found by drawing smaller and smaller polygons (core/privacy.py).
        placed = [s for s in public_sensors(ts.sensors) if s.id in ctxs and s.latitude is not None]
        xs, ys = to_l93([s.longitude for s in placed], [s.latitude for s in placed])
        return polygon_scenario(model, cover, l93, body.canopy, body.sealed, ctxs,
                                {s.id: (x, y) for s, x, y in zip(placed, xs, ys, strict=True)})

    try:
        out = await asyncio.to_thread(run)
    except ValueError as exc:
        raise bad_request(str(exc), "invalid_polygon") from exc
    out = {"scenario": {"canopy_points": body.canopy, "sealed_points": body.sealed, "radius_m": 100}, **out}
    return JSONBytes(envelope(scenario_meta(ctx, t, body.season, ts), out), headers={"Cache-Control": "no-store"})
