"""Parsing helpers shared by the decoders."""

from __future__ import annotations

import math

import orjson

from ...core.errors import DecodeError
from ...core.timestamps import TimestampError, parse_timestamp_ms
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


def timestamp_ms(value: object) -> int:
    """Epoch ms of a message's time, by the kernel's one parser (:mod:`heatwatch.core.timestamps`)."""
    try:
        return parse_timestamp_ms(value)
    except TimestampError as exc:
        raise DecodeError(Reason.bad_timestamp, str(exc)) from None
