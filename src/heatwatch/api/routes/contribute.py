"""Participatory science: residents register a sensor, publish, see their data and leave (docs/citizens.md).

* ``POST /v1/contribute`` (public, a few per client and hour): registration with explicit consent; answers the
  sensor id, a publishing token (shown once), an MQTT account scoped to the sensor's own topic (shown once) and
  where to push readings over HTTP.
* ``/v1/contribute/me…`` (``Authorization: Bearer <token>``): the contributor's private view, HTTP push, GDPR
  export, withdrawal.

The api never writes InfluxDB: an HTTP push is published at QoS 1 on the sensor's own topic
``heat/<town>/<sensor>`` (through the sensor-writing account, ``HEATWATCH_REPLAY_MQTT_*``) and ingest stores it
like any reading; a withdrawal rides on a recompute request naming the sensor to erase, which analytics runs.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from heatwatch.core.contributors import (
    CHARTER_VERSION,
    LICENCES,
    PURPOSE,
    SITE_CLASS,
    Contribution,
    ContributorStore,
    Registration,
    new_sensor_id,
    new_token,
)
from heatwatch.core.datasets import DAILY, HOURLY, READING
from heatwatch.core.errors import RegistryError
from heatwatch.core.model import Sensor
from heatwatch.core.privacy import public_position
from heatwatch.core.topics import recompute_request
from heatwatch.core.trust import trust_of

from ..deps import CtxDep, SettingsDep
from ..errors import ApiError, bad_request
from ..limits import client_key
from ..respond import csv_bytes
from ..responses import JSONBytes
from ..store import Filter
from ..timeutil import iso_z, now_ms
from .admin import publish_acked

router = APIRouter(prefix="/v1/contribute", tags=["contribute"])
_bearer = HTTPBearer(auto_error=False, description="the publishing token given at registration")
_NO_STORE = {"Cache-Control": "no-store"}
MAX_PUSH_BYTES = 64 * 1024
MAX_PUSH_READINGS = 500
#: What a contributor's export holds at most per dataset (a year of 1-minute readings is 525,600 rows).
MAX_EXPORT_ROWS = 600_000


def store_of(request: Request) -> ContributorStore:
    return ContributorStore.for_data_dir(request.app.state.settings.data_dir)


class _PerHour:
    """A sliding hour of registrations per client (the endpoint is public and each one makes a sensor)."""

    def __init__(self) -> None:
        self.seen: dict[str, deque[float]] = {}

    def take(self, client: str, limit: int) -> float:
        now = time.monotonic()
        q = self.seen.setdefault(client, deque())
        while q and now - q[0] > 3600:
            q.popleft()
        if len(q) >= limit:
            return 3600 - (now - q[0])
        q.append(now)
        if len(self.seen) > 10_000:  # forget the idlest clients
            for k in [k for k, v in self.seen.items() if not v][:5000]:
                del self.seen[k]
        return 0.0


_limiter = _PerHour()


def retention_text(raw_retention: str) -> str:
    raw = "kept without time limit" if raw_retention == "INF" else f"kept {raw_retention}"
    return (f"raw readings {raw}; hourly and daily aggregates kept without time limit; everything about the sensor "
            "erased on withdrawal (personal data at once, readings and aggregates within the next analytics run)")


def consent_terms(settings: Any) -> dict[str, Any]:
    return {"purpose": PURPOSE, "licences": LICENCES, "retention": retention_text(settings.raw_retention),
            "charter_version": CHARTER_VERSION, "charter": "docs/charter.md", "privacy_grid_m": settings.privacy_grid_m}


def contributor(request: Request,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Contribution:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "send the publishing token: 'Authorization: Bearer <token>'",
                       {"WWW-Authenticate": 'Bearer realm="heatwatch-contributor"'})
    found = store_of(request).by_token(credentials.credentials)
    if found is None:
        raise ApiError(403, "forbidden", "unknown or revoked token")
    return found


ContributorDep = Annotated[Contribution, Depends(contributor)]


@router.post("", status_code=201, summary="Register a sensor (participatory science)",
             responses={400: {"description": "invalid registration, or consent not given"},
                        429: {"description": "too many registrations from this client in the last hour"}},
             description=(
                 "A resident registers a sensor: name or pseudonym and contact (never published), device model, "
                 "exact position (used for analysis only: every public output shows it snapped to a grid of "
                 "`privacy_grid_m`), height, setting (street, courtyard, garden, balcony, roof, park, other) and "
                 "shade, and gives explicit consent (`consent: true`) to the charter of `charter_version` with "
                 "the chosen licence (etalab-2.0 or odbl-1.0). The answer holds the sensor id, a publishing token "
                 "and an MQTT account scoped to `heat/<town>/<sensor>`: both shown once only. The sensor enters "
                 "as provisional (docs/citizens.md)."))
async def register(request: Request, ctx: CtxDep, reg: Annotated[Registration, Body()]) -> JSONBytes:
    settings = ctx.settings
    if not ctx.config.contribute_enabled:
        raise ApiError(403, "contribute_disabled", "registrations are closed on this server")
    if reg.town not in settings.towns:
        raise bad_request(f"unknown town {reg.town!r}; known: {', '.join(sorted(settings.towns))}", "unknown_town")
    if ctx.registry is None:
        raise ApiError(503, "registry_unavailable", "the sensor registry cannot be opened, retry later")
    wait = _limiter.take(client_key(request.scope), ctx.config.contribute_per_hour)
    if wait:
        raise ApiError(429, "too_many_registrations", f"at most {ctx.config.contribute_per_hour} registrations "
                       "per hour from one client", {"Retry-After": str(int(wait) + 1)})
    today = datetime.now(UTC).date()
    sensor_id = new_sensor_id(reg.town)
    token = new_token()
    mqtt_password = new_token() if ctx.config.contribute_mqtt else None
    from heatwatch.stack.mqttauth import password_hash

    sensor = Sensor(id=sensor_id, town=reg.town, name=f"citizen sensor ({reg.setting.value})",
                    latitude=reg.latitude, longitude=reg.longitude, site_class=SITE_CLASS[reg.setting],
                    height_m=reg.height_m, owner="citizen", installed=today, device_profile="native",
                    trust="provisional", trust_since=today,
                    licence="ODbL-1.0" if reg.licence == "odbl-1.0" else None, provenance="contributor")
    retention = retention_text(settings.raw_retention)

    def save() -> None:
        ctx.registry.upsert(sensor)  # type: ignore[union-attr]
        try:
            store_of(request).add(sensor_id, reg, token, password_hash(mqtt_password) if mqtt_password else None,
                                  retention)
        except Exception:
            ctx.registry.retire(sensor_id)  # type: ignore[union-attr]
            raise

    try:
        await run_in_threadpool(save)
    except RegistryError as exc:
        raise bad_request(str(exc), "invalid_registration") from exc
    lat, lon, _ = public_position(sensor)
    base = ctx.base_url
    mqtt_url = ctx.config.contribute_mqtt_public_url or f"mqtt://{settings.mqtt.host}:{settings.mqtt.port}"
    body = {
        "sensor": sensor_id, "town": reg.town, "trust": "provisional", "token": token,
        "mqtt": ({"url": mqtt_url, "username": f"{reg.town}/{sensor_id}", "password": mqtt_password,
                  "topic": f"heat/{reg.town}/{sensor_id}",
                  "payload": '{"ts": 1718000000, "temperature": 23.4, "humidity": 55.0}',
                  "active": "once the broker has taken the account: within seconds under heatwatch up, else at the "
                            "operator's next `heatwatch contributors mqtt-sync` (docs/citizens.md)"}
                 if mqtt_password else None),
        "push_url": f"{base}/v1/contribute/me/readings", "private_view": f"{base}/v1/contribute/me",
        "public_position": {"latitude": lat, "longitude": lon, "grid_m": settings.privacy_grid_m},
        "consent": {**consent_terms(settings), "licence": reg.licence, "given": iso_z(now_ms())},
        "note": "keep the token and the MQTT password: they are shown once and stored hashed",
    }
    return JSONBytes(body, status_code=201, headers=_NO_STORE)


async def _recent(ctx: Any, c: Contribution, hours: int = 24) -> dict[str, Any]:
    now = now_ms()
    flt = Filter(now - hours * 3600_000, now + 300_000, town=c.town, sensor=c.sensor)
    readings, _ = await ctx.store.page(READING, flt, 200)
    hourly, _ = await ctx.store.page(HOURLY, flt, hours + 2)
    cols_r, cols_h = ["time", *READING.tag_keys, *READING.fields], ["time", *HOURLY.tag_keys, *HOURLY.fields]
    return {"readings": [dict(zip(cols_r, r, strict=False)) | {"time": iso_z(r[0])} for r in readings[-50:]],
            "hourly": [dict(zip(cols_h, r, strict=False)) | {"time": iso_z(r[0])} for r in hourly]}


#: What every token-authenticated route may answer before it looks at the request itself.
_TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no token"}, 403: {"description": "unknown or revoked token"}}


@router.get("/me", summary="The contributor's private view of their sensor", responses=_TOKEN_RESPONSES)
async def me(ctx: CtxDep, c: ContributorDep) -> JSONBytes:
    s = ctx.registry.get(c.sensor) if ctx.registry is not None else None
    recent = await _recent(ctx, c)
    flagged = [h for h in recent["hourly"] if h.get("qc")]
    lat, lon, _ = public_position(s) if s else (None, None, True)
    body = {
        "contribution": c.model_dump(),
        "trust": trust_of(s), "trust_since": s.trust_since.isoformat() if s and s.trust_since else None,
        "last_readings": recent["readings"], "hourly_last_24h": recent["hourly"],
        "qc": {"hours": len(recent["hourly"]), "flagged_hours": len(flagged),
               "flags_explained": "docs/science/qc.md (crowd profile: CrowdQC+ town-wide z-score, radiation, "
                                  "monthly checks)"},
        "how_your_data_is_used": {
            "published": "readings, hourly and daily aggregates under your sensor id, in open data "
                         f"({c.consent.get('licence')}), marked citizen and provisional/confirmed",
            "position_shown": {"latitude": lat, "longitude": lon, "grid_m": ctx.settings.privacy_grid_m},
            "never_published": ["your name or pseudonym", "your contact", "your exact position",
                                "your site description"],
            "town_indices": "counted once confirmed, with a weight (provisional: shown, not counted)",
            "consent": c.consent,
        },
    }
    return JSONBytes(body, headers=_NO_STORE)


@router.post("/me/readings", status_code=202, summary="Push readings over HTTP (devices without MQTT)",
             responses={**_TOKEN_RESPONSES, 400: {"description": "not a JSON reading or array of readings"},
                        413: {"description": "too large a push"},
                        503: {"description": "the broker could not take them; retry"}},
             description="Body: native JSON, one reading or an array (`{\"ts\": 1718000000, \"temperature\": "
                         "23.4, \"humidity\": 55.0}`). Published at QoS 1 on the sensor's own topic: ingest "
                         "validates and stores them as it does MQTT readings (a rejected one is dead-lettered).")
async def push(request: Request, ctx: CtxDep, c: ContributorDep) -> JSONBytes:
    raw = await request.body()
    if len(raw) > MAX_PUSH_BYTES:
        raise ApiError(413, "payload_too_large", f"at most {MAX_PUSH_BYTES} bytes per push")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"not JSON: {exc}", "invalid_payload") from None
    items = doc if isinstance(doc, list) else [doc]
    if not items or len(items) > MAX_PUSH_READINGS or not all(isinstance(i, dict) for i in items):
        raise bad_request(f"a reading object or an array of 1–{MAX_PUSH_READINGS} of them", "invalid_payload")
    for i in items:
        if "sensor" in i and i["sensor"] != c.sensor:
            raise bad_request("a reading names another sensor than the token's", "invalid_payload")
    topic = f"heat/{c.town}/{c.sensor}"
    await run_in_threadpool(publish_acked, ctx.settings.replay_mqtt, topic, raw, "the readings")
    return JSONBytes({"status": "queued", "topic": topic, "readings": len(items)}, status_code=202,
                     headers=_NO_STORE)


@router.get("/me/export", summary="Export everything heatwatch holds about the contributor's sensor (GDPR)",
            responses={**_TOKEN_RESPONSES, 413: {"description": "more rows than one export holds"}},
            description="The registration, the consent and every stored reading, hourly and daily aggregate of "
                        "the sensor: `format=json` (one document) or `csv` (the readings).")
async def export(ctx: CtxDep, c: ContributorDep, format: str = "json") -> Response:
    if format not in ("json", "csv"):
        raise bad_request("format is json or csv", "invalid_parameter")
    # From the registration, or the sensor's installation day when the registry says it is earlier (a device
    # that sent buffered readings, a sensor imported before it was contributed), a day early for time zones.
    first = date.fromisoformat(c.created[:10])
    s = ctx.registry.get(c.sensor) if ctx.registry is not None else None
    if s is not None and s.installed is not None:
        first = min(first, s.installed)
    start = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1000) - 86_400_000
    flt = Filter(start, now_ms() + 300_000, town=c.town, sensor=c.sensor)
    out: dict[str, list[dict[str, Any]]] = {}
    for ds in (READING, HOURLY, DAILY):
        cols = ["time", *ds.tag_keys, *ds.fields]
        rows: list[dict[str, Any]] = []
        async for page in ctx.store.iter_pages(ds, flt, ctx.config.stream_page_rows):
            rows += [dict(zip(cols, r, strict=False)) | {"time": iso_z(r[0])} for r in page]
            if len(rows) > MAX_EXPORT_ROWS:
                raise ApiError(413, "export_too_large", "more rows than one export holds: ask the town")
        out[ds.measurement] = rows
    name = f"heatwatch-{c.sensor}"
    if format == "csv":
        body = csv_bytes(["time", *READING.tag_keys, *READING.fields], out[READING.measurement], ",")
        return Response(body, media_type="text/csv; charset=utf-8",
                        headers={**_NO_STORE, "Content-Disposition": f'attachment; filename="{name}-readings.csv"'})
    doc = {"contribution": c.model_dump(), "erasures": store_of(ctx.request).erasures(c.sensor), **out}
    return JSONBytes(doc, headers={**_NO_STORE, "Content-Disposition": f'attachment; filename="{name}.json"'})


@router.post("/me/withdraw", status_code=202, summary="Withdraw: stop, erase the readings, delete personal data",
             responses={**_TOKEN_RESPONSES,
                        503: {"description": "the erasure could not be queued; retry (the token still works)"}},
             description="Revokes the token and the MQTT account, retires the sensor, blanks the personal data "
                         "and asks analytics (a recompute request naming the sensor to erase) to delete every "
                         "reading, hourly and daily aggregate, alert and last value of the sensor and to recompute "
                         "the town's indices over the contribution's days. The erasure is logged; its id is "
                         "returned.")
async def withdraw(ctx: CtxDep, c: ContributorDep, settings: SettingsDep) -> JSONBytes:
    rid = f"{now_ms()}-{uuid.uuid4().hex[:12]}"
    first = date.fromisoformat(c.created[:10])
    s = ctx.registry.get(c.sensor) if ctx.registry is not None else None
    if s is not None and s.installed is not None:
        first = min(first, s.installed) - timedelta(days=1)
    last = datetime.now(UTC).date()
    body = recompute_request(rid, c.town, first, last, iso_z(now_ms()) or "", erase=[c.sensor])
    store = store_of(ctx.request)
    # Queue the erasure first: if the broker cannot take it, nothing is revoked and the contributor may retry.
    await asyncio.to_thread(store.log_erasure, rid, c.sensor, c.town, "withdrawal by the contributor")
    from .admin import publish_recompute

    await run_in_threadpool(publish_recompute, settings, json.dumps(body).encode())

    def revoke() -> None:
        store.withdraw(c.sensor)
        if ctx.registry is not None and ctx.registry.get(c.sensor) is not None:
            ctx.registry.retire(c.sensor)

    await asyncio.to_thread(revoke)
    return JSONBytes({"status": "withdrawn", "sensor": c.sensor, "erasure": rid,
                      "erases": ["reading", "hourly", "daily", "alert", "last_reading"],
                      "recomputes": {"town": c.town, "from": first.isoformat(), "to": last.isoformat()}},
                     status_code=202, headers=_NO_STORE)


