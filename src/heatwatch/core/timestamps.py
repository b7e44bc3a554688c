"""The one parser of the timestamps heatwatch receives, and the one rendering of those it sends.

A timestamp in a message is epoch seconds or milliseconds (int or float), or an ISO 8601 /
RFC 3339 string **with a UTC offset** (``Z`` or ``±hh:mm``). A string without an offset is
rejected rather than read as UTC: sensors and gateways in France that send local wall time
would otherwise be stored one or two hours off, silently, and that cannot be repaired later.
(The API's ``from``/``to`` query parameters are another matter: there a naive time is read in the
request's ``tz``, a documented convenience for people, see ``api/timeutil.py``.)

Fractions of a second finer than a millisecond (The Things Stack sends nanoseconds) are
truncated, never rounded, so a time never moves into the next millisecond.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

# Epoch values below this are seconds, above are milliseconds: 1e11 s is the year 5138,
# 1e11 ms is March 1973, so no real reading is ambiguous.
MS_THRESHOLD = 100_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class TimestampError(ValueError):
    """Not a timestamp heatwatch accepts; the message says why (it ends up in dead letters)."""


def parse_timestamp_ms(value: object) -> int:
    """UTC epoch milliseconds of an epoch number or an ISO 8601 string with an offset."""
    if isinstance(value, bool):
        raise TimestampError(repr(value))
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise TimestampError(repr(value))
        # Numbers are rounded: 1718000000.123 s is 1718000000122.9999 ms in binary floating point.
        return round(value if value >= MS_THRESHOLD else value * 1000)
    if isinstance(value, str):
        text = value.strip()
        try:
            # Python 3.11's parser reads every ISO 8601 form, nanoseconds included (truncated to µs);
            # RFC 3339 allows a lower-case z, which it does not.
            dt = datetime.fromisoformat(text[:-1] + "Z" if text.endswith("z") else text)
        except ValueError:
            raise TimestampError(text[:100]) from None
        if dt.tzinfo is None:
            raise TimestampError(f"{text[:100]} has no UTC offset")
        ms = (dt - _EPOCH) // _MS  # exact, and truncating below the millisecond
        if ms < 0:
            raise TimestampError(f"{text[:100]} is before 1970")
        return ms
    raise TimestampError(repr(value)[:100])


def iso_ms(ms: int | None) -> str | None:
    """Epoch ms as ISO 8601 UTC with milliseconds and ``Z`` (``2024-07-20T23:50:00.000Z``), as in
    every MQTT message heatwatch publishes."""
    if ms is None:
        return None
    dt = _EPOCH + timedelta(milliseconds=int(ms))
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"
