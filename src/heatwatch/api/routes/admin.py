"""Admin endpoints behind ``Authorization: Bearer <HEATWATCH_ADMIN_TOKEN>``: sensor registry,
recompute requests (published on MQTT for analytics), dead letters. Without a valid token: 401/403 and
nothing changes."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from heatwatch.core.deadletters import DeadLetter, DeadLetterStore, device_of
from heatwatch.core.model import Sensor
from heatwatch.core.mqtt import make_client
from heatwatch.core.registry import Registry
from heatwatch.core.settings import ApiSettings, MqttUrl
from heatwatch.core.topics import RECOMPUTE, RECOMPUTE_DONE, range_problem, recompute_request

from .. import deadletters
from ..deps import SENSOR_PATTERN, TOWN_PATTERN, AdminDep, RegistryDep, SettingsDep, known_town
from ..errors import ApiError, bad_request, not_found
from ..responses import JSONBytes
from ..timeutil import iso_z, now_ms

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminDep],
                   responses={401: {"description": "no bearer token"}, 403: {"description": "wrong token, or admin "
                                                                               "disabled"}})
_NO_STORE = {"Cache-Control": "no-store"}
SensorId = Annotated[str, Path(pattern=SENSOR_PATTERN, max_length=64)]


def _registry(registry: Registry | None) -> Registry:
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
    """The body of ``POST /v1/admin/recompute``; what is published is a kernel
    :class:`~heatwatch.core.topics.RecomputeRequest`."""

    start: date = Field(alias="from", description="first local day to recompute")
    end: date = Field(alias="to", description="last local day to recompute (inclusive)")
    town: str | None = Field(default=None, pattern=TOWN_PATTERN, description="all towns when absent")

    model_config = {"populate_by_name": True}


BROKER_TIMEOUT_S = 5.0


def _broker_error(message: str) -> ApiError:
    return ApiError(503, "broker_unavailable", message, {"Retry-After": "30"})


def publish_recompute(settings: ApiSettings, payload: bytes, timeout_s: float = BROKER_TIMEOUT_S) -> None:
    """Publish one recompute request at QoS 1 and return only once the broker has acknowledged it."""
    publish_acked(settings.mqtt, RECOMPUTE, payload, "the recompute request", timeout_s)


def publish_acked(url: MqttUrl, topic: str, payload: bytes, what: str, timeout_s: float = BROKER_TIMEOUT_S) -> None:
    """Publish one message at QoS 1 and return only once the broker has acknowledged it (PUBACK).

    A client per request rather than one held by the app: requests are rare, and a fresh connection
    makes "202" mean the broker has the message now, not that a background client may send it later.
    Every failure (unreachable, CONNACK refused, PUBACK refused by an ACL, no answer) is a 503.
    """
    client = make_client(url, client_id="")
    client.connect_timeout = timeout_s
    connected, acked = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(_c: object, _u: object, _f: object, rc: Any, _p: object) -> None:
        outcome["connack"] = rc
        connected.set()

    def on_publish(_c: object, _u: object, _mid: int, rc: Any, _p: object) -> None:
        outcome["puback"] = rc
        acked.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    where = f"{url.host}:{url.port}"
    try:
        client.connect(url.host, url.port, keepalive=30)
    except OSError as exc:  # refused, unresolvable, timed out, TLS failure
        raise _broker_error(f"cannot reach the MQTT broker at {where} to queue {what}: {exc}") from None
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            raise _broker_error(f"the MQTT broker at {where} did not answer the connection in {timeout_s:g} s")
        if getattr(outcome["connack"], "is_failure", False):
            raise _broker_error(f"the MQTT broker at {where} refused the connection: {outcome['connack']}")
        client.publish(topic, payload, qos=1)
        if not acked.wait(timeout_s):
            raise _broker_error(f"the MQTT broker at {where} did not acknowledge {what} in {timeout_s:g} s")
        if getattr(outcome["puback"], "is_failure", False):
            # MQTT 5 brokers answer an ACL denial with PUBACK 0x87 instead of dropping silently.
            raise _broker_error(f"the MQTT broker refused {what} on {topic}: {outcome['puback']} "
                                "(the api's MQTT user needs write access to that topic)")
    finally:
        client.disconnect()
        client.loop_stop()


@router.post("/recompute", status_code=202, summary="Ask analytics to recompute a range of days",
             responses={503: {"description": "MQTT broker unreachable, or it refused the request"}},
             description=f"Publishes the request (QoS 1, JSON `{{id, town, from, to, requested_at}}`) on the MQTT "
                         f"topic `{RECOMPUTE}` and answers 202 with its `id` once the broker has "
                         "acknowledged it. The analytics service holds a persistent session on that topic, so a "
                         "request made while it is down runs when it starts; it does the same work as "
                         "`heatwatch backfill --from --to --town` and announces the outcome (`status` done, "
                         f"failed or rejected, with the same `id`) on `{RECOMPUTE_DONE}`. "
                         "503 when the broker cannot be reached or refuses the publish.")
async def recompute(req: RecomputeRequest, settings: SettingsDep) -> JSONBytes:
    problem = range_problem(req.start, req.end)
    if problem is not None:
        raise bad_request(problem[1], problem[0])
    if req.town is not None:
        known_town(settings, req.town)
    now = now_ms()
    # Time first: ids sort in request order in logs; the random part keeps concurrent ones apart.
    rid = f"{now}-{uuid.uuid4().hex[:12]}"
    body = recompute_request(rid, req.town, req.start, req.end, iso_z(now) or "")
    await run_in_threadpool(publish_recompute, settings, json.dumps(body).encode())
    return JSONBytes({"status": "queued", "topic": RECOMPUTE, **body}, status_code=202, headers=_NO_STORE)


DeviceParam = Annotated[str | None, Query(max_length=200, description="the device: sensor id (heat/, senml/ "
                                                                          "topics), TTS device id, ChirpStack DevEUI")]


@router.get("/deadletters", summary="Dead letters: rejected messages with their reason and raw bytes")
async def list_deadletters(settings: SettingsDep,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                           after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
                           reason: Annotated[str | None, Query(max_length=64)] = None,
                           device: DeviceParam = None) -> JSONBytes:
    def page(store: DeadLetterStore) -> tuple[list[DeadLetter], dict[str, int]]:
        return store.list(limit=limit, after_id=after_id, reason=reason, device=device), store.counts()

    letters, counts = await run_in_threadpool(deadletters.with_store, settings.deadletter_path, page, ([], {}))
    nxt = letters[-1].id if len(letters) == limit else None
    data = [x.to_json() | {"device": device_of(x.topic, x.payload).device} for x in letters]
    return JSONBytes({"data": data, "counts": counts, "next_after_id": nxt}, headers=_NO_STORE)


_EMPTY_SUMMARY: dict[str, Any] = {"total": 0, "by_reason": {}, "devices": 0, "by_device": []}


@router.get("/deadletters/summary", summary="Dead letters counted per reason and per device",
            description="`by_reason`: count per reason code. `by_device`: the devices with most dead letters "
                        "(`limit`, most first): network (json, senml, tts, chirpstack, influx), device (sensor id, "
                        "TTS device id or ChirpStack DevEUI, from the topic), town or application when the topic "
                        "names one, count per reason, newest time and detail. What a technician needs to fix a "
                        "device profile or a registry entry, then replay with `POST /v1/admin/deadletters/replay` "
                        "`{\"device\": ..., \"reason\": ...}`.")
async def deadletter_summary(settings: SettingsDep,
                             limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JSONBytes:
    body = await run_in_threadpool(deadletters.with_store, settings.deadletter_path,
                                   lambda st: st.summary(limit=limit), _EMPTY_SUMMARY)
    for d in body["by_device"]:
        d["last_received"] = iso_z(d.pop("last_received_ms"))
    return JSONBytes(body, headers=_NO_STORE)


class ReplayRequest(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=2**62)]] | None = Field(
        default=None, min_length=1, max_length=1000, description="these dead letters; or select by reason/device")
    reason: str | None = Field(default=None, max_length=64, description="every dead letter of this reason ...")
    device: str | None = Field(default=None, max_length=200, description="... and/or of this device")
    limit: int = Field(default=1000, ge=1, le=1000, description="at most this many, oldest first, for a selection")


@router.post("/deadletters/replay", summary="Republish dead letters to MQTT for the ingester to decode again",
             description="By `ids`, or every dead letter (oldest first, up to `limit`) of a `reason` and/or a "
                         "`device` — e.g. after adding the device profile an `unknown_profile` or `no_measurement` "
                         "needed. Each message goes back on its original topic with its original bytes; the ones "
                         "the broker acknowledged are deleted here, and one that fails again is dead-lettered anew. "
                         "A letter whose payload the store kept truncated is not replayed (`truncated`). 403 when "
                         "the broker refuses the api's replay account. `more` is true when the selection holds "
                         "more than `limit`: call again.",
             responses={503: {"description": "broker unreachable"}})
async def replay(req: ReplayRequest, settings: SettingsDep) -> JSONBytes:
    path = settings.deadletter_path
    if req.ids is not None:
        if req.reason is not None or req.device is not None:
            raise bad_request("give either ids or a reason/device selection, not both")
        ids = req.ids
        letters = await run_in_threadpool(deadletters.with_store, path, lambda st: st.fetch(ids), [])
        missing = sorted(set(ids) - {x.id for x in letters})
    elif req.reason is not None or req.device is not None:
        letters = await run_in_threadpool(
            deadletters.with_store, path,
            lambda st: st.list(limit=req.limit + 1, reason=req.reason, device=req.device), [])
        missing = []
    else:
        raise bad_request("give ids, or a reason and/or a device to replay")
    more = req.ids is None and len(letters) > req.limit
    letters = letters[:req.limit] if more else letters
    truncated = sorted(x.id for x in letters if x.truncated and x.id is not None)
    letters = [x for x in letters if not x.truncated]
    done, refused = (await run_in_threadpool(deadletters.republish, settings.replay_mqtt, letters)
                     if letters else ([], []))
    if refused and not done:
        raise ApiError(403, "replay_not_permitted",
                       "the broker refused to let the api publish on sensor topics: give the api the replay account "
                       "(HEATWATCH_REPLAY_MQTT_USERNAME, HEATWATCH_REPLAY_MQTT_PASSWORD_FILE; deploy/mosquitto.acl)")
    if done:
        await run_in_threadpool(deadletters.with_store, path, lambda st: st.delete(done), None)
    return JSONBytes({"replayed": done, "missing": missing,
                      "failed": sorted({x.id for x in letters} - set(done)), "truncated": truncated, "more": more},
                     headers=_NO_STORE)
