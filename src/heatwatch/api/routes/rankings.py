"""Seasonal rankings of a town's sites: hottest by the mean of the nightly maxima of UHI, compared on
common days (docs/science/rankings-maps.md); hot hours, tropical nights."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from ..deps import TOWN_PATTERN, CtxDep, FormatParam, SepParam, known_town
from ..errors import bad_request
from ..formats import choose_format, envelope
from ..insights import queries
from ..insights.rankings import (
    DEFAULT_THRESHOLDS,
    MIN_COMMON_SHARE,
    MIN_SHARE,
    RANKED_BY,
    ranking_columns,
    season_window,
)
from ..insights.season import season_ranking
from ..respond import cached_csv, cached_json

router = APIRouter(prefix="/v1", tags=["rankings"])
TownPath = Annotated[str, Path(pattern=TOWN_PATTERN, max_length=64, examples=["vitre"])]
MAX_THRESHOLDS = 4


def parse_thresholds(text: str) -> list[float]:
    try:
        values = sorted({float(x) for x in text.split(",") if x.strip()})
    except ValueError as exc:
        raise bad_request(f"thresholds={text!r}: give comma-separated °C values, e.g. 30,35",
                          "invalid_parameter") from exc
    if not values or len(values) > MAX_THRESHOLDS or any(not 0 <= v <= 50 for v in values):
        raise bad_request(f"thresholds: 1 to {MAX_THRESHOLDS} values between 0 and 50 °C", "invalid_parameter")
    return values


@router.get(
    "/towns/{town}/rankings",
    summary="Seasonal ranking of a town's sites (JSON or CSV)",
    responses={200: {"content": {"text/csv": {}}}, 404: {"description": "unknown town"}},
    description=(
        "Season `YYYY`: the heat-wave vigilance season, 1 June – 15 September, in local days (cut at today "
        "while it runs). Sensor-days flagged by quality control are left out.\n\n"
        "**Sites are compared on common days**: the days on which every ranked site has a usable nightly UHI. "
        "Sites join best covered first while those common days stay at least "
        f"{MIN_COMMON_SHARE:.0%} of the days with data; a site measured on less than {MIN_SHARE:.0%} of them, or "
        "whose gaps would cut the common days further, is listed with `rank` null, `basis` `own_days` (its "
        "figures are over its own days, not comparable) and the reason in `note`. Rural references have `basis` "
        "`reference`. `meta.season.compared_on` gives the number and span of the common days.\n\n"
        "Columns are `<daily field>_<statistic over the days compared>`: `uhi_night_max_mean` (the ranking key) is "
        "the mean of the nightly maxima of UHI (night 18:00–06:00 local), `uhi_night_max_max` the highest nightly "
        "maximum, `uhi_mean_mean` the mean of the daily 24-h mean UHI; `tropical_nights` counts days with "
        "Tn ≥ 20 °C, `tn_mean` and `tx_max` are the mean daily minimum and the highest daily maximum, and "
        "`hours_ge_T` the hours whose mean temperature reached each of `thresholds` (°C, default 30,35; from "
        "QC-passed hourly aggregates), all over `days_compared` days."
    ),
)
async def rankings(
    ctx: CtxDep,
    town: TownPath,
    season: Annotated[int, Query(ge=2000, le=2100, description="year of the summer season")],
    thresholds: Annotated[str, Query(max_length=40, description="comma-separated °C thresholds for hot hours")]
    = ",".join(f"{t:g}" for t in DEFAULT_THRESHOLDS),
    format: FormatParam = None,
    sep: SepParam = ",",
) -> Response:
    t = known_town(ctx.settings, town)
    thr = parse_thresholds(thresholds)
    fmt = choose_format(ctx.request, format, ["json", "csv"])
    columns = ranking_columns(thr)
    first, last = season_window(season)

    async def build() -> tuple[Any, int | None, str]:
        async with ctx.slots.hold(ctx.client):  # a season of every site: one of the shared expensive slots
            ranking, summary = await season_ranking(ctx.store.client, t, ctx.registry, season, thr)
        last_ms = await queries.last_update_ms(ctx.store.client, t.id)
        if fmt == "csv":
            return ranking, last_ms, "text/csv"
        meta = ctx.meta(last_ms, season={"year": season, "window": [first.isoformat(), last.isoformat()], **summary},
                        thresholds_c=thr, ranked_by=RANKED_BY, returned=len(ranking))
        return envelope(meta, [{c: r.get(c) for c in columns} for r in ranking]), last_ms, "application/json"

    if fmt == "csv":
        return await cached_csv(ctx, build, columns, sep, ttl=ctx.config.cache_ttl_agg_s, max_age=300)
    return await cached_json(ctx, ctx.config.cache_ttl_agg_s, 300, build)
