"""Towns served by this instance, from the towns configuration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from heatwatch.core.model import Town

from ..deps import TOWN_PATTERN, CtxDep, FormatParam, SettingsDep, known_town
from ..formats import GeoJSONBytes, JSONBytes, choose_format, envelope, feature_collection, point_feature
from ..respond import cached_json
from ..solve import FastRoute

router = APIRouter(prefix="/v1", tags=["towns"], route_class=FastRoute)


#: What a town's JSON holds, in order: its configuration but for internal tuning (QC ranges...), with the
#: canicule thresholds under ``canicule_thresholds``. ``reference``: where IBM and the UHI take their rural
#: reference from, in order (docs/science/canicule.md). The OpenAPI schema is built from the same list.
PUBLISHED_FIELDS = ("id", "name", "insee", "departement", "timezone", "latitude", "longitude", "canicule",
                    "reference_sensors", "reference")
PUBLISHED_AS = {"canicule": "canicule_thresholds"}


def town_json(t: Town) -> dict[str, Any]:
    return {PUBLISHED_AS.get(f, f): v.model_dump() if hasattr(v := getattr(t, f), "model_dump") else v
            for f in PUBLISHED_FIELDS}


@router.get("/towns", summary="Towns served, with their canicule thresholds",
            responses={200: {"content": {"application/geo+json": {}}}})
async def list_towns(ctx: CtxDep, settings: SettingsDep, format: FormatParam = None) -> Response:
    fmt = choose_format(ctx.request, format, ["json", "geojson"])
    towns = [town_json(t) for t in settings.towns.values()]

    async def build() -> tuple[Any, int | None, str]:
        meta = ctx.meta(None)
        if fmt == "geojson":
            feats = [point_feature(t["longitude"], t["latitude"], t, t["id"]) for t in towns]
            return feature_collection(feats, meta), None, GeoJSONBytes.media_type
        return envelope(meta, towns), None, JSONBytes.media_type

    return await cached_json(ctx, 300, 3600, build)


@router.get("/towns/{town}", summary="One town", responses={404: {"description": "unknown town"}})
async def get_town(ctx: CtxDep, settings: SettingsDep,
                   town: Annotated[str, Path(pattern=TOWN_PATTERN, max_length=64, examples=["vitre"])]
                   ) -> JSONBytes:
    return JSONBytes(envelope(ctx.meta(None), town_json(known_town(settings, town))))
