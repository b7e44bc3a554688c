"""Town-level products: daily indices, canicule episodes, alerts, UHI snapshots."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from heatwatch.core.datasets import ALERT, DAILY, HOURLY, TOWN_DAILY, Column, Dataset
from heatwatch.core.trust import counts_in_town

from ..deps import (
    ISO_PATTERN,
    CtxDep,
    FormatParam,
    FromParam,
    OptSensorParam,
    StyleDep,
    ToParam,
    TownDep,
    TzDep,
)
from ..errors import bad_request
from ..formats import GeoJSONBytes, choose_format, feature_collection, held_json_rows, point_feature
from ..respond import cached_csv, cached_json, series_response, table_response
from ..sensorinfo import list_sensors, public_fields, sensor_index
from ..solve import FastRoute
from ..store import Filter
from ..timeutil import MS_PER_DAY, iso_z, local_date, now_ms, parse_instant, time_range, zone

router = APIRouter(prefix="/v1", tags=["town indices and alerts"], route_class=FastRoute)

TABLE_RESPONSES: dict[int | str, dict] = {
    200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {},
                      "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}},
    400: {"description": "range above the cap, bad time, unsupported format"},
    404: {"description": "unknown town"},
}


def uncounted(sensors: list[Any], network: Literal["all", "town"]) -> tuple[str, ...]:
    """Sensors a town-level count leaves out: provisional citizen sensors (weight 0: never in the town's values),
    and with ``network=town`` every citizen sensor (core/trust.py, docs/citizens.md)."""
    return tuple(sorted(s.id for s in sensors if not counts_in_town(s, network)))


#: Where a stored field sits in a row of :func:`_indices_rows` (time, date, tags, fields).
_AT = {f: 2 + len(TOWN_DAILY.tag_keys) + i for i, f in enumerate(TOWN_DAILY.fields)}
#: Where the day's tropical nights sit in a stored row (time, tags, fields: no date yet).
_STORED_NIGHTS = _AT["tropical_nights"] - 1


async def _indices_rows(ctx, town, start: int, end: int, *, network: Literal["all", "town"] = "all",
                        nights: bool = True
                        ) -> tuple[list[list[Any]], int | None]:
    """The town's daily rows in [start, end), each with its local date, and the dataset's last update: one bounded
    statement on ``town_daily`` (the last update is cached).

    Tropical nights come stored with each day (``tropical_nights``, ``tropical_nights_town``: analytics counts them
    when it computes the day, over the sensors the town's values count). Days stored before they were have
    neither: for those days only, until a backfill rewrites them, they are counted from ``daily`` as before, over
    the sensors the registry's current trust counts (:func:`uncounted`); ``nights=False`` leaves them empty.
    """
    tz = zone(town.timezone)  # the day a row describes is the town's calendar day
    flt = Filter(start, end, town=town.id)
    rows, last = await asyncio.gather(ctx.store.all_rows(TOWN_DAILY, flt, ctx.config.stream_page_rows),
                                      ctx.store.last_update(TOWN_DAILY, town.id))
    for row in rows:
        row.insert(1, local_date(row[0], tz))
    field = "tropical_nights_town" if network == "town" else "tropical_nights"
    older = [row for row in rows if row[_AT[field]] is None] if nights else []
    if older:
        span = replace(flt, start_ms=max(start, older[0][0]), end_ms=min(end, older[-1][0] + MS_PER_DAY + 3600_000),
                       exclude=uncounted(list_sensors(ctx.registry, town.id), network))
        per_day = await ctx.store.true_per_day(DAILY, "tropical_night", span, tz)
        for row in older:
            row[_AT[field]] = per_day.get(row[1], 0)
    return rows, last


@router.get("/indices", summary="A town's daily indices", responses=TABLE_RESPONSES,
            description="One row per day: IBMn, IBMx (3-day running means of Tn and Tx), canicule day flag, "
                        "UHI mean and max over urban sensors, hottest sensor, sensors passing QC, and the number "
                        "of sensors with a tropical night (those the town's values count: its own and confirmed "
                        "citizen sensors; with network=town its own only). Default: the last 365 days.")
async def indices(ctx: CtxDep, town: TownDep, tz: TzDep, style: StyleDep, from_: FromParam = None,
                  to: ToParam = None, format: FormatParam = None,
                  network: Annotated[Literal["all", "town"], Query(description=(
                      "all (default): the town's sensors plus confirmed citizen sensors with their weight; town: "
                      "the town's own network only, without any citizen data (docs/citizens.md)"))] = "all",
                  ) -> Response:
    fmt = choose_format(ctx.request, format, ["json", "csv", "parquet", "xlsx"])
    start, end = time_range(from_, to, tz, default_days=365, max_days=ctx.config.max_daily_days, what="indices")

    async def build() -> tuple[Any, ...]:
        extra = {"canicule_thresholds": town.canicule.model_dump(), "network": network}
        if fmt == "json" and network == "all":
            # Held days with their nights stored (every day analytics computed since it stores them): the rows'
            # JSON is joined as the resident aggregates keep it, only the time and date written per answer.
            held = ctx.store.held_rows(TOWN_DAILY, Filter(start, end, town=town.id))
            if held is not None and all(row[_STORED_NIGHTS] is not None for row in held[0]):
                rows, texts, times = held
                last = await ctx.store.last_update(TOWN_DAILY, town.id)
                return rows, last, extra, held_json_rows(TOWN_DAILY, rows, texts, times, style, zone(town.timezone),
                                                         None)
        rows, last = await _indices_rows(ctx, town, start, end, network=network)
        if network == "town":
            # The town network's own values in the usual columns: the same table, without citizen data.
            for row in rows:
                for f in NETWORK_FIELDS:
                    row[_AT[f]] = row[_AT[f"{f}_town"]]
        return rows, last, extra

    return await table_response(ctx, TOWN_DAILY, fmt, style, build, ttl=ctx.config.cache_ttl_agg_s, max_age=300,
                                filename=f"heatwatch-indices-{town.id}")


#: Town indices that citizen sensors may enter, each with its town-network twin ``<field>_town``.
NETWORK_FIELDS = ("uhi_mean", "uhi_max", "hottest_sensor", "sensors_ok", "tropical_nights")


EPISODES = Dataset(
    "canicule_episodes", "town_daily", TOWN_DAILY.rp, "Épisodes de canicule",
    "Runs of consecutive canicule days per town.", "DAILY",
    (
        Column("time", "datetime", "start of the first day (UTC)"),
        Column("town", "string", "town id", tag=True),
        Column("start", "date", "first canicule day (local)"),
        Column("end", "date", "last canicule day (local)"),
        Column("days", "integer", "number of consecutive canicule days"),
        Column("ibmn_max", "number", "highest IBMn during the episode", "°C"),
        Column("ibmx_max", "number", "highest IBMx during the episode", "°C"),
        Column("uhi_max", "number", "highest town UHI during the episode", "°C"),
        Column("ongoing", "boolean", "the episode runs up to the newest day computed"),
    ),
    tag_keys=("town",),
)


def episodes_from(rows: list[list[Any]], town: str, alignment: str = "trailing") -> list[list[Any]]:
    """Consecutive canicule days (by local date) grouped into episodes. ``rows`` are indices rows.

    ``alignment="forward"`` groups the days whose D…D+2 means reached the thresholds (the window of
    Météo-France's vigilance forecasts, reconstructed from observations, docs/science/canicule.md).
    """
    names = ["time", "date", *TOWN_DAILY.tag_keys, *TOWN_DAILY.fields]
    col = {n: i for i, n in enumerate(names)}
    if alignment == "forward":
        col = {**col, "canicule": col["canicule_forward"], "ibmn": col["ibmn_forward"], "ibmx": col["ibmx_forward"]}
    out: list[list[Any]] = []
    current: list[Any] | None = None
    prev_day: date | None = None
    for row in rows:
        day = date.fromisoformat(row[col["date"]])
        if not row[col["canicule"]]:
            current = None
            prev_day = day
            continue
        if current is not None and prev_day is not None and day - prev_day == timedelta(days=1):
            current[3] = day.isoformat()
            current[4] += 1
            current[5] = _max(current[5], row[col["ibmn"]])
            current[6] = _max(current[6], row[col["ibmx"]])
            current[7] = _max(current[7], row[col["uhi_max"]])
        else:
            current = [row[0], town, day.isoformat(), day.isoformat(), 1, row[col["ibmn"]], row[col["ibmx"]],
                       row[col["uhi_max"]], False]
            out.append(current)
        prev_day = day
    if out and rows and out[-1][3] == rows[-1][col["date"]]:
        out[-1][8] = True
    return out


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


@router.get("/canicule-episodes", summary="Canicule episodes of a town", responses=TABLE_RESPONSES,
            description="Runs of consecutive canicule days (Météo-France: IBMn and IBMx both at or above the "
                        "département thresholds), with their peaks. Default: the last 365 days.")
async def canicule_episodes(ctx: CtxDep, town: TownDep, tz: TzDep, style: StyleDep, from_: FromParam = None,
                            to: ToParam = None, format: FormatParam = None,
                            alignment: Annotated[Literal["trailing", "forward"], Query(
                                description="trailing: days whose D−2…D means reached the thresholds, as observed "
                                            "(default); forward: days whose D…D+2 means did, the window of "
                                            "Météo-France's vigilance forecasts, reconstructed for past episodes"
                            )] = "trailing") -> Response:
    fmt = choose_format(ctx.request, format, ["json", "csv", "parquet", "xlsx"])
    start, end = time_range(from_, to, tz, default_days=365, max_days=ctx.config.max_daily_days,
                            what="canicule episodes")

    async def build() -> tuple[list[list[Any]], int | None, dict[str, Any]]:
        rows, last = await _indices_rows(ctx, town, start, end, nights=False)  # episodes do not show them
        return episodes_from(rows, town.id, alignment), last, {"canicule_thresholds": town.canicule.model_dump(),
                                                                "alignment": alignment}

    return await table_response(ctx, EPISODES, fmt, style, build, ttl=ctx.config.cache_ttl_agg_s, max_age=300,
                                filename=f"heatwatch-canicule-{town.id}")


# Alerts ----------------------------------------------------------------------------------------

KIND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Analytics keeps one point per lasting condition with state open/closed; the bound only keeps
# the query off years of shards (an alert open for over a year is a forgotten sensor, not news).
OPEN_WINDOW_H = 24 * 400


@router.get("/alerts", summary="Alerts, open or past", responses=TABLE_RESPONSES,
            description="`status=open`: the conditions standing now (one alert per lasting condition, "
                        "with `started`; it closes with `ended`). "
                        "`status=past` (default): every alert in the range, paged in JSON.")
async def alerts(ctx: CtxDep, town: TownDep, tz: TzDep, style: StyleDep,
                 status: Annotated[Literal["open", "past"], Query(description="open or past")] = "past",
                 kind: Annotated[str | None, Query(pattern=KIND_PATTERN, max_length=64)] = None,
                 sensor: OptSensorParam = None, from_: FromParam = None, to: ToParam = None,
                 format: FormatParam = None,
                 limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
                 cursor: Annotated[str | None, Query(pattern=r"^\d{1,16}$")] = None) -> Response:
    fmt = choose_format(ctx.request, format, ["json", "csv", "parquet", "xlsx"])
    if status == "past":
        start, end = time_range(from_, to, tz, default_days=30, max_days=ctx.config.max_daily_days, what="alerts")
        flt = Filter(start, end, town=town.id, sensor=sensor, kind=kind)
        return await series_response(ctx, ALERT, flt, fmt=fmt, style=style, limit=limit, cursor=cursor, count=False,
                                     tz=tz, ttl=ctx.config.cache_ttl_latest_s, max_age=60,
                                     filename=f"heatwatch-alerts-{town.id}")
    if from_ or to or cursor:
        raise bad_request("status=open takes no from/to/cursor: it is the alerts standing now", "invalid_parameter")

    async def build() -> tuple[list[list[Any]], int | None, dict[str, Any]]:
        end = now_ms() + 5 * 60_000
        flt = Filter(end - OPEN_WINDOW_H * 3600_000 - 5 * 60_000, end, town=town.id, sensor=sensor, kind=kind)
        records = await ctx.store.open_alerts(flt)
        rows = [[r["time"], town.id, r.get("sensor"), r.get("kind"), *(r.get(f) for f in ALERT.fields)]
                for r in records]
        rows.sort(key=lambda r: (-r[0], r[2] or "", r[3] or ""))
        rows = rows[: ctx.config.max_page_size]
        return rows, await ctx.store.last_update(ALERT, town.id), {"status": "open"}

    return await table_response(ctx, ALERT, fmt, style, build, ttl=ctx.config.cache_ttl_latest_s, max_age=30,
                                filename=f"heatwatch-open-alerts-{town.id}")


# UHI snapshot ----------------------------------------------------------------------------------

UHI_COLUMNS = ["sensor", "name", "latitude", "longitude", "position_blurred", "network", "trust", "site_class", "uhi",
               "t"]


@router.get("/uhi", summary="UHI snapshot of a town (GeoJSON)",
            responses={200: {"content": {"application/geo+json": {}, "text/csv": {}}},
                       400: {"description": "both at and night, or a bad time"}, 404: {"description": "unknown town"}},
            description="Each sensor with its urban heat island intensity: for the hour containing `at` "
                        "(hourly `uhi`), or for the night starting on the evening of local date `night` (daily "
                        "`uhi_night_max`, 18:00 that day to 06:00 the next). Neither: the newest hour computed. "
                        "Positions come from the registry; residents' sites are shown on a grid (`position_blurred`).")
async def uhi(ctx: CtxDep, town: TownDep, tz: TzDep, style: StyleDep,
              at: Annotated[str | None, Query(max_length=40, pattern=ISO_PATTERN,
                                              description="an instant; its hour is shown",
                                              examples=["2024-07-20T02:00:00Z"])] = None,
              night: Annotated[date | None, Query(description="local date whose evening starts the night",
                                                  examples=["2024-07-20"])] = None,
              format: FormatParam = None) -> Response:
    fmt = choose_format(ctx.request, format, ["geojson", "json", "csv"])
    if at is not None and night is not None:
        raise bad_request("give either at (an hour) or night (a date), not both", "invalid_parameter")
    if night is not None and not date(1970, 1, 2) <= night <= date(2100, 1, 1):
        raise bad_request(f"night={night} is outside 1970–2100", "invalid_time")
    at_ms = parse_instant(at, tz, "at") if at is not None else None
    async def build() -> tuple[Any, int | None, str]:
        if night is not None:
            ds, field, temp = DAILY, "uhi_night_max", "tn"
            # analytics files the night 18:00 D … 06:00 D+1 under the daily row of D+1 (the morning it ends).
            row_day = night + timedelta(days=1)
            town_tz = zone(town.timezone)
            start = int(datetime(row_day.year, row_day.month, row_day.day, tzinfo=town_tz).timestamp() * 1000)
            end = start + MS_PER_DAY + 3600_000  # a DST day may be 25 h long
            period: dict[str, Any] = {"night": night.isoformat()}
            have_period = True
        else:
            ds, field, temp = HOURLY, "uhi", "t_mean"
            if at_ms is None:
                hour = await ctx.store.last_time(ds, "uhi", town.id)
            else:
                hour = at_ms // 3600_000 * 3600_000
            start = hour if hour is not None else 0
            end = start + 3600_000
            period = {"hour": iso_z(hour)}
            have_period = hour is not None  # no hourly data at all yet
        records: list[dict[str, Any]] = []
        if have_period:
            records = await ctx.store.per_sensor(ds, [field, temp], Filter(start, end, town=town.id))
        if night is not None:
            records = [r for r in records if local_date(int(r["time"]), town_tz) == row_day.isoformat()]
        index = sensor_index(ctx.registry, town.id)
        rows = []
        for r in sorted(records, key=lambda r: r.get("sensor") or ""):
            s = index.get(r.get("sensor", ""))
            # Name and position as the public may see them: a private site is blurred (core/privacy.py).
            rows.append({"sensor": r.get("sensor"), **public_fields(s), "site_class": str(s.site_class) if s else None,
                         "uhi": r.get(field), "t": r.get(temp), "time": style.time(r["time"])})
        last = await ctx.store.last_update(ds, town.id)
        meta = ctx.meta(last, **period, value=field, returned=len(rows))
        if fmt == "csv":
            return rows, last, "text/csv"
        if fmt == "json":
            return {"meta": meta, "data": rows}, last, "application/json"
        feats = [point_feature(r["longitude"], r["latitude"], r, r["sensor"]) for r in rows]
        return feature_collection(feats, meta), last, GeoJSONBytes.media_type

    if fmt == "csv":
        return await cached_csv(ctx, build, [*UHI_COLUMNS, "time"], style, ttl=ctx.config.cache_ttl_agg_s,
                                max_age=300)
    return await cached_json(ctx, ctx.config.cache_ttl_agg_s, 300, build)
