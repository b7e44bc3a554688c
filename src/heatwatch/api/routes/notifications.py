"""Alert notifications, for technicians (admin bearer token): subscriptions (who is told of which alerts, by e-mail
or signed webhook, with quiet hours and a daily digest), acknowledgements (who took an alert in hand, and when: it
stops the reminders), and the deliveries, dead letters included, with a button to send one again.

The store is the kernel's (core/notifications.py, ``<data_dir>/notifications.sqlite``); analytics' dispatcher sends.
docs/alerts.md, "How an alert reaches people".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from heatwatch.core.model import SENSOR_ID_RE
from heatwatch.core.notifications import ALERT_KINDS, STATUSES, NotificationStore, SubscriptionIn
from heatwatch.core.timestamps import TimestampError, parse_timestamp_ms

from ..deps import TOWN_PATTERN, AdminDep, SettingsDep, StoreDep, known_town
from ..errors import ApiError, bad_request, not_found
from ..responses import JSONBytes
from ..store import Filter
from ..timeutil import iso_z, now_ms

router = APIRouter(prefix="/v1/notifications", tags=["notifications"], dependencies=[AdminDep],
                   responses={401: {"description": "no bearer token"},
                              403: {"description": "wrong token, or admin disabled"}})
_NO_STORE = {"Cache-Control": "no-store"}
IdPath = Annotated[int, Path(alias="id", ge=1, le=2**53)]
# Acknowledgements are listed for alerts that started within this span (an alert open longer is a forgotten one).
ACK_SPAN_MS = 400 * 86_400_000
EARLIEST_MS = 946_684_800_000  # 2000-01-01: no heatwatch alert started before


def get_store(request: Request) -> NotificationStore:
    """One store per app, opened on first use (no file until a technician uses notifications)."""
    store = getattr(request.app.state, "notifications", None)
    if store is None:
        store = request.app.state.notifications = NotificationStore.for_data_dir(request.app.state.settings.data_dir)
    return store


# Subscriptions -----------------------------------------------------------------------------------------

@router.get("/subscriptions", summary="Subscriptions (secrets shown shortened)")
async def list_subscriptions(request: Request, settings: SettingsDep,
                             town: Annotated[str | None, Query(pattern=TOWN_PATTERN, max_length=64)] = None
                             ) -> JSONBytes:
    if town is not None:
        known_town(settings, town)
    subs = await run_in_threadpool(get_store(request).subscriptions, town)
    return JSONBytes({"data": [s.public() for s in subs]}, headers=_NO_STORE)


@router.post("/subscriptions", status_code=201, summary="Subscribe an e-mail address or a webhook to a town's alerts",
             description="`kinds` (empty: every kind), quiet hours `quiet_start`–`quiet_end` in the town's local "
                         "time (messages wait until they end), `immediate` (each alert as it opens, a reminder every "
                         "`renotify_s` while unacknowledged, its end when `send_resolved`), `digest` (a daily summary "
                         "in the vigilance season). A webhook's signing `secret` is generated when absent and shown in "
                         "full only in this answer: receivers verify `webhook-signature` (Standard Webhooks).")
async def create_subscription(body: Annotated[SubscriptionIn, Body()], request: Request,
                              settings: SettingsDep) -> JSONBytes:
    known_town(settings, body.town)
    sub = await run_in_threadpool(get_store(request).add_subscription, body)
    return JSONBytes(sub.model_dump(mode="json"), status_code=201,
                     headers=_NO_STORE | {"Location": f"/v1/notifications/subscriptions/{sub.id}"})


@router.get("/subscriptions/{id}", summary="One subscription", responses={404: {"description": "unknown id"}})
async def get_subscription(sid: IdPath, request: Request) -> JSONBytes:
    sub = await run_in_threadpool(get_store(request).subscription, sid)
    if sub is None:
        raise not_found(f"no subscription {sid}")
    return JSONBytes(sub.public(), headers=_NO_STORE)


@router.put("/subscriptions/{id}", summary="Replace a subscription (a webhook keeps its secret unless one is given)",
            responses={404: {"description": "unknown id"}})
async def put_subscription(sid: IdPath, body: Annotated[SubscriptionIn, Body()], request: Request,
                           settings: SettingsDep) -> JSONBytes:
    known_town(settings, body.town)
    sub = await run_in_threadpool(get_store(request).replace_subscription, sid, body)
    if sub is None:
        raise not_found(f"no subscription {sid}")
    return JSONBytes(sub.public() | ({"secret": body.secret} if body.secret else {}), headers=_NO_STORE)


@router.delete("/subscriptions/{id}", status_code=204, summary="Delete a subscription (its deliveries stay listed)",
               responses={404: {"description": "unknown id"}})
async def delete_subscription(sid: IdPath, request: Request) -> Response:
    if not await run_in_threadpool(get_store(request).delete_subscription, sid):
        raise not_found(f"no subscription {sid}")
    return Response(status_code=204, headers=_NO_STORE)


TEST_TEXT = {
    "fr": ("[heatwatch] {town} — message d'essai",
           "Message d'essai de heatwatch pour l'abonnement {id} ({town}).\nSi vous le lisez, les alertes vous "
           "parviendront par ce canal.\n"),
    "en": ("[heatwatch] {town} — test message",
           "A heatwatch test message for subscription {id} ({town}).\nIf you read this, alerts will reach you "
           "this way.\n"),
}


@router.post("/subscriptions/{id}/test", status_code=202, summary="Send a test message to a subscription",
             description="Queued for analytics' dispatcher, which sends it at its next run (within "
                         "`HEATWATCH_NOTIFY_INTERVAL_S`), quiet hours or not; follow it in `/deliveries`.",
             responses={404: {"description": "unknown id"}})
async def test_subscription(sid: IdPath, request: Request, settings: SettingsDep) -> JSONBytes:
    store = get_store(request)
    sub = await run_in_threadpool(store.subscription, sid)
    if sub is None:
        raise not_found(f"no subscription {sid}")
    town = settings.towns[sub.town].name if sub.town in settings.towns else sub.town
    subject, text = (t.format(town=town, id=sid) for t in TEST_TEXT[sub.lang])
    did = await run_in_threadpool(store.add_delivery, sid, "test", now_ms(), 0, None, None,
                                  {"subject": subject, "text": text, "json": {"type": "test", "town": sub.town}})
    d = await run_in_threadpool(store.delivery, int(did or 0))
    return JSONBytes(_delivery_json(d), status_code=202, headers=_NO_STORE)


# Acknowledgements --------------------------------------------------------------------------------------

class AckIn(BaseModel):
    """Which alert (as ``/v1/alerts`` and the live stream give it) and who takes it in hand."""

    model_config = ConfigDict(extra="forbid")
    town: str = Field(pattern=TOWN_PATTERN, max_length=64)
    sensor: str | None = Field(default=None, pattern=f"^{SENSOR_ID_RE.pattern}$", max_length=64,
                               description="null for a town-level alert")
    kind: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description=", ".join(ALERT_KINDS))
    started: int | str = Field(description="when the alert opened: epoch ms, or ISO 8601 with an offset")
    by: str = Field(min_length=1, max_length=80, description="the technician's name, as colleagues know it")
    note: str = Field(default="", max_length=500)

    @field_validator("by")
    @classmethod
    def _named(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("by names who acknowledges: it cannot be blank")
        return v.strip()


@router.post("/acks", status_code=201, summary="Acknowledge an open alert (stops its reminders)",
             description="201 with who and when; 200 with the earlier acknowledgement when the alert was already "
                         "acknowledged (the first one stands); 404 when no such alert is open.",
             responses={200: {"description": "already acknowledged"}, 404: {"description": "no such open alert"}})
async def acknowledge(body: Annotated[AckIn, Body()], request: Request, settings: SettingsDep,
                      store: StoreDep) -> JSONBytes:
    known_town(settings, body.town)
    try:
        started = parse_timestamp_ms(body.started)
    except TimestampError:
        raise bad_request("started must be epoch milliseconds or ISO 8601 with an offset", "invalid_parameter") \
            from None
    if not EARLIEST_MS <= started <= now_ms() + 86_400_000:
        raise not_found(f"no open {body.kind} alert started at that time")
    # The alert must be open: its stored point sits exactly at `started` (the instant it opened).
    records = await store.open_alerts(Filter(started, started + 1, town=body.town, kind=body.kind))
    if not any((r.get("sensor") or None) == body.sensor for r in records):
        raise not_found(f"no open {body.kind} alert of {body.sensor or body.town} started at {iso_z(started)}")
    ack, created = await run_in_threadpool(get_store(request).ack, body.town, body.sensor, body.kind, started,
                                           body.by, now_ms(), body.note)
    return JSONBytes(_ack_json(ack), status_code=201 if created else 200, headers=_NO_STORE)


def _ack_json(ack: Any) -> dict[str, Any]:
    return {"town": ack.town, "sensor": ack.sensor, "kind": ack.kind, "started": ack.started,
            "started_at": iso_z(ack.started), "by": ack.by, "at": iso_z(ack.at), "note": ack.note}


@router.get("/acks", summary="Acknowledgements of a town's alerts, newest first")
async def list_acks(request: Request, settings: SettingsDep,
                    town: Annotated[str, Query(pattern=TOWN_PATTERN, max_length=64)],
                    limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> JSONBytes:
    known_town(settings, town)
    acks = await run_in_threadpool(get_store(request).acks, town, now_ms() - ACK_SPAN_MS, limit)
    return JSONBytes({"data": [_ack_json(a) for a in acks]}, headers=_NO_STORE)


# Deliveries and dead letters ---------------------------------------------------------------------------

@router.get("/deliveries", summary="Messages sent, waiting, skipped or dead (every attempt failed), newest first",
            description="`status=dead` is the dead-letter list: each with its attempts and last error. "
                        "`before` pages back (the smallest id of the previous page).")
async def list_deliveries(request: Request,
                          status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
                          subscription: Annotated[int | None, Query(ge=1, le=2**53)] = None,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                          before: Annotated[int | None, Query(ge=1, le=2**53)] = None) -> JSONBytes:
    rows = await run_in_threadpool(get_store(request).deliveries, status, subscription, limit, before)
    data = [_delivery_json(d) for d in rows]
    return JSONBytes({"data": data, "next_before": rows[-1].id if len(rows) == limit else None}, headers=_NO_STORE)


def _delivery_json(d: Any) -> dict[str, Any]:
    out = d.model_dump(mode="json")
    for k in ("created", "due", "sent"):
        out[k] = iso_z(out[k]) if out[k] is not None else None
    payload = out.pop("payload") or {}
    out["subject"] = payload.get("subject")
    return out


@router.post("/deliveries/{id}/retry", summary="Send a dead or skipped delivery again (at the dispatcher's next run)",
             responses={404: {"description": "unknown id"}, 409: {"description": "not dead nor skipped"}})
async def retry_delivery(did: IdPath, request: Request) -> JSONBytes:
    store = get_store(request)
    d = await run_in_threadpool(store.retry, did)
    if d is None:
        if await run_in_threadpool(store.delivery, did) is None:
            raise not_found(f"no delivery {did}")
        raise ApiError(409, "conflict", f"delivery {did} is neither dead nor skipped")
    return JSONBytes(_delivery_json(d), headers=_NO_STORE)
