"""The MQTT contract of heatwatch/core/topics.py: what one side encodes, the other side parses."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from heatwatch.core.model import Reading
from heatwatch.core.topics import (
    MAX_RECOMPUTE_DAYS,
    AlertEvent,
    InvalidRequest,
    LiveBatch,
    RecomputeDone,
    alerts_topic,
    encode_live,
    last_level,
    live_topic,
    parse_alert,
    parse_live,
    parse_request,
    range_problem,
    recompute_request,
)

NOW = 1_750_000_000_000


def test_topics_of_a_town() -> None:
    assert alerts_topic("saint-omer") == "heat/alerts/saint-omer"
    assert live_topic("vitre") == "heatwatch/live/vitre"
    assert last_level(alerts_topic("saint-omer")) == "saint-omer"


# heatwatch/live/<town> ---------------------------------------------------------------------------


def test_what_ingest_encodes_the_api_parses() -> None:
    readings = [Reading("vitre", "s-1", NOW - 1000, 23.4, 55.0, 3.1, -90.0, "tts"),
                Reading("vitre", "s-2", NOW - 2000, 21.0, None, None, None, "json")]
    payload = encode_live("vitre", readings)
    LiveBatch.model_validate_json(payload)  # the documented model
    parsed = dict(parse_live(payload, "vitre", NOW) or [])
    assert parsed == {
        "s-1": {"ts": NOW - 1000, "temperature": 23.4, "humidity": 55.0, "battery_v": 3.1, "battery_pct": None,
                "rssi": -90.0, "source": "tts"},
        "s-2": {"ts": NOW - 2000, "temperature": 21.0, "humidity": None, "battery_v": None, "battery_pct": None,
                "rssi": None, "source": "json"},
    }


def test_parse_live_keeps_the_newest_and_skips_junk() -> None:
    def msg(*readings: Any, town: str = "vitre") -> bytes:
        return json.dumps({"town": town, "readings": list(readings)}).encode()

    one = {"sensor": "s-1", "ts": NOW - 1000, "temperature": 23.4, "humidity": 55, "battery_v": 3.1,
           "rssi": -90, "source": "tts"}
    assert parse_live(msg(one), "vitre", NOW) == [("s-1", {"ts": NOW - 1000, "temperature": 23.4, "humidity": 55.0,
                                                           "battery_v": 3.1, "battery_pct": None, "rssi": -90.0,
                                                           "source": "tts"})]
    # Two readings of one sensor (not what ingest sends, but harmless): the newest.
    older = one | {"ts": NOW - 5000, "temperature": 20.0}
    assert [r["temperature"] for _, r in parse_live(msg(older, one, older), "vitre", NOW) or []] == [23.4]
    # Junk readings are skipped, the others kept.
    junk = [one | {"sensor": "bad/id"}, one | {"ts": "yesterday"}, one | {"ts": NOW + 3_600_000},
            one | {"temperature": 75, "humidity": None}, one | {"temperature": None, "humidity": None}, "x"]
    assert [s for s, _ in parse_live(msg(*junk, one | {"sensor": "s-2"}), "vitre", NOW) or []] == ["s-2"]
    # Not a live message at all, or another town's in this town's topic.
    for bad in (b"{not json", b"[1, 2]", b"\xff", b'{"town": "vitre"}', msg(one, town="saint-omer")):
        assert parse_live(bad, "vitre", NOW) is None


# heat/alerts/<town> ------------------------------------------------------------------------------


def test_alert_event_round_trip() -> None:
    event = AlertEvent(event="close", town="vitre", sensor=None, kind="canicule", value=33.4, threshold=33.0,
                       message="canicule thresholds reached on 2024-07-20 — IBMx 33.4 ≥ 33 °C", state="closed",
                       started="2024-07-20T04:20:00.000Z", ended="2024-07-23T04:20:00.000Z", ts=NOW)
    payload = event.encode()
    assert "≥" in payload.decode()  # UTF-8 as is, not \u escapes
    [alert] = parse_alert(payload, NOW + 5)
    assert alert == event.model_dump()  # every member passes through, ts is the event's own


def test_parse_alert_bounds_what_it_keeps() -> None:
    big = {"event": "open", "message": "x" * 5000, "nested": {"a": 1}, "nan": None,
           **{f"k{i}": i for i in range(40)}}
    [alert] = parse_alert(json.dumps(big).encode(), NOW)
    assert len(alert["message"]) == 1000 and "nested" not in alert and len(alert) <= 33
    assert alert["ts"] == NOW  # no time of its own: the time of receipt
    # A naive time is not a time (the one parser's rule): the time of receipt too.
    assert parse_alert(b'{"ts": "2024-07-20T12:00:00"}', NOW)[0]["ts"] == NOW
    assert parse_alert(b'{"ts": "2024-07-20T12:00:00Z"}', NOW)[0]["ts"] == 1_721_476_800_000
    assert parse_alert(b"not json", NOW) == [] and parse_alert(b"[1, 2]", NOW) == []


# heatwatch/recompute and /done ----------------------------------------------------------------------


def test_what_the_api_publishes_analytics_accepts() -> None:
    body = recompute_request("1752000000000-0a1b2c3d4e5f", None, date(2025, 7, 8), date(2025, 7, 9),
                             "2025-07-10T08:00:00.125Z")
    req = parse_request(json.dumps(body).encode(), {"vitre"})
    assert (req.town, req.first, req.last) == (None, date(2025, 7, 8), date(2025, 7, 9))
    assert req.requested_at == datetime(2025, 7, 10, 8, 0, 0, 125000, tzinfo=UTC)
    assert req.describe() == {k: body[k] for k in ("id", "town", "from", "to")}


def test_the_ten_year_cap_is_the_same_on_both_sides() -> None:
    first = date(2015, 1, 1)
    last = date.fromordinal(first.toordinal() + MAX_RECOMPUTE_DAYS)
    assert range_problem(first, last) is None
    beyond = date.fromordinal(last.toordinal() + 1)
    assert range_problem(first, beyond) is not None and range_problem(first, beyond)[0] == "range_too_long"
    body = recompute_request("r1", "vitre", first, beyond, "2025-07-10T08:00:00Z")
    with pytest.raises(InvalidRequest, match="at most"):
        parse_request(json.dumps(body).encode(), {"vitre"})


@pytest.mark.parametrize(("payload", "rid", "why"), [
    (b"not json", None, "not JSON"),
    (b'["a"]', None, "not a JSON object"),
    (b'{"town": "vitre", "from": "2025-07-08", "to": "2025-07-09"}', None, "id"),
    (b'{"id": "a b", "from": "2025-07-08", "to": "2025-07-09"}', "a b", "id"),
    (b'{"id": "r1", "town": "lille", "from": "2025-07-08", "to": "2025-07-09"}', "r1", "unknown town"),
    (b'{"id": "r2", "from": "2025-07-09", "to": "2025-07-08"}', "r2", "before"),
    (b'{"id": "r3", "from": 20250708, "to": "2025-07-09"}', "r3", "from"),
    (b'{"id": "r4", "from": "2025-07-08T00:00:00", "to": "2025-07-09"}', "r4", "from"),
    (b'{"id": "r5", "from": "2000-01-01", "to": "2025-07-09"}', "r5", "at most"),
    (b'{"id": "r6", "from": "2025-07-08", "to": "2025-07-09", "town": 3}', "r6", "town"),
    (b'{"id": "r7", "from": "2025-07-08"}', "r7", "to"),
    (b'{"id": "r8", "from": "2025-07-08", "to": "2025-07-09", "pad": "' + b"x" * 5000 + b'"}', None, "bytes"),
])
def test_parse_request_rejects(payload: bytes, rid: str | None, why: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request(payload, {"vitre", "saint-omer"})
    assert info.value.request_id == rid and why in str(info.value)


def test_done_messages_leave_out_what_was_not_set() -> None:
    rejected = RecomputeDone(id="r1", status="rejected", error="not JSON", finished_at="2025-07-10T08:00:00.000Z")
    assert json.loads(rejected.encode()) == {"id": "r1", "status": "rejected", "error": "not JSON",
                                             "finished_at": "2025-07-10T08:00:00.000Z"}
    done = RecomputeDone.model_validate({"id": "r2", "town": None, "from": "2025-07-08", "to": "2025-07-09",
                                         "status": "done", "readings": 10, "points": 4, "seconds": 0.5})
    assert json.loads(done.encode()) == {"id": "r2", "status": "done", "town": None, "from": "2025-07-08",
                                         "to": "2025-07-09", "readings": 10, "points": 4, "seconds": 0.5}
