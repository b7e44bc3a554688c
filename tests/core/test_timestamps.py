"""The one timestamp parser (ingest, live stream, alert events) and the MQTT time rendering."""

from __future__ import annotations

import pytest

from heatwatch.core.timestamps import TimestampError, iso_ms, parse_timestamp_ms


@pytest.mark.parametrize(("value", "ms"), [
    (1_700_000_000, 1_700_000_000_000),  # epoch seconds
    (1_700_000_000.5, 1_700_000_000_500),
    (1_718_000_000.123, 1_718_000_000_123),  # rounded, not truncated: the float is ...122.9999 ms
    (1_700_000_000_123, 1_700_000_000_123),  # epoch ms
    ("2024-07-20T12:00:00Z", 1_721_476_800_000),
    ("2024-07-20T12:00:00z", 1_721_476_800_000),
    ("2024-07-20T14:00:00+02:00", 1_721_476_800_000),
    ("2024-07-20 12:00:00+00:00", 1_721_476_800_000),
    (" 2024-07-20T12:00:00Z ", 1_721_476_800_000),
    # The Things Stack: nanoseconds, truncated (never rounded into the next millisecond).
    ("2024-07-20T12:00:00.123999999Z", 1_721_476_800_123),
    ("2024-07-20T12:00:00.9996Z", 1_721_476_800_999),
    ("2024-07-20T12:00:00.5Z", 1_721_476_800_500),
])
def test_accepted(value: object, ms: int) -> None:
    assert parse_timestamp_ms(value) == ms


@pytest.mark.parametrize(("value", "why"), [
    ("2024-07-20T12:00:00", "no UTC offset"),  # naive local time: rejected, never guessed as UTC
    ("2024-07-20", "no UTC offset"),
    ("yesterday", "yesterday"),
    ("2024-13-01T00:00:00Z", "2024-13-01"),
    ("1969-12-31T23:59:59Z", "before 1970"),
    (-1, "-1"),
    (float("nan"), "nan"),
    (float("inf"), "inf"),
    (True, "True"),
    (None, "None"),
    ([1], "[1]"),
])
def test_rejected_with_a_reason(value: object, why: str) -> None:
    with pytest.raises(TimestampError, match=why.replace("[", r"\[").replace("]", r"\]")):
        parse_timestamp_ms(value)


def test_iso_ms_always_has_milliseconds_and_z() -> None:
    assert iso_ms(1_721_476_800_000) == "2024-07-20T12:00:00.000Z"
    assert iso_ms(1_721_476_800_123) == "2024-07-20T12:00:00.123Z"
    assert iso_ms(None) is None
    for ms in (0, 1, 999, 1_721_476_800_123):
        assert parse_timestamp_ms(iso_ms(ms)) == ms
