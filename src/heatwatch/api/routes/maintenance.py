"""The maintenance view: per sensor the battery (trend and days left), the radio link, last seen, dead letters, QC
history and visits; the sensors to visit this week, in JSON or CSV; the visit log (docs/maintenance.md).

Reading is public open data (battery and signal are no one's personal data; residents' sites are blurred as on every
public output, core/public.py). With the technicians' bearer token (``HEATWATCH_ADMIN_TOKEN``) the answers also show
who visited and their notes, and visits can be recorded or deleted.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import statistics
import time
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from heatwatch.core.maintenance import BREAK_ACTIONS, Visit, VisitIn, VisitStore
from heatwatch.core.model import Sensor, Town
from heatwatch.core.public import public_fields
from heatwatch.core.topics import range_problem, recompute_request

from .. import deadletters
from ..deps import SENSOR_PATTERN, TOWN_PATTERN, AdminDep, CtxDep, SepParam, SettingsDep, known_town, require_admin
from ..errors import ApiError, bad_request, not_found
from ..maintenance import (
    DAYS_LEFT_VISIT,
    REASONS,
    Battery,
    battery_estimate,
    device_key,
    last_battery_change,
    priority_key,
    qc_history,
    reasons_to_visit,
)
from ..responses import JSONBytes
from ..timeutil import iso_z
from .admin import publish_recompute

router = APIRouter(prefix="/v1/maintenance", tags=["maintenance"])
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {401: {"description": "no bearer token"},
                                                    403: {"description": "wrong token, or admin disabled"}}
DaysParam = Annotated[int, Query(ge=7, le=90, description="days of history read (battery fit, trends, QC history)")]
MaintTown = Annotated[str, Query(pattern=TOWN_PATTERN, max_length=64, description="town id", examples=["vitre"])]
SensorPath = Annotated[str, Path(pattern=SENSOR_PATTERN, max_length=64, description="sensor id")]
CSV_COLUMNS = ("rank", "sensor", "name", "town", "latitude", "longitude", "position_blurred", "network", "reasons",
               "reason_codes", "battery_days_left", "battery_last", "battery_unit", "last_seen", "silent_h",
               "last_visit", "last_visit_actions")


def technician(request: Request, settings: SettingsDep) -> bool:
    """True with a valid technician token; False without a token; a wrong token is refused (403), never ignored.

    Read from the header directly rather than declared as a security scheme: the reads are public, and the
    OpenAPI document must not say they need a token."""
    header = request.headers.get("authorization")
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    require_admin(settings, HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip()))
    return True


TechDep = Annotated[bool, Depends(technician)]


def visit_store(request: Request) -> VisitStore:
    """One store per app, opened on first use (a deployment that never records a visit has no file)."""
    store = getattr(request.app.state, "visits", None)
    if store is None:
        store = request.app.state.visits = VisitStore.for_data_dir(request.app.state.settings.data_dir)
    return store


def _headers(tech: bool) -> dict[str, str]:
    # A technician's answer holds names and notes: never stored by a shared cache.
    return {"Cache-Control": "no-store" if tech else "no-cache", "Vary": "Authorization"}


def _registry_sensors(ctx: Any, town: str) -> list[Sensor]:
    if ctx.registry is None:
        raise ApiError(503, "registry_unavailable", "the sensor registry could not be opened on this server")
    return [s for s in ctx.registry.list(town=town, include_retired=False)]


async def _view(ctx: Any, request: Request, town: Town, sensors: list[Sensor], days: int, tech: bool,
                detail: bool = False) -> list[dict[str, Any]]:
    """One document per sensor: what the list and the detail show."""
    tz = ZoneInfo(town.timezone)
    now = int(time.time() * 1000)
    start = now - days * 86_400_000
    one = sensors[0].id if detail and len(sensors) == 1 else None
    store = ctx.store
    health, flagged, latest = await asyncio.gather(
        store.device_health(town.id, start, now + 60_000, sensor=one),
        store.flagged_hours(town.id, start, now + 60_000, sensor=one),
        store.latest(town.id))
    visits = await run_in_threadpool(visit_store(request).list, town=town.id)
    letters = await run_in_threadpool(deadletters.with_store, ctx.settings.deadletter_path,
                                      lambda st: st.summary(limit=1000), {"by_device": []})
    thresholds = ctx.settings.alert_thresholds
    offline_s = ctx.settings.stale_after_s
    trend: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(health, key=lambda r: int(r["time"])):
        trend.setdefault(str(r.get("sensor")), []).append(r)
    history = qc_history(flagged, tz)
    last_seen = {str(r.get("sensor")): r for r in latest}
    per_visit: dict[str, list[Visit]] = {}
    for v in visits:
        per_visit.setdefault(v.sensor, []).append(v)
    by_device: dict[str, dict[str, Any]] = {}
    for d in letters.get("by_device", []):
        by_device.setdefault(device_key(d["device"]), {"total": 0, "by_reason": {}})
        entry = by_device[device_key(d["device"])]
        entry["total"] += d["count"]
        for reason, n in d["reasons"].items():
            entry["by_reason"][reason] = entry["by_reason"].get(reason, 0) + n
    today = datetime.fromtimestamp(now / 1000, tz).date()
    out = []
    for s in sensors:
        points = trend.get(s.id, [])
        mine = per_visit.get(s.id, [])
        battery = battery_estimate(points, thresholds, now, since_ms=last_battery_change(mine))
        seen = last_seen.get(s.id)
        last_ms = int(seen["time"]) if seen else None
        silent_s = (now - last_ms) / 1000 if last_ms is not None else None
        hist = history.get(s.id, {})
        last_visit = mine[-1] if mine else None
        reasons = reasons_to_visit(silent_s=silent_s, offline_s=offline_s, battery=battery, history=hist,
                                   today=today, last_visit=last_visit, tz=tz)
        dl = {"total": 0, "by_reason": {}}
        for key in {device_key(s.id), device_key(s.mqtt_identity or "")} - {""}:
            found = by_device.get(key)
            if found:
                dl["total"] += found["total"]
                for reason, n in found["by_reason"].items():
                    dl["by_reason"][reason] = dl["by_reason"].get(reason, 0) + n
        doc: dict[str, Any] = {
            "sensor": s.id, "town": s.town, **public_fields(s), "owner_kind": s.owner, "installed": s.installed,
            "last_seen": iso_z(last_ms), "silent_s": None if silent_s is None else int(silent_s),
            "battery": battery.to_json() | {"latest": _latest_battery(seen, battery)},
            "radio": _radio(points, seen, now),
            "qc": _qc_summary(hist, today),
            "dead_letters": dl,
            "last_visit": _visit_doc(last_visit, tech),
            "visits": len(mine),
            "reasons": reasons,
        }
        if detail:
            doc["series"] = [{"time": iso_z(int(p["time"])), "battery_v": p.get("battery_v"),
                              "battery_pct": p.get("battery_pct"), "rssi": p.get("rssi"), "snr": p.get("snr"),
                              "readings": p.get("n")}
                             for p in points]
            doc["qc_history"] = _qc_days(hist, mine, tz)
            doc["visit_log"] = [_visit_doc(v, tech) for v in reversed(mine)]
        doc["battery"]["last_time"] = iso_z(doc["battery"].pop("last_time_ms"))
        doc["battery"]["since"] = iso_z(doc["battery"].pop("since_ms"))
        out.append(doc)
    return out


def _latest_battery(seen: dict[str, Any] | None, battery: Battery) -> Any:
    if seen is None or battery.unit is None:
        return None
    return seen.get("battery_v" if battery.unit == "V" else "battery_pct")


def _radio(points: list[dict[str, Any]], seen: dict[str, Any] | None, now: int) -> dict[str, Any]:
    """The signal the network server reported (LoRaWAN uplinks: RSSI and SNR at the gateway that heard it best): the
    newest, the median of the last 7 days and of the 7 before (a falling link: a gateway gone, foliage, a sensor
    knocked over)."""
    week = 7 * 86_400_000
    def med(field: str, since: int, until: int) -> float | None:
        xs = [p[field] for p in points if p.get(field) is not None and since <= int(p["time"]) < until]
        return round(statistics.median(xs), 1) if xs else None

    out: dict[str, Any] = {"unit": "dBm", "snr_unit": "dB"}
    for field in ("rssi", "snr"):
        out[f"{field}_last"] = seen.get(field) if seen else None
        out[f"{field}_median_7d"] = med(field, now - week, now + week)
        out[f"{field}_median_prev_7d"] = med(field, now - 2 * week, now - week)
    return out


def _qc_summary(hist: dict[str, dict[str, int]], today: date) -> dict[str, Any]:
    recent = {d: c for d, c in hist.items() if (today - date.fromisoformat(d)).days < 7}
    flags: dict[str, int] = {}
    for c in recent.values():
        for name, n in c.items():
            if name != "any":
                flags[name] = flags.get(name, 0) + n
    return {"days_flagged_7d": len(recent), "hours_flagged_7d": sum(c.get("any", 0) for c in recent.values()),
            "flag_hours_7d": dict(sorted(flags.items()))}


def _qc_days(hist: dict[str, dict[str, int]], visits: list[Visit], tz: ZoneInfo) -> list[dict[str, Any]]:
    """Flagged hours per local day and flag, with the visits of each day (a cleaning shows where it helped)."""
    visit_days: dict[str, list[str]] = {}
    for v in visits:
        day = datetime.fromtimestamp(v.at_ms / 1000, tz).date().isoformat()
        visit_days.setdefault(day, []).extend(str(a) for a in v.actions)
    days = sorted(set(hist) | set(visit_days))
    return [{"day": d, "hours_flagged": hist.get(d, {}).get("any", 0),
             "flags": {k: n for k, n in hist.get(d, {}).items() if k != "any"},
             "visit": visit_days.get(d)} for d in days]


def _visit_doc(v: Visit | None, tech: bool) -> dict[str, Any] | None:
    if v is None:
        return None
    return v.private() if tech else v.public()


@router.get("", summary="Maintenance view of a town's sensors",
            responses={404: {"description": "unknown town"}, 503: {"description": "registry unavailable"}},
            description="Per sensor: last seen, battery (unit V or %, whichever the device reports; a Theil–Sen fit "
                        "over the last three weeks since the battery was last changed gives the days left to the "
                        "low-battery alert's threshold), radio (RSSI: last, median of the last 7 days and of the 7 "
                        "before), QC flags of the last 7 days, dead letters by reason, the last visit, and the "
                        f"reasons to visit it ({', '.join(REASONS)}). `to_visit`: the sensors with a reason, most "
                        "urgent first. Residents' sensors are placed on the privacy grid; who visited and the "
                        "notes are shown to technicians only (bearer token).")
async def maintenance(ctx: CtxDep, request: Request, town: MaintTown, tech: TechDep, days: DaysParam = 28
                      ) -> JSONBytes:
    t = known_town(ctx.settings, town)
    docs = await _view(ctx, request, t, _registry_sensors(ctx, town), days, tech)
    to_visit = sorted((d for d in docs if d["reasons"]), key=priority_key)
    meta = ctx.meta(int(time.time() * 1000), technician=tech, thresholds=_thresholds(ctx), reasons=REASONS)
    return JSONBytes({"meta": meta, "data": docs, "to_visit": [d["sensor"] for d in to_visit]}, headers=_headers(tech))


def _thresholds(ctx: Any) -> dict[str, Any]:
    th = ctx.settings.alert_thresholds
    return {"battery_v": th.battery_v, "battery_pct": th.battery_pct, "offline_s": ctx.settings.stale_after_s,
            "battery_days_left_visit": DAYS_LEFT_VISIT}


@router.get("/to-visit", summary="Sensors to visit this week, most urgent first (JSON or CSV)",
            responses={200: {"content": {"application/json": {}, "text/csv": {}}},
                       404: {"description": "unknown town"}},
            description="The sensors with a reason to visit (silent, battery low or within 14 days of the threshold, "
                        "drift, level shift, persistent QC flags since the last visit), ranked by their most urgent "
                        "reason, then the number of reasons, then the battery's days left. `format=csv` for a "
                        "spreadsheet or a round sheet (sep=; for French spreadsheets).")
async def to_visit(ctx: CtxDep, request: Request, town: MaintTown, tech: TechDep, days: DaysParam = 28,
                   format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
                   sep: SepParam = ",") -> Response:
    t = known_town(ctx.settings, town)
    docs = await _view(ctx, request, t, _registry_sensors(ctx, town), days, tech)
    ranked = sorted((d for d in docs if d["reasons"]), key=priority_key)
    rows = [_row(i + 1, d) for i, d in enumerate(ranked)]
    if format == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, delimiter=sep, lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)
        day = datetime.now(UTC).date().isoformat()
        return Response(buf.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8", headers=_headers(tech) | {
            "Content-Disposition": f'attachment; filename="heatwatch-{town}-to-visit-{day}.csv"'})
    meta = ctx.meta(int(time.time() * 1000), technician=tech, thresholds=_thresholds(ctx), reasons=REASONS)
    return JSONBytes({"meta": meta, "data": rows}, headers=_headers(tech))


def _row(rank: int, d: dict[str, Any]) -> dict[str, Any]:
    visit = d["last_visit"] or {}
    silent = d["silent_s"]
    return {"rank": rank, "sensor": d["sensor"], "name": d["name"], "town": d["town"], "latitude": d["latitude"],
            "longitude": d["longitude"], "position_blurred": d["position_blurred"], "network": d["network"],
            "reasons": "; ".join(r["text"] for r in d["reasons"]),
            "reason_codes": " ".join(r["code"] for r in d["reasons"]),
            "battery_days_left": d["battery"]["days_left"], "battery_last": d["battery"]["last"],
            "battery_unit": d["battery"]["unit"], "last_seen": d["last_seen"],
            "silent_h": None if silent is None else round(silent / 3600, 1),
            "last_visit": visit.get("at"), "last_visit_actions": " ".join(visit.get("actions", []))}


# The visit log ------------------------------------------------------------------------------------------------------


@router.get("/visits", summary="The visit log (who and notes: technicians only)",
            responses={404: {"description": "unknown town"}})
async def list_visits(ctx: CtxDep, request: Request, tech: TechDep,
                      town: Annotated[str | None, Query(pattern=TOWN_PATTERN, max_length=64)] = None,
                      sensor: Annotated[str | None, Query(pattern=SENSOR_PATTERN, max_length=64)] = None) -> JSONBytes:
    if town is not None:
        known_town(ctx.settings, town)
    visits = await run_in_threadpool(visit_store(request).list, town=town, sensor=sensor)
    data = [_visit_doc(v, tech) for v in reversed(visits)]
    return JSONBytes({"meta": ctx.meta(None, technician=tech, returned=len(data)), "data": data},
                     headers=_headers(tech))


@router.post("/visits", status_code=201, dependencies=[AdminDep], responses=ADMIN_RESPONSES | {
    400: {"description": "unknown sensor"}}, summary="Record a visit (technicians)",
    description="`{sensor, at, who, actions, note}`; `at` is when the visit took place (ISO 8601 with its offset), "
                "`actions` any of cleaned, moved, replaced, recalibrated, battery, inspected, other. A visit that "
                f"{', '.join(sorted(BREAK_ACTIONS))} the sensor starts a new series: quality control restarts its "
                "baselines at the visit and intervention effects do not compare across it; the api asks analytics "
                "to recompute the town from the visit's day (`recompute` in the answer; when the broker cannot be "
                "reached the visit is recorded and applies at the next recompute of those days).")
async def record_visit(ctx: CtxDep, request: Request, item: Annotated[VisitIn, Body()]) -> JSONBytes:
    if ctx.registry is None:
        raise ApiError(503, "registry_unavailable", "the sensor registry could not be opened on this server")
    sensor = ctx.registry.get(item.sensor)
    if sensor is None:
        raise bad_request(f"sensor {item.sensor!r} is not in the registry", "unknown_sensor")
    town = known_town(ctx.settings, sensor.town)
    saved = await run_in_threadpool(visit_store(request).add, town.id, item)
    recompute = await _queue_recompute(ctx, town, saved) if saved.breaks_series else None
    return JSONBytes(saved.private() | {"recompute": recompute}, status_code=201,
                     headers={"Cache-Control": "no-store", "Location": f"/v1/maintenance/visits/{saved.id}"})


async def _queue_recompute(ctx: Any, town: Town, visit: Visit) -> dict[str, Any]:
    """Ask analytics to recompute the town from the visit's day to today, so QC's verdicts restart there."""
    tz = ZoneInfo(town.timezone)
    first = datetime.fromtimestamp(visit.at_ms / 1000, tz).date()
    last = datetime.now(tz).date()
    problem = range_problem(first, max(first, last))
    if problem is not None:
        return {"queued": False, "reason": problem[1]}
    now = int(time.time() * 1000)
    rid = f"{now}-{uuid.uuid4().hex[:12]}"
    body = recompute_request(rid, town.id, first, max(first, last), iso_z(now) or "")
    try:
        await run_in_threadpool(publish_recompute, ctx.settings, json.dumps(body).encode())
    except ApiError as exc:
        return {"queued": False, "reason": exc.message, "from": first.isoformat()}
    return {"queued": True, "id": rid, "from": first.isoformat(), "to": max(first, last).isoformat()}


@router.delete("/visits/{id}", dependencies=[AdminDep], responses=ADMIN_RESPONSES | {
    404: {"description": "unknown id"}}, summary="Delete a visit recorded by mistake (technicians)")
async def delete_visit(request: Request, rid: Annotated[int, Path(alias="id", ge=1, le=2**53)]) -> JSONBytes:
    store = visit_store(request)
    visit = await run_in_threadpool(store.get, rid)
    if visit is None:
        raise not_found(f"no visit {rid}")
    await run_in_threadpool(store.delete, rid)
    return JSONBytes({"deleted": visit.private()}, headers={"Cache-Control": "no-store"})


@router.get("/{sensor_id}", summary="Maintenance view of one sensor: trends, QC history, visit log",
            responses={404: {"description": "unknown sensor"}})
async def sensor_view(ctx: CtxDep, request: Request, sensor_id: SensorPath, tech: TechDep, days: DaysParam = 28
                      ) -> JSONBytes:
    sensor = sensor_id
    if ctx.registry is None:
        raise ApiError(503, "registry_unavailable", "the sensor registry could not be opened on this server")
    s = ctx.registry.get(sensor)
    if s is None or s.retired:
        raise not_found(f"no active sensor {sensor!r} in the registry")
    town = known_town(ctx.settings, s.town)
    [doc] = await _view(ctx, request, town, [s], days, tech, detail=True)
    meta = ctx.meta(int(time.time() * 1000), technician=tech, thresholds=_thresholds(ctx), reasons=REASONS)
    return JSONBytes({"meta": meta, "data": doc}, headers=_headers(tech))

