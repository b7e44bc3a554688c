"""Towns served by this instance, from the towns configuration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from heatwatch.core.model import Town

from ..deps import TOWN_PATTERN, CtxDep, FormatParam, SettingsDep, known_town
from ..formats import GeoJSONBytes, JSONBytes, choose_format, envelope, feature_collection, point_feature
from ..respond import cached_json

router = APIRouter(prefix="/v1", tags=["towns"])


def town_json(t: Town) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "insee": t.insee,
        "departement": t.departement,
        "timezone": t.timezone,
        "latitude": t.latitude,
        "longitude": t.longitude,
        "canicule_thresholds": t.canicule.model_dump(),
        "reference_sensors": t.reference_sensors,
        # Where IBM and the UHI take their rural reference from, in order (docs/science/canicule.md).
        "reference": t.reference.model_dump(),
    }


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
