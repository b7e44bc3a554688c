"""Raw readings and per-sensor hourly and daily aggregates."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from heatwatch.core.datasets import DAILY, HOURLY, READING, Dataset
from heatwatch.core.measurements import QC_MAX
from heatwatch.core.trust import network_of

from ..deps import (
    CtxDep,
    FormatParam,
    FromParam,
    OptSensorParam,
    StyleDep,
    ToParam,
    TownDep,
    TzDep,
)
from ..formats import choose_format
from ..respond import series_response
from ..sensorinfo import list_sensors
from ..solve import FastRoute
from ..store import Filter
from ..timeutil import time_range, zone

router = APIRouter(prefix="/v1", tags=["readings and aggregates"], route_class=FastRoute)

LimitParam = Annotated[int | None, Query(ge=1, le=100_000, description="JSON page size (capped; default 1000)")]
CursorParam = Annotated[str | None, Query(pattern=r"^\d{1,16}$", description="opaque: from the previous page's 'next'")]
CountParam = Annotated[bool, Query(description="also count all matching rows (one more query)")]
QcParam = Annotated[int | None, Query(ge=0, le=QC_MAX, description=(
    "only rows whose qc flags are exactly this: qc=0 keeps the rows that passed every check (bits: /v1/qc-flags)"))]
QcMaxParam = Annotated[int | None, Query(ge=0, le=QC_MAX, description=(
    "only rows whose qc value is at most this (qc_max=0 is qc=0; the bits are in /v1/qc-flags)"))]

NetworkParam = Annotated[Literal["all", "town", "citizen"], Query(description=(
    "all (default): every sensor; town: the town's own network only (its data is under the Licence Ouverte 2.0); "
    "citizen: residents' and crowd sensors only (each under its own licence: docs/citizens.md, /v1/governance)"))]

EXPORT_RESPONSES: dict[int | str, dict] = {
    200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {},
                      "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}},
    400: {"description": "range or page size above the caps, bad time, unsupported format"},
    404: {"description": "unknown town"},
}


async def _series(ctx, ds: Dataset, town, sensor, from_, to, tz, format, style, limit, cursor, count, *,
                  default_days: int, max_days: int, ttl: float, max_age: int, qc: int | None = None,
                  qc_max: int | None = None, network: str = "all") -> Response:
    fmt = choose_format(ctx.request, format, ["json", "csv", "parquet", "xlsx"])
    start, end = time_range(from_, to, tz, default_days=default_days, max_days=max_days, what=ds.id)
    flt = Filter(start, end, town=town.id, sensor=sensor, qc=qc, qc_max=qc_max)
    if network != "all":
        # The registry says which sensors are residents' (core/trust.py); an unregistered one is the town's.
        citizens = tuple(s.id for s in list_sensors(ctx.registry, town.id) if network_of(s) == "citizen")
        if network == "town":
            flt.exclude = citizens
        else:
            flt.only = citizens
    name = f"heatwatch-{ds.id}-{town.id}" + (f"-{sensor}" if sensor else "")
    # A daily row describes a day of the town's calendar, whatever zone the request reads times in.
    return await series_response(ctx, ds, flt, fmt=fmt, style=style, limit=limit, cursor=cursor, count=count,
                                 tz=zone(town.timezone),
                                 ttl=ttl, max_age=max_age, filename=name)


@router.get("/readings", summary="Raw readings (time range capped)", responses=EXPORT_RESPONSES,
            description="Readings as received, ordered by time. Default: the last 24 h; at most "
                        "`max_raw_days` (31) per request. JSON is paged; CSV and Parquet stream the range.")
async def readings(ctx: CtxDep, town: TownDep, tz: TzDep, style: StyleDep, sensor: OptSensorParam = None,
                   from_: FromParam = None, to: ToParam = None, format: FormatParam = None, limit: LimitParam = None,
                   cursor: CursorParam = None, count: CountParam = False, network: NetworkParam = "all") -> Response:
    return await _series(ctx, READING, town, sensor, from_, to, tz, format, style, limit, cursor, count,
                         network=network,
                         default_days=1, max_days=ctx.config.max_raw_days, ttl=ctx.config.cache_ttl_latest_s,
                         max_age=30)


@router.get("/hourly", summary="Hourly aggregates per sensor", responses=EXPORT_RESPONSES,
            description="t_mean/min/max, humidity, dew point, heat index, humidex, UHI, count and QC flags. "
                        "Default: the last 7 days; at most 400 days per request.")
async def hourly(ctx: CtxDep, town: TownDep, tz: TzDep, style: StyleDep, sensor: OptSensorParam = None,
                 from_: FromParam = None, to: ToParam = None, format: FormatParam = None, limit: LimitParam = None,
                 cursor: CursorParam = None, count: CountParam = False, qc: QcParam = None,
                 qc_max: QcMaxParam = None, network: NetworkParam = "all") -> Response:
    return await _series(ctx, HOURLY, town, sensor, from_, to, tz, format, style, limit, cursor, count,
                         qc=qc, qc_max=qc_max, network=network,
                         default_days=7, max_days=ctx.config.max_hourly_days, ttl=ctx.config.cache_ttl_agg_s,
                         max_age=300)


@router.get("/daily", summary="Daily indicators per sensor", responses=EXPORT_RESPONSES,
            description="Tn, Tx, means, heat index and humidex maxima, UHI mean and nocturnal max, hours ≥ 30 °C, "
                        "tropical night, coverage. `date` is the town's calendar day. Default: the last 365 days.")
async def daily(ctx: CtxDep, town: TownDep, tz: TzDep, style: StyleDep, sensor: OptSensorParam = None,
                from_: FromParam = None, to: ToParam = None, format: FormatParam = None, limit: LimitParam = None,
                cursor: CursorParam = None, count: CountParam = False, qc: QcParam = None,
                qc_max: QcMaxParam = None, network: NetworkParam = "all") -> Response:
    return await _series(ctx, DAILY, town, sensor, from_, to, tz, format, style, limit, cursor, count,
                         qc=qc, qc_max=qc_max, network=network,
                         default_days=365, max_days=ctx.config.max_daily_days, ttl=ctx.config.cache_ttl_agg_s,
                         max_age=300)
