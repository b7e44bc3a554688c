"""Every MQTT topic heatwatch publishes or consumes, with its message model: the one definition both
sides use. The services never import each other; they meet on these topics and in InfluxDB.

========================================  ======================  =====  ==========================================
topic                                     from → to               QoS    message
========================================  ======================  =====  ==========================================
``heat/<town>/<sensor>``                  sensors → ingest        1      native JSON reading(s) (``ingest/decoders``)
``senml/<town>/<sensor>``                 sensors → ingest        1      SenML pack (RFC 8428)
``v3/<app>/devices/<device>/up``          The Things Stack →      1      TTS v3 uplink
                                          ingest
``application/<app>/device/<DevEUI>/      ChirpStack → ingest     1      ChirpStack uplink event (v4, and v3's
event/up`` and ``.../rx``                                                 JSON), ``ingest/decoders/chirpstack.py``
``heatwatch/live/<town>``                 ingest → api            0      :class:`LiveBatch`: the newest *stored*
                                                                         reading per sensor of a batch
``heat/alerts/<town>``                    analytics → api, any    1      :class:`AlertEvent`: an alert opened or
                                                                         closed
``heatwatch/recompute``                   api → analytics         1      :class:`RecomputeRequest`
``heatwatch/recompute/done``              analytics → anyone      1      :class:`RecomputeDone`
========================================  ======================  =====  ==========================================

``heat/alerts/<town>`` matches the readings filter ``heat/+/+``: ingest acknowledges and drops it
(``HEATWATCH_IGNORE_FILTERS``). heatwatch's own topics other than alerts live under ``heatwatch/`` so
that no sensor filter ever sees them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable
from datetime import date, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .model import RH_MAX, RH_MIN, T_MAX, T_MIN, Reading, valid_sensor_id
from .timestamps import TimestampError, parse_timestamp_ms

# Sensor inputs (what ingest subscribes to by default, with the decoder of each).
NATIVE_FILTER = "heat/+/+"
SENML_FILTER = "senml/+/+"
TTS_FILTER = "v3/+/devices/+/up"
CHIRPSTACK_FILTER = "application/+/device/+/event/up"
CHIRPSTACK_V3_FILTER = "application/+/device/+/rx"

ALERTS = "heat/alerts/{town}"
ALERTS_FILTER = "heat/alerts/+"
ALERTS_ALL = "heat/alerts/#"
LIVE = "heatwatch/live/{town}"
LIVE_FILTER = "heatwatch/live/+"
RECOMPUTE = "heatwatch/recompute"
RECOMPUTE_DONE = "heatwatch/recompute/done"

#: A reading may be at most this far ahead of the receiving clock (ingest validation, live view).
FUTURE_MS = 5 * 60_000


def alerts_topic(town: str) -> str:
    return ALERTS.format(town=town)


def live_topic(town: str) -> str:
    return LIVE.format(town=town)


def last_level(topic: str) -> str:
    """The town of ``heat/alerts/<town>`` and ``heatwatch/live/<town>``."""
    return topic.rsplit("/", 1)[-1]


# heatwatch/live/<town> ------------------------------------------------------------------------------

LIVE_MAX_PAYLOAD = 4 * 1024 * 1024  # one message carries a whole ingest batch (one reading per sensor)


class LiveReading(BaseModel):
    sensor: str
    ts: int = Field(description="epoch ms UTC")
    temperature: float | None = Field(default=None, description="°C")
    humidity: float | None = Field(default=None, description="%RH")
    battery_v: float | None = Field(default=None, description="V")
    battery_pct: float | None = Field(default=None, description="% of charge remaining")
    rssi: float | None = Field(default=None, description="dBm")
    source: str | None = Field(default=None, description="payload format: json, senml, tts or chirpstack")


class LiveBatch(BaseModel):
    """Published by ingest once a batch is durable, in one shape whatever the sensors' payload format:
    the live view never shows what was not stored, and never decodes sensor payloads itself."""

    town: str
    readings: list[LiveReading]


def encode_live(town: str, readings: Iterable[Reading]) -> bytes:
    """The :class:`LiveBatch` of a town's readings (ingest's hot path: orjson, no model instances)."""
    return orjson.dumps({"town": town, "readings": [
        {"sensor": r.sensor, "ts": r.ts_ms, "temperature": r.temperature, "humidity": r.humidity,
         "battery_v": r.battery_v, "battery_pct": r.battery_pct, "rssi": r.rssi, "source": r.source}
        for r in readings]})


def _number(value: Any, lo: float, hi: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) and lo <= v <= hi else None


def _text(value: Any, limit: int = 32) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def parse_live(payload: bytes, town: str, received_ms: int) -> list[tuple[str, dict[str, Any]]] | None:
    """``(sensor, reading)`` pairs of a :class:`LiveBatch` message, newest per sensor, or None when the
    message is not one. Ingest validated and stored these; the checks here only keep a stray
    publisher from putting junk (or a far-future time, which would pin a marker) on the map."""
    if len(payload) > LIVE_MAX_PAYLOAD:
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("town", town) != town or not isinstance(doc.get("readings"), list):
        return None
    best: dict[str, dict[str, Any]] = {}
    for item in doc["readings"]:
        if not isinstance(item, dict):
            continue
        sensor = item.get("sensor")
        ts = item.get("ts")
        if not isinstance(sensor, str) or not valid_sensor_id(sensor):
            continue
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts <= 0:
            continue
        ts = int(ts)
        if ts > received_ms + FUTURE_MS:
            continue
        t = _number(item.get("temperature"), T_MIN, T_MAX)
        rh = _number(item.get("humidity"), RH_MIN, RH_MAX)
        if t is None and rh is None:
            continue  # a battery-only reading: nothing to show on the map, and it must not blank a marker
        if sensor not in best or ts > best[sensor]["ts"]:
            best[sensor] = {"ts": ts, "temperature": t, "humidity": rh,
                            "battery_v": _number(item.get("battery_v"), 0.0, 100.0),
                            "battery_pct": _number(item.get("battery_pct"), 0.0, 100.0),
                            "rssi": _number(item.get("rssi"), -300.0, 100.0), "source": _text(item.get("source"))}
    return list(best.items())


# heat/alerts/<town> ---------------------------------------------------------------------------------

ALERT_MAX_PAYLOAD = 256 * 1024
_ALERT_FIELDS = 32  # keys of an alert payload passed through; bounds what a publisher makes us store
_ALERT_TEXT = 1000


class AlertEvent(BaseModel):
    """One alert opening or closing, published by analytics after the ``alert`` point is stored (so a
    crash in between loses the notification, never the alert)."""

    event: Literal["open", "close"]
    town: str
    sensor: str | None = Field(description="null for a town-level alert (canicule)")
    kind: str = Field(description="temperature, heat_index, uhi_night, canicule, offline, battery or qc")
    value: float = Field(description="the worst value seen while open")
    threshold: float
    message: str
    state: Literal["open", "closed"]
    started: str | None = Field(description="ISO 8601 UTC with milliseconds")
    ended: str | None = Field(description="ISO 8601 UTC with milliseconds; null while open")
    ts: int = Field(description="epoch ms of the evaluation that produced the event")

    def encode(self) -> bytes:
        return json.dumps(self.model_dump(), ensure_ascii=False).encode()


def parse_alert(payload: bytes, received_ms: int) -> list[dict[str, Any]]:
    """Alert objects from an alert payload (one object or an array). Only scalar members are kept,
    strings shortened: a consumer's buffer must stay bounded whatever a publisher sends. ``ts`` is the
    event's own time when it parses (:func:`~heatwatch.core.timestamps.parse_timestamp_ms`), else the
    time of receipt."""
    if len(payload) > ALERT_MAX_PAYLOAD:
        return []
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return []
    out = []
    for item in doc if isinstance(doc, list) else [doc]:
        if not isinstance(item, dict):
            continue
        alert: dict[str, Any] = {}
        for key, value in list(item.items())[:_ALERT_FIELDS]:
            if isinstance(value, str):
                alert[str(key)[:64]] = value[:_ALERT_TEXT]
            elif value is None or isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
                alert[str(key)[:64]] = value
        raw_ts = item.get("time", item.get("ts"))
        try:
            alert["ts"] = parse_timestamp_ms(raw_ts) if raw_ts is not None else received_ms
        except TimestampError:
            alert["ts"] = received_ms
        if alert["ts"] <= 0:
            alert["ts"] = received_ms
        out.append(alert)
    return out


# heatwatch/recompute and heatwatch/recompute/done ------------------------------------------------------

#: At most this many days from ``from`` to ``to`` (so 3661 days, both ends included): ten years.
MAX_RECOMPUTE_DAYS = 3660
RECOMPUTE_MAX_PAYLOAD = 4096
RECOMPUTE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class RecomputeRequest(BaseModel):
    """Recompute the local days ``from``…``to`` (inclusive) of ``town`` (null: every town): exactly what
    ``heatwatch backfill`` does. Strict JSON types; dates are ISO strings."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore", strict=True)

    id: str = Field(pattern=RECOMPUTE_ID_PATTERN)
    town: str | None = None
    first: date = Field(alias="from")
    last: date = Field(alias="to")
    requested_at: datetime | None = None
    #: Sensors of ``town`` whose every stored point (raw readings, hourly, daily, alerts, last value) is deleted
    #: before the range is recomputed: a contributor's withdrawal (docs/citizens.md).
    erase: list[str] = Field(default_factory=list, max_length=20)

    def describe(self) -> dict[str, Any]:
        out = {"id": self.id, "town": self.town, "from": self.first.isoformat(), "to": self.last.isoformat()}
        if self.erase:
            out["erase"] = list(self.erase)
        return out


def recompute_request(rid: str, town: str | None, first: date, last: date, requested_at: str,
                      erase: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON object of a :class:`RecomputeRequest`, as the api publishes it."""
    body: dict[str, Any] = {"id": rid, "town": town, "from": first.isoformat(), "to": last.isoformat(),
                            "requested_at": requested_at}
    if erase:
        body["erase"] = list(erase)
    return body


def range_problem(first: date, last: date) -> tuple[str, str] | None:
    """``(code, message)`` when ``first``…``last`` is not a range one request may ask for."""
    if last < first:
        return "invalid_range", f"to {last} is before from {first}"
    if (last - first).days > MAX_RECOMPUTE_DAYS:
        return "range_too_long", (f"{(last - first).days + 1} days asked, at most {MAX_RECOMPUTE_DAYS + 1} "
                                  "(ten years) per recompute request")
    return None


class InvalidRequest(ValueError):
    def __init__(self, reason: str, request_id: str | None = None) -> None:
        super().__init__(reason)
        self.request_id = request_id


def parse_request(payload: bytes, towns: Collection[str]) -> RecomputeRequest:
    """Validate one message; :class:`InvalidRequest` says why it cannot be run."""
    if len(payload) > RECOMPUTE_MAX_PAYLOAD:
        raise InvalidRequest(f"payload of {len(payload)} bytes, at most {RECOMPUTE_MAX_PAYLOAD}")
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("not a JSON object")
    # The id, when it is a usable one, lets the requester match the rejection to its request.
    rid = raw.get("id") if isinstance(raw.get("id"), str) and len(raw["id"]) <= 128 else None
    try:
        req = RecomputeRequest.model_validate_json(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidRequest(problems, rid) from None
    if req.town is not None and req.town not in towns:
        raise InvalidRequest(f"unknown town {req.town!r}; configured: {', '.join(sorted(towns))}", req.id)
    if req.erase and req.town is None:
        raise InvalidRequest("erase names sensors of one town: give the town", req.id)
    bad = [s for s in req.erase if not valid_sensor_id(s)]
    if bad:
        raise InvalidRequest(f"erase: invalid sensor id(s) {bad[:3]}", req.id)
    problem = range_problem(req.first, req.last)
    if problem is not None:
        raise InvalidRequest(problem[1], req.id)
    return req


class RecomputeDone(BaseModel):
    """The outcome of one request: ``done``, ``failed`` (still failing after retries) or ``rejected``
    (invalid; only published when the request had a usable id). Members not set are left out."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    status: Literal["done", "failed", "rejected"]
    town: str | None = None
    first: str | None = Field(default=None, alias="from")
    last: str | None = Field(default=None, alias="to")
    readings: int | None = None
    points: int | None = None
    #: points deleted per measurement, for a request that erased sensors
    erased: dict[str, int] | None = None
    seconds: float | None = None
    error: str | None = None
    finished_at: str | None = None

    def encode(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_unset=True).encode()
