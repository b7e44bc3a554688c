"""The native format's fast path gives exactly what the general path gives (pure, no services).

The general path is the reference: native.decode, the validator, the town binding and Reading.to_line.
A pipeline whose "json" decoder is a wrapper around native.decode never takes the fast path, so the two
pipelines are run on the same generated batches and must agree on every line, rejection, newest reading
and registration.
"""

from __future__ import annotations

import json
import time

import mqtt5
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from heatwatch.core.settings import DEFAULT_SUBSCRIPTIONS
from heatwatch.ingest.client import Received
from heatwatch.ingest.decoders import DECODERS, native
from heatwatch.ingest.pipeline import Pipeline
from heatwatch.ingest.validate import Validator

NOW = int(time.time() * 1000)
DAY = 86_400_000


class Homes:
    """A registry's town binding: vitre-01 is registered in Vitré."""

    def __init__(self) -> None:
        self.map = {"vitre-01": "vitre"}

    def homes(self) -> dict[str, str]:
        return self.map

    def resolve(self, identity: str) -> tuple[str, str] | None:
        return None


def pipelines(fast: bool) -> tuple[Pipeline, list[tuple[str, str]]]:
    decoders = dict(DECODERS)
    if not fast:
        decoders["json"] = lambda payload, ctx: native.decode(payload, ctx)
    seen: list[tuple[str, str]] = []
    p = Pipeline(DEFAULT_SUBSCRIPTIONS, Validator(towns={"vitre", "saint-omer"}, backlog_ms=2 * DAY),
                 max_payload_bytes=4096, devices=Homes(), decoders=decoders,
                 on_sensor=lambda t, s: seen.append((t, s)), ignore=["heat/alerts/#"])
    return p, seen


numbers = st.one_of(
    st.none(), st.booleans(), st.text(max_size=3),
    st.integers(min_value=-100, max_value=150), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-45, max_value=105),
    st.sampled_from([-40.0, -40.1, 60.0, 60.01, 0.0, -0.1, 100.0, 100.5, 101, -41, 61, 60, -40, 0, 100, 1e20, 2**70]),
)
stamps = st.one_of(
    st.none(), st.booleans(), st.just("2024-07-20T23:50:00Z"), st.floats(min_value=0, max_value=4e12),
    st.integers(min_value=(NOW - 3 * DAY) // 1000, max_value=(NOW + DAY) // 1000),
    st.integers(min_value=NOW - 3 * DAY, max_value=NOW + DAY), st.integers(min_value=-5, max_value=5),
)
records = st.fixed_dictionaries({}, optional={
    "ts": stamps, "temperature": numbers, "humidity": numbers, "battery_v": numbers, "rssi": numbers,
    "sensor": st.sampled_from(["a1", "b2", 7, None]), "other": st.integers(),
})


def _dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()  # any integer, as a publisher may send


topics = st.sampled_from(["heat/vitre/a1", "heat/saint-omer/a1", "heat/vitre/b2", "heat/paris/a1",
                          "heat/vitre/vitre-01", "heat/saint-omer/vitre-01", "heat/vitre/live", "heat/vitre/saint-omer",
                          "heat/vitre/bad id"])
payloads = st.one_of(records.map(_dumps), st.lists(records, max_size=3).map(_dumps),
                     st.sampled_from([b"{", b"[]", b"3", b'"x"', b"{}"]))


def run(p: Pipeline, batch: list[tuple[str, bytes]]):
    packets = [mqtt5.PublishPacket(t, b, qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=i + 1)
               for i, (t, b) in enumerate(batch)]
    out = p.process([Received(NOW, packets[:3]), Received(NOW + 7, packets[3:])])
    return (out.lines, dict(out.rejected), [(d.topic, d.payload, d.reason, d.detail) for d in out.dead],
            out.readings, out.latest)


@settings(max_examples=400)
@given(st.lists(st.tuples(topics, payloads), min_size=1, max_size=8))
def test_fast_path_agrees_with_the_general_path(batch):
    fast, seen_fast = pipelines(True)
    slow, seen_slow = pipelines(False)
    assert run(fast, batch) == run(slow, batch)
    assert sorted(set(seen_fast)) == sorted(set(seen_slow))


def test_fast_path_is_taken_for_the_common_shape():
    fast, _ = pipelines(True)
    payload = orjson.dumps({"ts": NOW, "temperature": 21.5, "humidity": 55})
    out = fast.process([Received(NOW, [mqtt5.PublishPacket("heat/vitre/a1", payload)])])
    assert out.lines == [f'reading,sensor=a1,town=vitre temperature=21.5,humidity=55.0,source="json" {NOW}']
    route = fast._fast["heat/vitre/a1"]
    assert route is not None and route.line(orjson.loads(payload), NOW) is not None


EDGES = [{"temperature": v} for v in (-40, -40.0, -40.01, 60, 60.0, 60.01, 21, 1e20, 2**70, True, "21", None)] + [
    {"humidity": v} for v in (0, 0.0, -0.01, 100, 100.0, 100.5, 101, False)] + [
    {"ts": v, "temperature": 20.0} for v in (NOW, NOW // 1000, NOW + 299_000, NOW + 301_000, NOW - 2 * DAY - 1,
                                             NOW - 2 * DAY + 1000, -1, 0, float(NOW), True, "2024-07-20T23:50:00Z")] + [
    {"temperature": 20.0, "humidity": 50, **extra} for extra in (
        {"battery_v": 3}, {"battery_v": 3.1}, {"battery_v": "3"}, {"rssi": -100}, {"rssi": -99.5, "battery_v": 2.9},
        {"sensor": "a1"}, {"sensor": "b2"}, {"sensor": None}, {"other": 1}, {"battery_v": None})]


def test_fast_path_agrees_on_the_edges():
    batch = [(t, _dumps({"ts": NOW, **e} if "ts" not in e else e))
             for e in EDGES for t in ("heat/vitre/a1", "heat/saint-omer/vitre-01")]
    fast, _ = pipelines(True)
    slow, _ = pipelines(False)
    assert run(fast, batch) == run(slow, batch)
