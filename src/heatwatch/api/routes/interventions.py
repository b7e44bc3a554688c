"""Interventions (tree planting, de-sealing, shading, water features) and their measured effect.

Recording and deleting need the admin bearer token; reading and the effect are public open data.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from heatwatch.core.interventions import Intervention, InterventionIn, InterventionStore

from ..deps import TOWN_PATTERN, AdminDep, CtxDep, RegistryDep, SettingsDep, known_town
from ..errors import ApiError, bad_request, not_found
from ..formats import envelope
from ..insights.effect import EffectWindow, default_controls, evaluate
from ..insights.queries import last_update_ms
from ..respond import cached_json
from ..responses import JSONBytes
from ..sensorinfo import list_sensors

router = APIRouter(prefix="/v1", tags=["interventions"])
_NO_STORE = {"Cache-Control": "no-store"}
IdPath = Annotated[int, Path(alias="id", ge=1, le=2**53, description="intervention id")]
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {401: {"description": "no bearer token"},
                                                    403: {"description": "wrong token, or admin disabled"}}


def get_store(request: Request) -> InterventionStore:
    """One store per app, opened on first use: the lifespan stays untouched, and a deployment that
    never records an intervention never creates the file."""
    store = getattr(request.app.state, "interventions", None)
    if store is None:
        store = request.app.state.interventions = InterventionStore.for_data_dir(request.app.state.settings.data_dir)
    return store


def _known_sensors(registry: Any, town: str, ids: list[str], what: str) -> None:
    if registry is None:
        return  # no registry on this server: ids were checked against the pattern, trust them
    for sid in ids:
        s = registry.get(sid)
        if s is None:
            raise bad_request(f"{what} {sid!r} is not in the sensor registry", "unknown_sensor")
        if s.town != town:
            raise bad_request(f"{what} {sid!r} belongs to {s.town!r}, not {town!r}", "wrong_town")


@router.post("/interventions", status_code=201, dependencies=[AdminDep], responses=ADMIN_RESPONSES,
             summary="Record an intervention (admin)",
             description="A technician records works near some sensors: site, sensors concerned, the local day the "
                         "works ended, kind. Optional `controls` fix the control sensors of the effect evaluation.")
async def create(item: Annotated[InterventionIn, Body()], request: Request, settings: SettingsDep,
                 registry: RegistryDep) -> JSONBytes:
    known_town(settings, item.town)
    _known_sensors(registry, item.town, item.sensors, "sensor")
    _known_sensors(registry, item.town, item.controls or [], "control sensor")
    refs = set(settings.towns[item.town].reference_sensors)
    if refs & set(item.sensors):
        raise bad_request("a rural reference sensor cannot be treated: UHI is measured against it", "invalid_sensor")
    saved = await run_in_threadpool(get_store(request).add, item)
    return JSONBytes(saved.model_dump(mode="json"), status_code=201, headers=_NO_STORE | {
        "Location": f"/v1/interventions/{saved.id}"})


@router.get("/interventions", summary="Recorded interventions", responses={404: {"description": "unknown town"}})
async def list_interventions(ctx: CtxDep, request: Request,
                             town: Annotated[str | None, Query(pattern=TOWN_PATTERN, max_length=64)] = None
                             ) -> JSONBytes:
    if town is not None:
        known_town(ctx.settings, town)
    items = await run_in_threadpool(get_store(request).list, town)
    data = [i.model_dump(mode="json") | {"effect": f"/v1/interventions/{i.id}/effect"} for i in items]
    return JSONBytes(envelope(ctx.meta(None, returned=len(data)), data), headers={"Cache-Control": "no-cache"})


async def _get(request: Request, rid: int) -> Intervention:
    item = await run_in_threadpool(get_store(request).get, rid)
    if item is None:
        raise not_found(f"no intervention {rid}")
    return item


@router.get("/interventions/{id}", summary="One intervention", responses={404: {"description": "unknown id"}})
async def get_intervention(ctx: CtxDep, request: Request, rid: IdPath) -> JSONBytes:
    item = await _get(request, rid)
    return JSONBytes(envelope(ctx.meta(None), item.model_dump(mode="json")), headers={"Cache-Control": "no-cache"})


@router.delete("/interventions/{id}", dependencies=[AdminDep], summary="Delete an intervention (admin)",
               responses=ADMIN_RESPONSES | {404: {"description": "unknown id"}})
async def delete_intervention(ctx: CtxDep, request: Request, rid: IdPath) -> JSONBytes:
    item = await _get(request, rid)
    await run_in_threadpool(get_store(request).delete, rid)
    ctx.cache.clear()  # its cached effect must not outlive it
    return JSONBytes({"deleted": item.model_dump(mode="json")}, headers=_NO_STORE)


@router.get(
    "/interventions/{id}/effect",
    summary="Measured effect of an intervention (difference-in-differences)",
    responses={404: {"description": "unknown id"}, 503: {"description": "database unavailable"}},
    description=(
        "Before/after comparison of the treated sensors against control sensors, on **nocturnal UHI** (daily "
        "`uhi_night_max`) and on **hot hours** (daily `hours_ge_30`): difference-in-differences with each sensor "
        "centred on its own 'before' mean, and a `1 − alpha` confidence interval from batch means (3 consecutive "
        "blocks of days per period, t with 4 degrees of freedom), which stays honest under day-to-day weather "
        "persistence. The works day itself is left out. Each outcome has `status` `ok` or `insufficient_data` "
        "with the reasons: at least 21 usable days on each side, 3 control sensors and 1 treated sensor, each "
        "with data on half the days of each period. Sample sizes: days before/after, sensors, sensor-days. "
        "Default controls: the town's other placed, non-reference sensors not concerned by another intervention "
        "in the window."
    ),
)
async def effect(ctx: CtxDep, request: Request, registry: RegistryDep, rid: IdPath,
                 before_days: Annotated[int, Query(ge=21, le=366, description="days before the works")] = 60,
                 after_days: Annotated[int, Query(ge=21, le=366, description="days after the works")] = 60,
                 alpha: Annotated[float, Query(ge=0.01, le=0.2, description="1 − confidence level")] = 0.05
                 ) -> Response:
    item = await _get(request, rid)
    town = known_town(ctx.settings, item.town)
    window = EffectWindow(before_days, after_days, alpha)

    async def build() -> tuple[Any, int | None, str]:
        if item.controls is not None:
            controls, source = list(item.controls), "recorded with the intervention"
        else:
            if registry is None:
                raise ApiError(503, "registry_unavailable", "no sensor registry on this server to choose control "
                                                            "sensors from; record the intervention with `controls`")
            b0, _, _, a1 = window.spans(item.date)
            others = [o for o in await run_in_threadpool(get_store(request).list, item.town) if o.id != item.id]
            controls = default_controls(town, list_sensors(registry, town.id), item.sensors, others, b0, a1)
            source = "default: other placed, non-reference sensors of the town"
        result = await evaluate(ctx.store.client, town, item, controls, window, controls_source=source)
        last = await last_update_ms(ctx.store.client, town.id)
        return envelope(ctx.meta(last), result), last, "application/json"

    return await cached_json(ctx, ctx.config.cache_ttl_agg_s, 300, build)
