"""Readings to MQTT messages in the payload formats of docs/architecture.md (MQTT topics) and docs/devices.md.

Device profile (registry ``device_profile``) to format:

* empty, ``native`` or ``json``: native JSON on ``heat/<town>/<sensor>``, one object, or an
  array of objects when an offline sensor flushes its backlog; ``ts`` in epoch ms.
* ``senml``: a SenML pack (RFC 8428) on ``senml/<town>/<sensor>``: ``bn``
  ``urn:dev:heatwatch:<sensor>:``, ``bt`` in epoch seconds, records ``temperature`` (Cel),
  ``humidity`` (%RH), ``battery`` (%EL, remaining charge in percent, as SenML defines it);
  a backlog is one pack with ``t`` relative to ``bt``.
* ``dragino-lht65``, ``milesight-em300-th``, ``elsys-ers``: a The Things Stack v3 uplink (see ``tts``),
  or with ``lorawan="chirpstack"`` a ChirpStack v4 uplink event of the same frame (see ``chirpstack``).

Every ``Message`` carries the readings a correct decoder must recover from it (values at the
precision the payload carries; ``battery_v`` only where the device reports volts; ``rssi`` of
the strongest gateway and ``ts`` = ``uplink_message.received_at`` for TTS), so a test or benchmark
can check storage against exactly what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from heatwatch.core.model import Reading, Sensor

from . import chirpstack, tts
from .options import FormatChoice, LorawanServer
from .weather import battery_percent

_NATIVE_PROFILES = {"", "native", "json"}


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    sensor: str
    town: str
    format: str           # "json", "senml", "tts" or "chirpstack"
    emit_ms: int          # simulated time at which the device sends it
    readings: tuple[Reading, ...]


def format_for(sensor: Sensor, choice: FormatChoice = "profile", lorawan: LorawanServer = "tts") -> str:
    """The payload format used for ``sensor``: its profile's (LoRaWAN ones through ``lorawan``), or the forced one."""
    if choice != "profile":
        return choice
    profile = (sensor.device_profile or "").strip().lower()
    if profile in _NATIVE_PROFILES:
        return "json"
    if profile == "senml":
        return "senml"
    if profile in tts.PROFILES:
        return lorawan
    raise ValueError(f"sensor {sensor.id}: unknown device_profile {sensor.device_profile!r}; "
                     f"known: native, senml, {', '.join(sorted(tts.PROFILES))}")


def can_backlog(fmt: str) -> bool:
    """LoRaWAN class A devices send single uplinks; only native JSON and SenML carry a backlog."""
    return fmt in ("json", "senml")


def encode(sensor: Sensor, readings: Sequence[Reading], fmt: str | None = None, *, seed: int = 42,
           step_s: int = 300, tts_tenant: str = "ttn", emit_ms: int | None = None) -> Message:
    """One message of ``sensor`` carrying ``readings`` (several only for a backlog flush)."""
    if not readings:
        raise ValueError("nothing to encode")
    fmt = fmt or format_for(sensor)
    emit = emit_ms if emit_ms is not None else readings[-1].ts_ms
    if fmt == "json":
        topic, payload, out = encode_json(sensor, readings)
    elif fmt == "senml":
        topic, payload, out = encode_senml(sensor, readings)
    elif fmt in ("tts", "chirpstack"):
        if len(readings) != 1:
            raise ValueError("a LoRaWAN uplink carries one reading")
        profile = sensor.device_profile if sensor.device_profile in tts.PROFILES else None
        if fmt == "tts":
            topic, payload, one = tts.uplink(sensor, readings[0], profile, seed=seed, step_s=step_s,
                                             tenant=tts_tenant)
        else:
            topic, payload, one = chirpstack.uplink(sensor, readings[0], profile, seed=seed, step_s=step_s)
        out = (one,)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return Message(topic, payload, sensor.id, sensor.town, fmt, emit, out)


def encode_json(sensor: Sensor, readings: Sequence[Reading]) -> tuple[str, bytes, tuple[Reading, ...]]:
    objs = []
    out = []
    for r in readings:
        obj: dict[str, object] = {"ts": r.ts_ms}
        t = _round(r.temperature, 2)
        h = _round(r.humidity, 1)
        b = _round(r.battery_v, 3)
        for name, value in (("temperature", t), ("humidity", h), ("battery_v", b)):
            if value is not None:
                obj[name] = value
        objs.append(obj)
        out.append(Reading(sensor.town, sensor.id, r.ts_ms, t, h, b))
    body: object = objs[0] if len(objs) == 1 else objs
    return f"heat/{sensor.town}/{sensor.id}", _dumps(body), tuple(out)


def senml_base_name(sensor_id: str) -> str:
    return f"urn:dev:heatwatch:{sensor_id}:"


def encode_senml(sensor: Sensor, readings: Sequence[Reading]) -> tuple[str, bytes, tuple[Reading, ...]]:
    bt_ms = readings[0].ts_ms
    records: list[dict[str, object]] = []
    out = []
    for i, r in enumerate(readings):
        fields: list[dict[str, object]] = []
        t = _round(r.temperature, 2)
        h = _round(r.humidity, 1)
        if t is not None:
            fields.append({"n": "temperature", "u": "Cel", "v": t})
        if h is not None:
            fields.append({"n": "humidity", "u": "%RH", "v": h})
        if r.battery_v is not None:
            fields.append({"n": "battery", "u": "%EL", "v": battery_percent(r.battery_v, sensor.device_profile)})
        rel = (r.ts_ms - bt_ms) / 1000
        for j, rec in enumerate(fields):
            if rel:
                rec["t"] = _seconds(rel)
            if i == 0 and j == 0:
                rec = {"bn": senml_base_name(sensor.id), "bt": _seconds(bt_ms / 1000), **rec}
            records.append(rec)
        # %EL is a charge, not a voltage: the pack gives no battery_v to store.
        out.append(Reading(sensor.town, sensor.id, r.ts_ms, t, h, None))
    return f"senml/{sensor.town}/{sensor.id}", _dumps(records), tuple(out)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _dumps(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
