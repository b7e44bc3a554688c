"""Admin endpoints behind ``Authorization: Bearer <HEATWATCH_ADMIN_TOKEN>``: sensor registry,
recompute requests, dead letters. Without a valid token: 401/403 and nothing changes."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from heatwatch.core.model import Sensor

from .. import deadletters
from ..deps import SENSOR_PATTERN, TOWN_PATTERN, AdminDep, RegistryDep, SettingsDep, known_town
from ..errors import ApiError, bad_request, not_found
from ..responses import JSONBytes

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminDep],
                   responses={401: {"description": "no bearer token"}, 403: {"description": "wrong token, or admin "
                                                                               "disabled"}})
_NO_STORE = {"Cache-Control": "no-store"}
SensorId = Annotated[str, Path(pattern=SENSOR_PATTERN, max_length=64)]


def _registry(registry: Any) -> Any:
    if registry is None:
        raise ApiError(503, "registry_unavailable", "the sensor registry could not be opened on this server")
    return registry


@router.get("/sensors", summary="Every sensor in the registry, retired ones included")
async def admin_list(registry: RegistryDep, settings: SettingsDep,
                     town: Annotated[str | None, Query(pattern=TOWN_PATTERN, max_length=64)] = None) -> JSONBytes:
    if town is not None:
        known_town(settings, town)
    sensors = _registry(registry).list(town=town, include_retired=True)
    return JSONBytes({"data": [s.model_dump(mode="json") for s in sensors]}, headers=_NO_STORE)


@router.post("/sensors", status_code=201, summary="Create a sensor",
             responses={409: {"description": "already exists"}})
async def create_sensor(sensor: Annotated[Sensor, Body()], registry: RegistryDep, settings: SettingsDep) -> JSONBytes:
    reg = _registry(registry)
    known_town(settings, sensor.town)
    if reg.get(sensor.id) is not None:
        raise ApiError(409, "conflict", f"sensor {sensor.id!r} already exists: use PUT /v1/admin/sensors/{sensor.id}")
    reg.upsert(sensor)
    return JSONBytes(reg.get(sensor.id).model_dump(mode="json"), status_code=201, headers=_NO_STORE)


@router.put("/sensors/{sensor_id}", summary="Create or replace a sensor")
async def put_sensor(sensor_id: SensorId, sensor: Annotated[Sensor, Body()], registry: RegistryDep,
                     settings: SettingsDep) -> JSONBytes:
    reg = _registry(registry)
    if sensor.id != sensor_id:
        raise bad_request(f"the body's id {sensor.id!r} differs from the path's {sensor_id!r}")
    known_town(settings, sensor.town)
    reg.upsert(sensor)
    return JSONBytes(reg.get(sensor_id).model_dump(mode="json"), headers=_NO_STORE)


@router.delete("/sensors/{sensor_id}", summary="Retire a sensor (kept, marked retired; its data stays)")
async def retire_sensor(sensor_id: SensorId, registry: RegistryDep) -> JSONBytes:
    reg = _registry(registry)
    if reg.get(sensor_id) is None:
        raise not_found(f"no sensor {sensor_id!r} in the registry")
    reg.retire(sensor_id)
    return JSONBytes(reg.get(sensor_id).model_dump(mode="json"), headers=_NO_STORE)


class RecomputeRequest(BaseModel):
    start: date = Field(alias="from", description="first local day to recompute")
    end: date = Field(alias="to", description="last local day to recompute (inclusive)")
    town: str | None = Field(default=None, pattern=TOWN_PATTERN, description="all towns when absent")

    model_config = {"populate_by_name": True}


@router.post("/recompute", status_code=202, summary="Ask analytics to recompute a range of days",
             description="Writes a request file under `<data_dir>/recompute/` for the analytics service to pick up "
                         "(the same work as `heatwatch backfill --from --to --town`).")
async def recompute(req: RecomputeRequest, settings: SettingsDep) -> JSONBytes:
    if req.end < req.start:
        raise bad_request("to must not be before from", "invalid_range")
    if (req.end - req.start).days > 3660:
        raise bad_request("at most 10 years per recompute request", "range_too_long")
    if req.town is not None:
        known_town(settings, req.town)
    folder = settings.data_dir / "recompute"
    folder.mkdir(parents=True, exist_ok=True)
    rid = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}"
    body = {"id": rid, "from": req.start.isoformat(), "to": req.end.isoformat(), "town": req.town,
            "requested_ms": int(time.time() * 1000)}
    tmp = folder / f".{rid}.json.tmp"
    tmp.write_text(json.dumps(body))
    tmp.rename(folder / f"{rid}.json")  # atomic: the analytics side never sees a half-written file
    return JSONBytes({"status": "queued", **body}, status_code=202, headers=_NO_STORE)


@router.get("/deadletters", summary="Dead letters: rejected messages with their reason and raw bytes")
async def list_deadletters(settings: SettingsDep,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                           after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
                           reason: Annotated[str | None, Query(max_length=64)] = None) -> JSONBytes:
    letters, counts = await run_in_threadpool(deadletters.list_letters, deadletters.store_path(settings),
                                              limit=limit, after_id=after_id, reason=reason)
    nxt = letters[-1].id if len(letters) == limit else None
    return JSONBytes({"data": [x.to_json() for x in letters], "counts": counts, "next_after_id": nxt},
                     headers=_NO_STORE)


class ReplayRequest(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(min_length=1, max_length=1000)


@router.post("/deadletters/replay", summary="Republish dead letters to MQTT for the ingester to decode again",
             responses={503: {"description": "broker unreachable"}})
async def replay(req: ReplayRequest, settings: SettingsDep) -> JSONBytes:
    path = deadletters.store_path(settings)
    letters = await run_in_threadpool(deadletters.fetch, path, sorted(set(req.ids)))
    missing = sorted(set(req.ids) - {x.id for x in letters})
    done = await run_in_threadpool(deadletters.republish, settings, letters) if letters else []
    if done:
        await run_in_threadpool(deadletters.delete, path, done)
    return JSONBytes({"replayed": done, "missing": missing,
                      "failed": sorted({x.id for x in letters} - set(done))}, headers=_NO_STORE)
