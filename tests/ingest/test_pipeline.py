"""Message → lines: decoder choice by topic, validation, dead letters, ignored topics (pure, no services)."""

from __future__ import annotations

import json
import time

from heatwatch.core.settings import DEFAULT_SUBSCRIPTIONS
from heatwatch.ingest.consumer import Message
from heatwatch.ingest.pipeline import Pipeline
from heatwatch.ingest.validate import Validator

NOW = int(time.time() * 1000)


def pipeline(**kw) -> Pipeline:
    return Pipeline(DEFAULT_SUBSCRIPTIONS, Validator(towns={"vitre", "saint-omer"}, backlog_ms=86_400_000),
                    max_payload_bytes=1000, ignore=["heat/alerts/#"], **kw)


def msg(topic: str, body: object) -> Message:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Message(1, 1, topic, payload, NOW, 1)


def test_alerts_topic_is_ignored_not_dead_lettered():
    out = pipeline().process([msg("heat/alerts/vitre", {"sensor": "x", "kind": "offline"})])
    assert out.ignored == 1 and out.dead == [] and out.lines == []


def test_mixed_array_stores_valid_records_and_dead_letters_the_rest():
    seen: list[tuple[str, str]] = []
    out = pipeline(on_sensor=lambda t, s: seen.append((t, s))).process([
        msg("heat/vitre/a1", [{"ts": NOW, "temperature": 20.5}, {"ts": NOW - 1000, "temperature": 75},
                             {"ts": NOW - 2000, "humidity": "wet"}, {"ts": NOW + 3_600_000, "humidity": 50}]),
    ])
    assert out.lines == [f'reading,sensor=a1,town=vitre temperature=20.5,source="json" {NOW}']
    assert sorted(out.rejected) == ["future_timestamp", "non_numeric", "temperature_range"]
    assert all(d.payload.startswith(b"[") and d.topic == "heat/vitre/a1" for d in out.dead)
    assert seen == [("vitre", "a1")]


def test_whole_message_rejections_carry_their_reason():
    p = pipeline()
    cases = {
        "oversized": msg("heat/vitre/a", b"[" + b" " * 2000 + b"]"),
        "invalid_json": msg("heat/vitre/a", b"\xff\xfe"),
        "bad_topic": msg("other/vitre/a", {"temperature": 1}),
        "unknown_town": msg("heat/paris/a", {"ts": NOW, "temperature": 1}),
        "stale_timestamp": msg("heat/vitre/a", {"ts": NOW - 2 * 86_400_000, "temperature": 1}),
        "sensor_mismatch": msg("heat/vitre/a", {"sensor": "b", "temperature": 1}),
        "humidity_range": msg("heat/vitre/a", {"humidity": 101}),
        "no_measurement": msg("heat/vitre/a", {"battery_v": 3.0}),
        "bad_timestamp": msg("heat/vitre/a", {"ts": "yesterday", "temperature": 1}),
    }
    for reason, m in cases.items():
        out = p.process([m])
        assert list(out.rejected) == [reason], (reason, out.rejected)
        assert out.dead[0].reason == reason and out.dead[0].payload == m.payload
