"""Interventions (tree planting, de-sealing, shading, water features) and their measured effect.

Recording, amending and deleting need the admin bearer token; reading and the effect are public open
data. The effect's science: docs/science/interventions.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from heatwatch.core.interventions import Intervention, InterventionIn, InterventionKind, InterventionStore
from heatwatch.core.maintenance import breaks_or_empty
from heatwatch.core.model import valid_sensor_id
from heatwatch.core.registry import Registry
from heatwatch.core.settings import ApiSettings

from ..deps import TOWN_PATTERN, AdminDep, CtxDep, RegistryDep, SettingsDep, known_town
from ..errors import ApiError, bad_request, not_found
from ..formats import envelope
from ..insights.effect import EffectWindow, evaluate, match_controls
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


def _known_sensors(registry: Registry | None, town: str, ids: list[str], what: str) -> None:
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
             description="A technician records works near some sensors: site, sensors concerned, the works' first "
                         "and last local days (`start`, `end`; `date` alone, the older form, means one-day works "
                         "ending that day; `start` alone, works still in progress), kind. Every day of the works is "
                         "left out of the effect evaluation. Optional `controls` fix the control sensors.")
async def create(item: Annotated[InterventionIn, Body()], request: Request, settings: SettingsDep,
                 registry: RegistryDep) -> JSONBytes:
    _check(item, settings, registry)
    saved = await run_in_threadpool(get_store(request).add, item)
    return JSONBytes(saved.model_dump(mode="json"), status_code=201, headers=_NO_STORE | {
        "Location": f"/v1/interventions/{saved.id}"})


def _check(item: InterventionIn, settings: ApiSettings, registry: Registry | None) -> None:
    known_town(settings, item.town)
    _known_sensors(registry, item.town, item.sensors, "sensor")
    _known_sensors(registry, item.town, item.controls or [], "control sensor")
    refs = set(settings.towns[item.town].reference_sensors)
    if refs & set(item.sensors):
        raise bad_request("a rural reference sensor cannot be treated: UHI is measured against it", "invalid_sensor")


class InterventionPatch(BaseModel):
    """Fields to change; the others keep their recorded value (the town cannot change)."""

    model_config = ConfigDict(extra="forbid")
    site: str | None = Field(default=None, min_length=1, max_length=200)
    sensors: list[str] | None = Field(default=None, min_length=1, max_length=50)
    controls: list[str] | None = Field(default=None, max_length=200)
    start: dt.date | None = None
    end: dt.date | None = None
    date: dt.date | None = None
    kind: InterventionKind | None = None
    note: str | None = Field(default=None, max_length=2000)
    canopy_points: float | None = Field(default=None, ge=-100, le=100)
    sealed_points: float | None = Field(default=None, ge=-100, le=100)


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


@router.patch("/interventions/{id}", dependencies=[AdminDep], responses=ADMIN_RESPONSES | {
    404: {"description": "unknown id"}}, summary="Amend an intervention (admin)",
    description="Change some fields of a recorded intervention, typically `end` once works recorded with `start` "
                "only are finished. `null` clears `end` or `controls`.")
async def amend(rid: IdPath, patch: Annotated[InterventionPatch, Body()], request: Request, ctx: CtxDep,
                registry: RegistryDep) -> JSONBytes:
    item = await _get(request, rid)
    changes = patch.model_dump(exclude_unset=True)
    if "date" in changes and "end" not in changes:
        changes["end"] = changes["date"]
    merged = item.model_dump(exclude={"id", "created", "date"}) | {k: v for k, v in changes.items() if k != "date"}
    try:
        new = InterventionIn(**merged)
    except ValidationError as exc:
        raise ApiError(422, "invalid_parameter", "; ".join(e["msg"] for e in exc.errors())) from exc
    _check(new, ctx.settings, registry)
    saved = await run_in_threadpool(get_store(request).replace, rid, new)
    if saved is None:
        raise not_found(f"no intervention {rid}")
    ctx.cache.clear()  # its cached effect changes with it
    return JSONBytes(saved.model_dump(mode="json"), headers=_NO_STORE)


@router.delete("/interventions/{id}", dependencies=[AdminDep], summary="Delete an intervention (admin)",
               responses=ADMIN_RESPONSES | {404: {"description": "unknown id"}})
async def delete_intervention(ctx: CtxDep, request: Request, rid: IdPath) -> JSONBytes:
    item = await _get(request, rid)
    await run_in_threadpool(get_store(request).delete, rid)
    ctx.cache.clear()  # its cached effect must not outlive it
    return JSONBytes({"deleted": item.model_dump(mode="json")}, headers=_NO_STORE)


@router.get(
    "/interventions/{id}/effect",
    summary="Measured effect of an intervention (weather-adjusted difference-in-differences)",
    responses={404: {"description": "unknown id"}, 503: {"description": "database unavailable"}},
    description=(
        "Before/after comparison of the treated sensors against **matched control sensors**, on **nocturnal UHI** "
        "(daily `uhi_night_max`) and on **hot hours** (daily `hours_ge_30`). The daily treated−control contrast "
        "(each sensor centred on its own 'before' mean) is regressed on the period and on the town reference's "
        "daily Tn and Tx, so that a warmer, calmer or cooler summer after the works is not taken for an effect; "
        "the `1 − alpha` interval is a t interval with a cluster-robust (CR2) standard error over 3 consecutive "
        "blocks of days per period, honest under day-to-day weather persistence. A **placebo test** runs the "
        "same estimator on the 'before' period alone (first half against second half) and reports "
        "`parallel_trends`: `not_rejected`, `rejected` or `untested`. Every day of the works (`start`…`end`) is "
        "left out.\n\n"
        "Windows: `window=days` (default), `before_days` before the works and `after_days` after them; "
        "`window=seasons`, the heat-wave season (1 June – 15 September) before the works against the one after "
        "(works in winter compared summer to summer).\n\n"
        "Controls: `controls` in the request, else those recorded with the intervention, else the town's other "
        "sensors of the treated sensors' Local Climate Zone (at least 3), else of their site class — placed, not "
        "a reference, not treated by another intervention in the window. Each outcome has `status` `ok` or "
        "`insufficient_data` with the reasons: at least 21 usable days on each side, 3 control sensors and 1 "
        "treated sensor, each with data on half the days of each period. Without reference weather the estimate "
        "is given unadjusted and says so (`weather_adjusted` false). Validation on seeded simulations (false "
        "discoveries, power): docs/science/interventions.md."
    ),
)
async def effect(ctx: CtxDep, request: Request, registry: RegistryDep, rid: IdPath,
                 before_days: Annotated[int, Query(ge=21, le=366, description="days before the works")] = 60,
                 after_days: Annotated[int, Query(ge=21, le=366, description="days after the works")] = 60,
                 alpha: Annotated[float, Query(ge=0.01, le=0.2, description="1 − confidence level")] = 0.05,
                 window: Annotated[Literal["days", "seasons"], Query(
                     description="days: before_days/after_days around the works; seasons: the heat-wave season "
                                 "before against the one after")] = "days",
                 controls: Annotated[str | None, Query(max_length=4000, description="comma-separated control "
                                                       "sensor ids, instead of the recorded or matched ones")] = None,
                 ) -> Response:
    item = await _get(request, rid)
    town = known_town(ctx.settings, item.town)
    span = EffectWindow(before_days, after_days, alpha, window)
    chosen = _parse_controls(controls, item, registry)

    async def build() -> tuple[Any, int | None, str]:
        sensors = list_sensors(registry, town.id) if registry is not None else []
        refs = list(dict.fromkeys([*town.reference_sensors, *(s.id for s in sensors if s.is_reference)]))
        if chosen is not None:
            picked, source = chosen, "chosen in the request"
        elif item.controls is not None:
            picked, source = list(item.controls), "recorded with the intervention"
        else:
            if registry is None:
                raise ApiError(503, "registry_unavailable", "no sensor registry on this server to match control "
                                                            "sensors from; record the intervention with `controls`")
            start, end = item.works
            b0, _, _, a1 = span.spans(start, end or start)
            others = [o for o in await run_in_threadpool(get_store(request).list, item.town) if o.id != item.id]
            picked, source = match_controls(town, sensors, item.sensors, others, b0, a1)
        async with ctx.slots.hold(ctx.client):  # panel regressions: one of the shared expensive slots
            breaks = await run_in_threadpool(breaks_or_empty, ctx.settings.data_dir, town.id)
            result = await evaluate(ctx.store.client, town, item, picked, span, controls_source=source,
                                    references=refs, breaks=breaks)
        last = await last_update_ms(ctx.store.client, town.id)
        return envelope(ctx.meta(last), result), last, "application/json"

    return await cached_json(ctx, ctx.config.cache_ttl_agg_s, 300, build)


def _parse_controls(text: str | None, item: Intervention, registry: Registry | None) -> list[str] | None:
    if text is None:
        return None
    ids = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in ids if not valid_sensor_id(x)]
    if not ids or bad:
        which = f" (invalid: {', '.join(bad)})" if bad else ""
        raise bad_request(f"controls: give comma-separated sensor ids{which}", "invalid_parameter")
    if set(ids) & set(item.sensors):
        raise bad_request("a sensor cannot be both treated and control: "
                          + ", ".join(sorted(set(ids) & set(item.sensors))), "invalid_parameter")
    _known_sensors(registry, item.town, ids, "control sensor")
    return list(dict.fromkeys(ids))
