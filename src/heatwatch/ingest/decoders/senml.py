"""SenML JSON (RFC 8428) on ``senml/<town>/<sensor>``.

A pack is a JSON array of records. Base attributes (``bn``, ``bt``, ``bu``, ``bv``, ``bver``)
apply to their record and every later one until overridden (§4.1); each record is resolved
(§4.6) into name = bn + n, time = bt + t, unit = u or bu, value = bv + v. Resolved records
that share a time become one :class:`Reading`: a sensor sends temperature and humidity as
two records of the same instant.

Units (SenML registry, RFC 8428 §12.1): ``Cel`` → temperature, ``K`` → temperature − 273.15,
``%RH`` → humidity, ``V`` → battery_v. ``%EL`` (battery charge remaining, percent) is
accepted and dropped: heatwatch stores battery volts only (``Reading.battery_v``, the ``reading``
measurement of ``core/measurements.py``), and a percentage cannot be turned into volts without
knowing the cell chemistry. A record in any other unit, or in none, is rejected with ``unknown_unit``
while the rest of its pack is kept.

Times (§4.5.3): seconds, float. A resolved time ≥ 2**28 is absolute (Unix epoch); a smaller
one, zero and negatives included, is relative to "now", taken as the time of receipt. A pack
without any time is therefore stamped with the time of receipt.

The sensor comes from the topic. A resolved name may name a sensor too, as
``urn:dev:heatwatch:<sensor>[:...]`` or ``<sensor>:<measurement>``; when it names another
one the whole pack is rejected (``sensor_mismatch``): with per-sensor ACLs on topics, a pack
speaking for someone else is misconfigured or forged, and none of it should be stored. Other
URNs (``urn:dev:mac:...``, ``urn:dev:ow:...``) and plain names (``temperature``) are not checked.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ...core.errors import DecodeError
from ...core.model import SENSOR_ID_RE, Reading
from ..reasons import Reason
from .base import Context, Decoded
from .common import number, parse_json
from .native import topic_town_sensor

# RFC 8428 §4.4: the default and highest version this decoder implements.
SENML_VERSION = 10
# §4.5.3: times below 2**28 s (1978-07-04) are relative to now.
RELATIVE_TIME_LIMIT = 2**28
# §4.5.1: the characters a resolved name may use, and what it must start with.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")
_HEATWATCH_URN_RE = re.compile(rf"urn:dev:heatwatch:({SENSOR_ID_RE.pattern})(?::.*)?", re.IGNORECASE | re.DOTALL)
_PREFIX_RE = re.compile(rf"({SENSOR_ID_RE.pattern}):.*", re.DOTALL)

# Unit → (Reading attribute, offset added to the value). None: known, deliberately not stored.
UNITS: dict[str, tuple[str, float] | None] = {
    "Cel": ("temperature", 0.0),
    "K": ("temperature", -273.15),
    "%RH": ("humidity", 0.0),
    "V": ("battery_v", 0.0),
    "%EL": None,
}

_VALUE_KEYS = ("v", "vs", "vb", "vd", "s")
_OTHER_VALUES = ("vs", "vb", "vd")


@dataclass(slots=True)
class _Base:
    name: str = ""
    time: float = 0.0
    unit: str | None = None
    value: float = 0.0


def named_sensor(name: str) -> str | None:
    """The heatwatch sensor id a resolved SenML name designates, or None when it names none."""
    m = _HEATWATCH_URN_RE.fullmatch(name)
    if m:
        return m.group(1)
    if name[:4].lower() == "urn:":
        return None  # another URN namespace: device EUIs, MAC addresses; nothing to compare
    m = _PREFIX_RE.fullmatch(name)
    return m.group(1) if m else None


def _update_base(rec: dict[str, object], base: _Base) -> None:
    """Apply the base attributes of one record. Errors here spoil every later record: whole-pack."""
    if "bver" in rec:
        ver = rec["bver"]
        if isinstance(ver, bool) or not isinstance(ver, int) or ver < 1:
            raise DecodeError(Reason.bad_shape, f"bver={ver!r} is not a positive integer")
        if ver > SENML_VERSION:
            # §4.4: a receiver must not use a pack of a version it does not understand.
            raise DecodeError(Reason.bad_shape, f"SenML version {ver} is newer than {SENML_VERSION}")
    if "bn" in rec:
        if not isinstance(rec["bn"], str):
            raise DecodeError(Reason.bad_shape, f"bn={rec['bn']!r} is not a string"[:200])
        base.name = rec["bn"]
    if "bt" in rec:
        bt = rec["bt"]
        if isinstance(bt, bool) or not isinstance(bt, int | float) or not math.isfinite(bt):
            raise DecodeError(Reason.bad_timestamp, f"bt={bt!r}"[:200])
        base.time = float(bt)
    if "bu" in rec:
        if not isinstance(rec["bu"], str):
            raise DecodeError(Reason.bad_shape, f"bu={rec['bu']!r} is not a string"[:200])
        base.unit = rec["bu"]
    if "bv" in rec:
        bv = number(rec["bv"], "bv")
        base.value = 0.0 if bv is None else bv


def _resolved_name(rec: dict[str, object], base: _Base) -> str:
    n = rec.get("n", "")
    if not isinstance(n, str):
        raise DecodeError(Reason.bad_shape, f"n={n!r} is not a string"[:200])
    name = base.name + n
    # An empty name is tolerated: the topic names the sensor and the unit names the quantity.
    if name and not _NAME_RE.fullmatch(name):
        raise DecodeError(Reason.bad_shape, f"invalid SenML name {name[:100]!r}")
    return name


def _resolve(rec: dict[str, object], base: _Base, received_ms: int) -> tuple[str, float, int] | None:
    """(Reading attribute, value, ts_ms) of one record; None for a unit known but not stored."""
    unit = rec.get("u", base.unit)
    if not isinstance(unit, str) or unit not in UNITS:
        raise DecodeError(Reason.unknown_unit, f"u={unit!r}"[:200])
    target = UNITS[unit]
    if "v" in rec:
        raw = rec["v"]
        value = number(raw, "v")
        if value is None:
            raise DecodeError(Reason.non_numeric, "v=null")
    elif any(k in rec for k in _OTHER_VALUES):
        key = next(k for k in _OTHER_VALUES if k in rec)
        raise DecodeError(Reason.non_numeric, f"{key}={rec[key]!r}"[:200])
    else:
        raise DecodeError(Reason.bad_shape, "record has no value 'v'")
    t = rec.get("t", 0.0)
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise DecodeError(Reason.bad_timestamp, f"t={t!r}"[:200])
    when = base.time + t
    if not math.isfinite(when * 1000):  # bt + t can overflow even when both are finite
        raise DecodeError(Reason.bad_timestamp, f"bt + t = {when!r}")
    ts_ms = round(when * 1000)
    if when < RELATIVE_TIME_LIMIT:
        ts_ms += received_ms
    if ts_ms < 0:
        raise DecodeError(Reason.bad_timestamp, f"resolved time {when!r} s is before 1970")
    if target is None:
        return None
    attr, offset = target
    value = value + base.value + offset
    if not math.isfinite(value):
        raise DecodeError(Reason.non_numeric, f"v={rec['v']!r} with bv={base.value!r}")
    return attr, value, ts_ms


def decode(payload: bytes, ctx: Context) -> Decoded:
    town, sensor = topic_town_sensor(ctx)
    pack = parse_json(payload)
    if not isinstance(pack, list):
        raise DecodeError(Reason.bad_shape, f"a SenML pack is a JSON array, got {type(pack).__name__}")
    if not pack:
        raise DecodeError(Reason.bad_shape, "empty SenML pack")
    out = Decoded()
    base = _Base()
    by_time: dict[int, Reading] = {}
    for i, rec in enumerate(pack):
        if not isinstance(rec, dict):
            raise DecodeError(Reason.bad_shape, f"record {i} is a {type(rec).__name__}, not an object")
        must = [k for k in rec if k.endswith("_")]
        if must:
            # §4.4: labels ending in '_' must be understood; we understand none, so the pack is unusable.
            raise DecodeError(Reason.bad_shape, f"record {i} has must-understand labels {must[:5]}")
        _update_base(rec, base)
        if not any(k in rec for k in _VALUE_KEYS) and not any(k in rec for k in ("n", "u", "t")):
            continue  # a record carrying only base attributes sets context for the ones after it
        try:
            name = _resolved_name(rec, base)
        except DecodeError as exc:
            out.rejects.append(DecodeError(exc.reason, f"record {i}: {exc.detail}"))
            continue
        other = named_sensor(name) if name else None
        if other is not None and other != sensor:
            raise DecodeError(Reason.sensor_mismatch, f"topic says {sensor!r}, SenML name {name[:100]!r}")
        try:
            resolved = _resolve(rec, base, ctx.received_ms)
            if resolved is None:
                continue
            attr, value, ts_ms = resolved
            reading = by_time.get(ts_ms)
            if reading is None:
                reading = by_time[ts_ms] = Reading(town, sensor, ts_ms, source="senml")
            previous = getattr(reading, attr)
            if previous is not None and previous != value:
                raise DecodeError(Reason.bad_shape, f"two {attr} values at {ts_ms} ms: {previous} and {value}")
            setattr(reading, attr, value)
        except DecodeError as exc:
            out.rejects.append(DecodeError(exc.reason, f"record {i}: {exc.detail}"))
    out.readings = [by_time[k] for k in sorted(by_time)]
    return out
