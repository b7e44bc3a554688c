"""The latest reading of every sensor: a first-class endpoint (what open-data users ask first).

An answer is its envelope (the meta: the query, the last update, the count) around the sensors' rows, and a row only
changes when the sensor's reading does, its registry entry does, or its status does as time passes (``offline``
after ``HEATWATCH_API_STALE_AFTER_S`` of silence). So each row is rendered once per output style (JSON and GeoJSON
per time zone, CSV per separator, decimal mark and zone) and kept with the merged rows
(:class:`~heatwatch.api.store.LatestView`), with what it was rendered from: the row object, the sensor object of
the registry and whether the reading was still fresh. An answer checks those three per row (the row and sensor by
identity: they are replaced, never changed, when they change) and joins the rendered rows; a row whose check fails
is rendered again. The bytes are those the answer as a whole would render (tests/api/test_latest_rows.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from heatwatch.core.datasets import READING
from heatwatch.core.model import Sensor
from heatwatch.core.tabular import Style
from heatwatch.core.trust import network_of, trust_of

from ..deps import CtxDep, FormatParam, OptTownDep, StyleDep
from ..formats import MEDIA_TYPES, GeoJSONBytes, JSONBytes, choose_format, dumps, feature_collection, point_feature
from ..respond import cached_json, csv_bytes
from ..sensorinfo import public_fields, sensor_index, status_of
from ..solve import FastRoute
from ..store import LatestView
from ..timeutil import now_ms

router = APIRouter(prefix="/v1", tags=["latest"], route_class=FastRoute)

LATEST_COLUMNS = ["town", "sensor", "time", *READING.fields, "status", "network", "trust"]
#: Output styles whose rendered rows are kept per view, the least recently used dropped first (a style is a time
#: zone, and a separator and decimal mark for CSV: a handful in use, hundreds possible).
MAX_STYLES = 16


def row_of(r: dict[str, Any], sensor: Sensor | None, town: str | None, status: str, style: Style) -> dict[str, Any]:
    """One sensor's row as every format shows it (``LATEST_COLUMNS``)."""
    row: dict[str, Any] = {"town": r.get("town", town), "sensor": r.get("sensor"), "time": style.time(r["time"])}
    for f in READING.fields:
        row[f] = r.get(f)
    row["status"] = status
    row["network"], row["trust"] = network_of(sensor), trust_of(sensor)
    return row


@lru_cache(maxsize=64)
def csv_head(sep: str, decimal: str) -> bytes:
    """The CSV answer's first bytes (byte-order mark with ``;``, header line); its rows follow."""
    return csv_bytes(LATEST_COLUMNS, [], sep, decimal)


def renderer(fmt: str, style: Style, town: str | None) -> Callable[[dict[str, Any], Sensor | None, str], bytes]:
    """What one sensor's row is in ``fmt``: the bytes it adds to the answer (before the separating comma)."""
    if fmt == "csv":
        skip = len(csv_head(style.sep, style.decimal))

        def csv_row(r: dict[str, Any], s: Sensor | None, status: str) -> bytes:
            return csv_bytes(LATEST_COLUMNS, [row_of(r, s, town, status, style)], style.sep, style.decimal)[skip:]
        return csv_row
    if fmt == "geojson":
        def feature(r: dict[str, Any], s: Sensor | None, status: str) -> bytes:
            row = row_of(r, s, town, status, style)
            # The position as the public may see it: blurred for a private site (core/privacy.py).
            pub = public_fields(s)
            return dumps(point_feature(pub["longitude"], pub["latitude"],
                                       {**row, "position_blurred": pub["position_blurred"]},
                                       f"{row['town']}/{row['sensor']}"))
        return feature
    return lambda r, s, status: dumps(row_of(r, s, town, status, style))


def rendered_rows(view: LatestView, fmt: str, style: Style, town: str | None, index: dict[str, Sensor],
                  now: int, stale_after_s: int) -> list[bytes]:
    """Each row of ``view`` in ``fmt``: the one kept when it was rendered from the same row, sensor and freshness,
    else rendered now (and kept)."""
    key = (fmt, style.tz, stale_after_s) if fmt != "csv" else (fmt, style.tz, stale_after_s, style.sep, style.decimal)
    memo = view.memo
    kept = memo.pop(key, None)
    if kept is None:
        kept = {}
        while len(memo) >= MAX_STYLES:
            del memo[next(iter(memo))]
    memo[key] = kept  # the most recently used last
    stale_ms = stale_after_s * 1000
    render = None
    out = []
    for k, r in zip(view.keys, view.rows, strict=True):
        s = index.get(r.get("sensor"))  # type: ignore[arg-type]
        fresh = now - r["time"] <= stale_ms  # status_of's offline test
        hit = kept.get(k)
        if hit is None or hit[0] is not r or hit[1] is not s or hit[2] is not fresh:
            if render is None:
                render = renderer(fmt, style, town)
            hit = kept[k] = (r, s, fresh, render(r, s, status_of(s, r["time"], now, stale_after_s)))
        out.append(hit[3])
    return out


def answer(fmt: str, style: Style, meta: dict[str, Any], rows: list[bytes]) -> bytes:
    """The whole answer: its envelope around the rendered rows (``meta``: not in CSV)."""
    if fmt == "csv":
        return csv_head(style.sep, style.decimal) + b"".join(rows)
    if fmt == "geojson":
        return dumps(feature_collection([], meta))[:-2] + b",".join(rows) + b"]}"  # [:-2]: ends with "features":[
    return dumps({"meta": meta})[:-1] + b',"data":[' + b",".join(rows) + b"]}"


MEDIA = {"json": JSONBytes.media_type, "csv": MEDIA_TYPES["csv"], "geojson": GeoJSONBytes.media_type}


@router.get(
    "/latest",
    summary="Latest reading of each sensor",
    description="One row per sensor with its newest reading (of one town, or of all towns), the sensor's "
                "status (ok, offline, retired, unregistered) and, in GeoJSON, its position from the registry.",
    responses={200: {"content": {"text/csv": {}, "application/geo+json": {}}}},
)
async def latest(ctx: CtxDep, style: StyleDep, town: OptTownDep = None, format: FormatParam = None) -> Response:
    fmt = choose_format(ctx.request, format, ["json", "csv", "geojson"])
    town_id = town.id if town else None

    async def build() -> tuple[bytes, int | None, str]:
        view = await ctx.store.latest_view(town_id)
        index = sensor_index(ctx.registry, town_id)
        rows = rendered_rows(view, fmt, style, town_id, index, now_ms(), ctx.settings.stale_after_s)
        meta = ctx.meta(view.last_ms, count=len(rows)) if fmt != "csv" else {}
        return answer(fmt, style, meta, rows), view.last_ms, MEDIA[fmt]

    return await cached_json(ctx, ctx.config.cache_ttl_latest_s, 30, build)
