"""Interpolated heat-island maps of a town: GeoJSON grid or PNG with legend and scale bar.

A period map compares sensors over the same days, as the rankings do (docs/science/rankings-maps.md):
each mapped value is the mean over the days common to the mapped sensors; a sensor that cannot be
compared on them is left off the map and listed in ``meta.left_out`` with the reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from heatwatch.core.influx import InfluxClient
from heatwatch.core.model import Sensor, Town
from heatwatch.core.privacy import public_sensors
from heatwatch.core.trust import network_of, trust_of

from ..cache import Cached, build_entry, conditional
from ..deps import TOWN_PATTERN, CtxDep, known_town
from ..errors import ApiError, bad_request
from ..formats import GeoJSONBytes, choose_format, dumps, feature_collection
from ..insights import queries
from ..insights.idw import Grid, SensorValue, grid_features, grid_meta, idw_grid
from ..insights.rankings import common_day_means
from ..insights.render import render_png
from ..insights.rkmap import choose_method, features_with_se
from ..respond import http_date
from ..sensorinfo import list_sensors
from ..timeutil import iso_z, parse_instant

router = APIRouter(prefix="/v1", tags=["heat-island maps"])

MAX_PERIOD_DAYS = 184
Kind = Literal["night", "day", "hour"]
TownPath = Annotated[str, Path(pattern=TOWN_PATTERN, max_length=64, examples=["vitre"])]
MapFormatParam = Annotated[Literal["geojson", "json", "png"] | None,
                           Query(alias="format", description="geojson (default), json or png; else from Accept")]

KIND_TEXT = {
    "night": ("uhi_night_max", "ICU nocturne maximal / nightly maximum UHI"),
    "day": ("uhi_mean", "ICU moyen journalier / daily mean UHI"),
    "hour": ("uhi", "ICU horaire / hourly UHI"),
}


class MapRequest:
    """What one map shows, resolved from the query (dates, kind) against what is stored."""

    def __init__(self, kind: Kind, first: date | None, last: date | None, hour_ms: int | None) -> None:
        self.kind = kind
        self.first, self.last, self.hour_ms = first, last, hour_ms

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1 if self.first and self.last else 1

    def describe(self) -> dict[str, Any]:
        if self.kind == "hour":
            return {"kind": "hour", "hour": iso_z(self.hour_ms)}
        assert self.first is not None and self.last is not None
        out: dict[str, Any] = {"kind": self.kind, "from": self.first.isoformat(), "to": self.last.isoformat(),
                               "days": self.days}
        if self.kind == "night":
            out["nights"] = (f"evening of {self.first.isoformat()} to morning of "
                             f"{(self.last + timedelta(days=1)).isoformat()}")
        return out

    def title(self) -> str:
        if self.kind == "hour":
            return f"heure {iso_z(self.hour_ms)}"
        assert self.first is not None and self.last is not None
        if self.kind == "night":
            if self.first == self.last:
                return f"nuit du {self.first.isoformat()} au {(self.first + timedelta(days=1)).isoformat()}"
            return f"nuits du {self.first.isoformat()} au {(self.last + timedelta(days=1)).isoformat()} (moyenne)"
        if self.first == self.last:
            return f"journée du {self.first.isoformat()}"
        return f"journées du {self.first.isoformat()} au {self.last.isoformat()} (moyenne)"


@dataclass(slots=True)
class MapValues:
    """Per-sensor values of one map and what they are."""

    values: dict[str, float]
    #: the daily/hourly field, or ``<field>_mean`` for the mean over a period's common days
    name: str
    compared_on: dict[str, Any] | None = None
    left_out: dict[str, str] = field(default_factory=dict)

    def subtitle(self, kind: Kind) -> str:
        """What the colours are, for the PNG: a period map says it is a mean over common days."""
        if self.compared_on is None:
            return KIND_TEXT[kind][1]
        n = self.compared_on["common_days"]
        text = {"night": f"moyenne des maxima nocturnes d'ICU sur {n} nuits communes / mean nightly maximum UHI "
                         f"over {n} common nights",
                "day": f"moyenne de l'ICU journalier sur {n} jours communs / mean daily UHI over {n} common days"}
        out = text.get(kind, KIND_TEXT[kind][1])
        if self.left_out:
            out += f" · {len(self.left_out)} capteur(s) non comparable(s) hors carte / not comparable, not mapped"
        return out


def mappable(sensors: list[Sensor], town: Town) -> list[Sensor]:
    """Sensors with a position that are not rural references: UHI is measured against the references
    (0 by definition), and they stand outside the town, which would stretch the grid into fields."""
    refs = set(town.reference_sensors)
    return [s for s in sensors if s.latitude is not None and s.longitude is not None and not s.is_reference
            and s.id not in refs]


async def map_values(client: InfluxClient, town: Town, req: MapRequest, sensors: list[Sensor]) -> MapValues:
    """Per-sensor UHI for the request: one night/day, the mean over a period's common days, or one hour."""
    tz = ZoneInfo(town.timezone)
    if req.kind == "hour":
        assert req.hour_ms is not None
        return MapValues(await queries.hourly_uhi(client, town.id, req.hour_ms), "uhi")
    assert req.first is not None and req.last is not None
    name = KIND_TEXT[req.kind][0]
    # A night is filed under the daily row of the morning it ends: night of D → row D+1.
    shift = timedelta(days=1) if req.kind == "night" else timedelta(0)
    rows = await queries.daily_rows(client, town.id, req.first + shift, req.last + shift, tz, fields=(name,))
    if req.first == req.last:
        return MapValues({r.sensor: float(v) for r in rows if (v := r.get(name)) is not None}, name)
    values, common = common_day_means(rows, name, {s.id for s in mappable(sensors, town)})
    described = common.describe()
    if req.kind == "night":
        # Report the nights by their evening, as the request names them.
        for k in ("first", "last"):
            if described[k] is not None:
                described[k] = (date.fromisoformat(described[k]) - shift).isoformat()
    return MapValues(values, f"{name}_mean", described, common.left_out)


def positioned(values: dict[str, float], sensors: list[Sensor], town: Town) -> list[SensorValue]:
    """The mappable sensors that have a value, each where a public map may put it.

    A private site (a resident's, a crowd station: core/privacy.py) enters the interpolation at the centre of its
    privacy-grid cell, never at its exact position: an IDW or kriging "bull's-eye" is centred on the point a
    sensor is placed at, and a map must not draw one on a resident's home (docs/privacy.md).
    """
    return [SensorValue(s.id, s.latitude, s.longitude, values[s.id])  # type: ignore[arg-type]
            for s in public_sensors(mappable(sensors, town)) if s.id in values]


def build_grid(points: list[SensorValue], cell_m: float, power: float, max_distance_m: float) -> Grid:
    if not points:
        raise ApiError(404, "no_data", "no sensor has both a position in the registry and a UHI value for this "
                                       "period: nothing to map")
    try:
        return idw_grid(points, cell_m=cell_m, power=power, max_distance_m=max_distance_m)
    except ValueError as exc:
        raise bad_request(str(exc), "grid_too_large") from exc


async def resolve_request(client: InfluxClient, town: Town, kind: Kind, day: date | None, first: date | None,
                          last: date | None, at: str | None) -> MapRequest:
    tz = ZoneInfo(town.timezone)
    if kind == "hour":
        if day is not None or first is not None or last is not None:
            raise bad_request("kind=hour takes `at` (an instant), not date/from/to", "invalid_parameter")
        if at is None:
            newest = await queries.newest_hour(client, town.id)
            if newest is None:
                raise ApiError(404, "no_data", f"no hourly aggregate stored yet for {town.id}")
            return MapRequest(kind, None, None, newest)
        return MapRequest(kind, None, None, parse_instant(at, tz, "at") // 3600_000 * 3600_000)
    if at is not None:
        raise bad_request("`at` goes with kind=hour; night and day maps take date, or from and to",
                          "invalid_parameter")
    if day is not None and (first is not None or last is not None):
        raise bad_request("give either date (one night or day) or from and to (a period), not both",
                          "invalid_parameter")
    if (first is None) != (last is None):
        raise bad_request("a period needs both from and to (local dates, inclusive)", "invalid_parameter")
    if day is not None:
        first = last = day
    if first is None or last is None:
        newest = await queries.newest_daily_day(client, town.id, tz)
        if newest is None:
            raise ApiError(404, "no_data", f"no daily aggregate stored yet for {town.id}")
        # The newest daily row's night began the evening before.
        first = last = newest - timedelta(days=1) if kind == "night" else newest
    if last < first:
        raise bad_request("to must not be before from", "invalid_range")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise bad_request(f"period too long: at most {MAX_PERIOD_DAYS} days per map", "range_too_long")
    if not (date(2000, 1, 1) <= first and last <= date(2100, 1, 1)):
        raise bad_request("dates must be between 2000 and 2100", "invalid_time")
    return MapRequest(kind, first, last, None)


@router.get(
    "/towns/{town}/uhi-map",
    summary="Interpolated heat-island map of a town (GeoJSON grid or PNG)",
    responses={200: {"content": {"application/geo+json": {}, "image/png": {}}},
               400: {"description": "bad dates, period above the cap, grid above the cell cap"},
               404: {"description": "unknown town, or no positioned sensor with data for the period"}},
    description=(
        "Sensor UHI values interpolated by **inverse distance weighting** on a square grid (cell `cell_m` metres, "
        "weights 1/d^`power`, only sensors within `max_distance_m`). Cells farther than `max_distance_m` from "
        "every sensor are left empty (omitted from GeoJSON, grey on the PNG). Rural reference sensors are not "
        "mapped (UHI is measured against them).\n\n"
        "* `kind=night` (default): daily `uhi_night_max`; `date=D` is the night from the evening of D to the "
        "morning of D+1.\n"
        "* `kind=day`: daily `uhi_mean` of local day D.\n"
        "* `from`/`to` (local dates, inclusive, at most 184 days) instead of `date`: each sensor's mean over the "
        "**days common to the mapped sensors** (`meta.value` `uhi_night_max_mean` or `uhi_mean_mean`; "
        "`meta.compared_on` gives the days). A sensor measured on less than half of the days with data, or whose "
        "gaps would cut the common days below half of them, is left off the map and listed in `meta.left_out` "
        "with the reason: a sensor seen on other days would be compared on another sample.\n"
        "* `kind=hour`: hourly `uhi` of the hour containing `at`.\n\n"
        "Without dates: the newest night/day/hour stored.\n\n"
        "**Method** (`method`, `meta.grid.method` and `meta.grid.method_reason`): where the town's layers give tree "
        "canopy (or vegetation) and imperviousness, **regression-kriging** — the drivers model fitted on the mapped "
        "values against the sensors' surroundings within 100 m, applied to each cell's surroundings, plus the "
        "ordinary kriging of its residuals — with a per-cell standard error (`se`, °C) and a leave-one-sensor-out "
        "error of the whole procedure next to IDW's on the same sensors (`meta.grid.cross_validation`); `auto` "
        "keeps it only when that error is not above IDW's. Otherwise **IDW**, and `method_reason` says why. IDW "
        "blends sensor values by distance only; it knows no land cover and never exceeds the sensors' range, so "
        "unsampled hot spots stay invisible. In both, a cell holding sensors shows what they measured. "
        "GeoJSON: one Polygon per filled cell with property `uhi` (°C); the licence and grid parameters in `meta`."
    ),
)
async def uhi_map(
    ctx: CtxDep,
    town: TownPath,
    kind: Annotated[Kind, Query(description="night, day or hour")] = "night",
    date_: Annotated[date | None, Query(alias="date", description="one local date (night: its evening)")] = None,
    from_: Annotated[date | None, Query(alias="from", description="first local date of a period")] = None,
    to: Annotated[date | None, Query(description="last local date of a period (inclusive)")] = None,
    at: Annotated[str | None, Query(max_length=40, description="kind=hour: an instant (ISO 8601)")] = None,
    format: MapFormatParam = None,
    cell_m: Annotated[float, Query(ge=25, le=1000, description="cell size, metres")] = 100.0,
    power: Annotated[float, Query(ge=0.5, le=5, description="IDW power")] = 2.0,
    max_distance_m: Annotated[float, Query(ge=100, le=5000, description="cells farther from every sensor "
                                                                          "are left empty")] = 600.0,
    method: Annotated[Literal["auto", "idw", "regression-kriging"],
                      Query(description="auto (default): regression-kriging where the town's layers allow it and it "
                                        "cross-validates at least as well as IDW, else IDW; or force one")] = "auto",
) -> Response:
    t = known_town(ctx.settings, town)
    # Accept: image/png (before any JSON type) gets the image; the choice depends on Accept only through the
    # ranked list of known types, which is what the cache key holds.
    fmt = choose_format(ctx.request, format, ["geojson", "json", "png"])
    client = ctx.store.client

    async def make() -> Cached:
        # Built on a cache miss only, in one of the shared expensive slots (interpolation, kriging, PNG).
        async with ctx.slots.hold(ctx.client):
            return await _make()

    async def _make() -> Cached:
        req = await resolve_request(client, t, kind, date_, from_, to, at)
        sensors = list_sensors(ctx.registry, t.id)
        by_id = {s.id: s for s in sensors}
        mv = await map_values(client, t, req, sensors)
        points = positioned(mv.values, sensors, t)
        idw = build_grid(points, cell_m, power, max_distance_m)
        chosen = await asyncio.to_thread(choose_method, method, idw, points, t, sensors, ctx.settings.layers_dir,
                                         power, max_distance_m)
        grid = chosen.grid
        last = await queries.last_update_ms(client, t.id, "hourly" if kind == "hour" else "daily")
        headers = {"Last-Modified": lm} if (lm := http_date(last)) else {}
        if fmt == "png":
            credit = f"{ctx.config.producer} · Etalab-2.0"
            png = await asyncio.to_thread(render_png, grid, f"{t.name} — {req.title()}", mv.subtitle(req.kind),
                                          credit, note=chosen.note())
            headers["Content-Disposition"] = f'inline; filename="heatwatch-uhi-map-{t.id}.png"'
            return build_entry(png, "image/png", headers)
        extra: dict[str, Any] = {}
        if mv.compared_on is not None:
            extra["compared_on"] = mv.compared_on
            extra["left_out"] = [{"sensor": s, "reason": why} for s, why in sorted(mv.left_out.items())]
        meta = ctx.meta(last, period=req.describe(), value=mv.name, unit="°C",
                        grid={**grid_meta(grid), **chosen.meta()},
                        sensors=[{"sensor": p.sensor, "latitude": p.latitude, "longitude": p.longitude,
                                  "uhi": round(p.value, 3), "network": network_of(by_id.get(p.sensor)),
                                  "trust": trust_of(by_id.get(p.sensor))} for p in grid.sensors], **extra)
        body = feature_collection(features_with_se(grid_features(grid), chosen.se), meta)
        return build_entry(dumps(body), GeoJSONBytes.media_type if fmt == "geojson" else "application/json", headers)

    entry = await ctx.cache.get_or_build(ctx.cache_key, ctx.config.cache_ttl_agg_s, make)
    return conditional(ctx.request, entry, 300)
