"""Parsing helpers shared by the decoders."""

from __future__ import annotations

import math
from datetime import datetime

import orjson

from ...core.errors import DecodeError
from ..reasons import Reason


def parse_json(payload: bytes) -> object:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(Reason.invalid_json, str(exc)[:200]) from None


def number(value: object, name: str) -> float | None:
    """A finite float, None when absent; bools and strings are rejected, not coerced."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(Reason.non_numeric, f"{name}={value!r}"[:200])
    f = float(value)
    if not math.isfinite(f):
        raise DecodeError(Reason.non_numeric, f"{name}={value!r}")
    return f


# Epoch values below this are seconds, above are milliseconds: 1e11 s is the year 5138,
# 1e11 ms is March 1973, so no real reading is ambiguous.
_MS_THRESHOLD = 100_000_000_000


def timestamp_ms(value: object) -> int:
    """Epoch seconds or milliseconds (int or float), or an ISO 8601 string with an offset."""
    if isinstance(value, bool):
        raise DecodeError(Reason.bad_timestamp, repr(value))
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise DecodeError(Reason.bad_timestamp, repr(value))
        return round(value if value >= _MS_THRESHOLD else value * 1000)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            raise DecodeError(Reason.bad_timestamp, value[:100]) from None
        if dt.tzinfo is None:
            raise DecodeError(Reason.bad_timestamp, f"{value[:100]} has no UTC offset")
        return round(dt.timestamp() * 1000)
    raise DecodeError(Reason.bad_timestamp, repr(value)[:100])
