"""Time parsing and rendering: UTC with ``Z`` on the wire, IANA zones for local days."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from heatwatch.core.tabular import iso_local, iso_z, local_date

from .errors import bad_request

__all__ = ["iso_local", "iso_z", "local_date"]

MS_PER_DAY = 86_400_000


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise bad_request(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris or UTC",
                          "invalid_tz") from exc


def parse_instant(value: str, tz: ZoneInfo, name: str) -> int:
    """An ISO 8601 date or date-time to epoch ms. Naive values are read in ``tz``; a bare date is
    local midnight, which is what "from 2024-07-01" means to someone in Vitré."""
    v = value.strip()
    try:
        if len(v) == 10:
            d = date.fromisoformat(v)
            dt = datetime(d.year, d.month, d.day, tzinfo=tz)
        else:
            dt = datetime.fromisoformat(v.replace("z", "Z"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=tz)
    except ValueError as exc:
        raise bad_request(f"{name}={value!r} is not an ISO 8601 date or date-time "
                          "(e.g. 2024-07-01 or 2024-07-01T12:00:00Z)", "invalid_time") from exc
    if not 1970 <= dt.astimezone(UTC).year <= 2100:
        raise bad_request(f"{name}={value!r} is outside 1970–2100", "invalid_time")
    return int(dt.timestamp() * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


def time_range(
    from_: str | None, to: str | None, tz: ZoneInfo, *, default_days: int, max_days: int, what: str
) -> tuple[int, int]:
    """[start, end) in epoch ms, defaulting to the last ``default_days``, capped at ``max_days``."""
    end = parse_instant(to, tz, "to") if to else now_ms() + 5 * 60_000  # readings may be 5 min ahead
    start = parse_instant(from_, tz, "from") if from_ else end - default_days * MS_PER_DAY
    if start >= end:
        raise bad_request(f"from must be before to (got from={from_!r}, to={to!r})", "invalid_range")
    if end - start > max_days * MS_PER_DAY:
        raise bad_request(f"time range too long for {what}: {(end - start) / MS_PER_DAY:.1f} days asked, "
                          f"at most {max_days} days per request; split it into several requests",
                          "range_too_long")
    return start, end


def ms_to_ns(ms: int) -> int:
    return ms * 1_000_000

