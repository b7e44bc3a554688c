"""The sensors of a town: registry metadata joined with each sensor's latest reading and status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from heatwatch.core.datasets import READING
from heatwatch.core.model import Sensor

from ..deps import CtxDep, FormatParam, StyleDep, TownDep
from ..formats import GeoJSONBytes, JSONBytes, choose_format, envelope, feature_collection, point_feature
from ..respond import cached_csv, cached_json
from ..sensorinfo import list_sensors, public_fields, status_of
from ..solve import FastRoute
from ..timeutil import now_ms

router = APIRouter(prefix="/v1", tags=["sensors"], route_class=FastRoute)

#: What the api publishes of a registry entry: all of it but the ids (own columns) and the network identity.
META_FIELDS = [n for n in Sensor.model_fields if n not in ("id", "town", "mqtt_identity")]
#: Added to each sensor: whether its position is blurred (a private site: core/privacy.py), its network and trust.
PUBLIC_FIELDS = ["position_blurred", "network"]
CSV_COLUMNS = ["town", "id", *META_FIELDS, *PUBLIC_FIELDS, "status", "last_time",
               *(f"last_{f}" for f in READING.fields if f != "source")]


@router.get(
    "/sensors",
    summary="Sensors of a town, with their latest reading and status",
    description="Registry metadata (position, site class, Local Climate Zone, height) joined with the newest "
                "reading. Sensors that sent data but are not in the registry appear as `unregistered`. "
                "Residents' and crowd stations (`network` citizen) are shown on a grid (`position_blurred`, "
                "docs/privacy.md) under a neutral name, with their `trust` (provisional, confirmed). "
                "GeoJSON features have no geometry when the position is unknown.",
    responses={200: {"content": {"application/geo+json": {}, "text/csv": {}}}, 404: {"description": "unknown town"}},
)
async def sensors(ctx: CtxDep, town: TownDep, style: StyleDep, format: FormatParam = None,
                  include_retired: Annotated[bool, Query(description="also list retired sensors")] = False
                  ) -> Response:
    fmt = choose_format(ctx.request, format, ["json", "geojson", "csv"])

    async def build() -> tuple[Any, int | None, str]:
        registered = {s.id: s for s in list_sensors(ctx.registry, town.id, include_retired=True)}
        latest = {r["sensor"]: r for r in await ctx.store.latest(town.id)}
        now = now_ms()
        items = []
        for sid in sorted(set(registered) | set(latest)):
            s = registered.get(sid)
            if s is not None and s.retired and not include_retired:
                continue
            r = latest.get(sid)
            item: dict[str, Any] = {"town": town.id, "id": sid}
            meta = s.model_dump(mode="json") if s else {}
            for f in META_FIELDS:
                item[f] = meta.get(f)
            # Name, position, network and trust as the public may see them (blurred for a private site).
            item.update(public_fields(s))
            item["status"] = status_of(s, r["time"] if r else None, now, ctx.settings.stale_after_s)
            item["reference"] = bool(s and s.is_reference) or sid in town.reference_sensors
            item["latest"] = ({"time": style.time(r["time"]), **{f: r.get(f) for f in READING.fields}} if r else None)
            items.append(item)
        last = max((r["time"] for r in latest.values()), default=None)
        meta = ctx.meta(last, returned=len(items), registry=ctx.registry is not None)
        if fmt == "geojson":
            feats = [point_feature(i["longitude"], i["latitude"], i, i["id"]) for i in items]
            return feature_collection(feats, meta), last, GeoJSONBytes.media_type
        if fmt == "csv":
            flat = []
            for i in items:
                row = {k: v for k, v in i.items() if k != "latest"}
                lt = i["latest"] or {}
                row["last_time"] = lt.get("time")
                for f in READING.fields:
                    row[f"last_{f}"] = lt.get(f)
                flat.append(row)
            return flat, last, "text/csv"
        return envelope(meta, items), last, JSONBytes.media_type

    if fmt == "csv":
        return await cached_csv(ctx, build, CSV_COLUMNS, style)
    return await cached_json(ctx, ctx.config.cache_ttl_latest_s, 30, build)
