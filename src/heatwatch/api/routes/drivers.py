"""What drives a town's heat islands, what greening would change, and where it pays most
(docs/science/drivers.md): the drivers model, scenarios, heat × biodiversity and greening priorities."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from ..cache import Cached, build_entry, conditional
from ..deps import TOWN_PATTERN, CtxDep, known_town
from ..formats import dumps, envelope
from ..insights import queries
from ..insights.drivers import MIN_SITES, PREDICTORS
from ..insights.rankings import season_window
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
