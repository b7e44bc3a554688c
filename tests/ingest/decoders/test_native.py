"""Native JSON on ``heat/<town>/<sensor>``: one reading or a backlog array; times by the kernel's parser."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatwatch.core.errors import DecodeError
from heatwatch.core.model import Reading
from heatwatch.ingest.decoders import DECODERS, Context
from heatwatch.ingest.decoders.native import decode
from heatwatch.ingest.reasons import Reason

NOW_MS = 1_719_835_200_000  # 2024-07-01T12:00:00Z
TOPIC = "heat/vitre/vitre-centre-01"


def run(payload: object, topic: str = TOPIC) -> tuple[list[Reading], list[str]]:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    out = decode(raw, Context(topic, NOW_MS))
    return out.readings, [e.reason for e in out.rejects]


def whole_message_rejected(payload: object, topic: str = TOPIC) -> str:
    with pytest.raises(DecodeError) as info:
        run(payload, topic)
    return info.value.reason


def test_registered_for_json_format() -> None:
    assert DECODERS["json"] is decode


def test_one_reading_as_a_sensor_sends_it() -> None:
    [r], rejects = run({"ts": 1_719_835_140, "temperature": 23.4, "humidity": 55, "battery_v": 3.1, "rssi": -71})
    assert rejects == []
    assert r == Reading("vitre", "vitre-centre-01", 1_719_835_140_000, 23.4, 55.0, 3.1, -71.0, "json")


@pytest.mark.parametrize(("ts", "ms"), [
    (1_719_835_140, 1_719_835_140_000),  # epoch seconds
    (1_719_835_140.25, 1_719_835_140_250),
    (1_719_835_140_123, 1_719_835_140_123),  # epoch milliseconds
    ("2024-07-01T11:59:00Z", 1_719_835_140_000),
    ("2024-07-01T13:59:00+02:00", 1_719_835_140_000),  # local time with its offset
    ("2024-07-01T11:59:00.123456789Z", 1_719_835_140_123),  # nanoseconds, truncated
    (None, NOW_MS),  # no time: the time of receipt
])
def test_times(ts: object, ms: int) -> None:
    payload = {"temperature": 20.0} if ts is None else {"ts": ts, "temperature": 20.0}
    [r], _ = run(payload)
    assert r.ts_ms == ms


def test_backlog_array_keeps_the_good_records_and_names_the_bad_ones() -> None:
    readings, rejects = run([
        {"ts": 1_719_835_080, "temperature": 22.0},
        {"ts": "2024-07-01T11:59:00", "temperature": 22.1},  # no offset: never guessed as UTC
        {"ts": 1_719_835_200, "temperature": "22.2"},  # a string is not a number
        {"ts": 1_719_835_260, "temperature": True},  # nor is a boolean
        {"ts": 1_719_835_320, "humidity": 61.5, "sensor": "vitre-centre-01"},  # naming its own sensor: fine
        {"ts": 1_719_835_380, "temperature": 22.4, "sensor": "vitre-centre-02"},  # speaking for another
        "22.5",
    ])
    assert [(r.ts_ms, r.temperature, r.humidity) for r in readings] == [
        (1_719_835_080_000, 22.0, None), (1_719_835_320_000, None, 61.5)]
    assert rejects == [Reason.bad_timestamp, Reason.non_numeric, Reason.non_numeric, Reason.sensor_mismatch,
                       Reason.bad_shape]


def test_unknown_members_are_ignored() -> None:
    [r], _ = run({"ts": 1_719_835_140, "temperature": 21.0, "firmware": "1.2.3", "uptime_s": 8812})
    assert r.temperature == 21.0


@pytest.mark.parametrize(("payload", "topic", "reason"), [
    (b"{not json", TOPIC, Reason.invalid_json),
    (b'{"temperature": NaN}', TOPIC, Reason.invalid_json),  # not JSON either
    (b"\xff\xfe", TOPIC, Reason.invalid_json),
    ([], TOPIC, Reason.bad_shape),
    ({"temperature": 20.0}, "heat/vitre", Reason.bad_topic),
    ({"temperature": 20.0}, "heat/Vitré/s1", Reason.bad_topic),
    ({"temperature": 20.0}, "heat/vitre/bad id", Reason.bad_topic),
])
def test_whole_message_rejections(payload: object, topic: str, reason: str) -> None:
    assert whole_message_rejected(payload, topic) == reason


@given(st.lists(st.fixed_dictionaries({}, optional={
    "ts": st.one_of(st.integers(-10, 2**45), st.floats(allow_nan=False), st.text(max_size=30), st.none()),
    "temperature": st.one_of(st.floats(), st.integers(), st.text(max_size=5), st.booleans(), st.none()),
    "humidity": st.one_of(st.floats(), st.none()),
    "sensor": st.one_of(st.just("vitre-centre-01"), st.text(max_size=8)),
}), min_size=1, max_size=20))
def test_every_record_is_a_reading_or_a_named_rejection(records: list[dict]) -> None:
    try:
        raw = orjson.dumps(records)
    except orjson.JSONEncodeError:
        return
    readings, rejects = run(raw)
    assert len(readings) + len(rejects) == len(records)
    assert all(r.town == "vitre" and r.sensor == "vitre-centre-01" and r.ts_ms >= 0 for r in readings)
    assert set(rejects) <= set(Reason)
