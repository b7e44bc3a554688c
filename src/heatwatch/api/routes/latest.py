"""The latest reading of every sensor: a first-class endpoint (what open-data users ask first)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from heatwatch.core.datasets import READING
from heatwatch.core.trust import network_of, trust_of

from ..deps import CtxDep, FormatParam, OptTownDep, StyleDep
from ..formats import GeoJSONBytes, JSONBytes, choose_format, envelope, feature_collection, point_feature
from ..respond import cached_csv, cached_json
from ..sensorinfo import public_fields, sensor_index, status_of
from ..timeutil import now_ms

router = APIRouter(prefix="/v1", tags=["latest"])

LATEST_COLUMNS = ["town", "sensor", "time", *READING.fields, "status", "network", "trust"]


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

    async def build() -> tuple[Any, int | None, str]:
        records = await ctx.store.latest(town_id)
        index = sensor_index(ctx.registry, town_id)
        now = now_ms()
        rows = []
        fields = READING.fields  # a property that builds its list: once, not per row
        stale_after_s = ctx.settings.stale_after_s  # a property too
        for r in records:
            row: dict[str, Any] = {"town": r.get("town", town_id), "sensor": r.get("sensor"), "time": r["time"]}
            for f in fields:
                row[f] = r.get(f)
            s = index.get(row["sensor"])
            row["status"] = status_of(s, row["time"], now, stale_after_s)
            row["network"], row["trust"] = network_of(s), trust_of(s)
            rows.append(row)
        last = max((r["time"] for r in rows), default=None)
        for row in rows:
            row["time"] = style.time(row["time"])
        meta = ctx.meta(last, count=len(rows))
        if fmt == "geojson":
            feats = []
            for row in rows:
                # The position as the public may see it: blurred for a private site (core/privacy.py).
                pub = public_fields(index.get(row["sensor"]))
                feats.append(point_feature(pub["longitude"], pub["latitude"],
                                           {**row, "position_blurred": pub["position_blurred"]},
                                           f"{row['town']}/{row['sensor']}"))
            return feature_collection(feats, meta), last, GeoJSONBytes.media_type
        if fmt == "csv":
            return rows, last, "text/csv"
        return envelope(meta, rows), last, JSONBytes.media_type

    if fmt == "csv":
        return await cached_csv(ctx, build, LATEST_COLUMNS, style)
    return await cached_json(ctx, ctx.config.cache_ttl_latest_s, 30, build)
