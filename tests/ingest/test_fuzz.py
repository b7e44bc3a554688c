"""Fuzzed payloads of every format sent to the running ingester while a valid stream flows.

Every valid reading must be stored, and every fuzzed message must be accounted for: its
readings stored, or the message dead-lettered with its raw bytes (or both, for a message
with some good and some bad records). The ingester must still be running at the end.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from heatwatch.core.deadletters import FILENAME as DEADLETTER_FILE
from heatwatch.core.deadletters import DeadLetterStore
from heatwatch.core.model import Reading, Sensor
from heatwatch.simulate import encode
from support.influx import stored_keys
from support.mqtt import publish_all
from support.streams import native_stream

# One clock for the whole run: strategies must draw the same way when hypothesis replays them.
NOW_MS = int(time.time() * 1000)
PROFILES = {"json": None, "senml": "senml", "tts": "milesight-em300-th", "lht65": "dragino-lht65",
            "ers": "elsys-ers"}


def valid_message(fmt: str, sensor_id: str, ts_ms: int) -> tuple[str, bytes]:
    sensor = Sensor(id=sensor_id, town="vitre", device_profile=PROFILES[fmt],
                    mqtt_identity=sensor_id if PROFILES[fmt] not in (None, "senml") else None)
    m = encode(sensor, [Reading("vitre", sensor_id, ts_ms, temperature=21.5, humidity=55.0, battery_v=3.1)])
    return m.topic, m.payload


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def fuzzed(draw: st.DrawFn, index: int) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(sorted(PROFILES)))
    topic, payload = valid_message(fmt, f"fz-{index}", NOW_MS - 60_000)
    kind = draw(st.sampled_from(["random", "flip", "truncate", "json_value", "json_drop"]))
    if kind == "random":
        return topic, draw(st.binary(max_size=200))
    if kind == "flip":
        data = bytearray(payload)
        for _ in range(draw(st.integers(1, 5))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return topic, bytes(data)
    if kind == "truncate":
        return topic, payload[: draw(st.integers(0, len(payload) - 1))]
    doc = json.loads(payload)
    # Walk to a random container inside the document and change or drop one of its entries.
    node = doc
    for _ in range(draw(st.integers(0, 3))):
        children = [v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, dict | list)]
        if not children:
            break
        node = draw(st.sampled_from(children))
    keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
    if keys:
        key = draw(st.sampled_from(keys))
        if kind == "json_drop":
            del node[key]
        else:
            node[key] = draw(json_values)
    return topic, json.dumps(doc).encode()


def stored_sensors(influx_url: str, db: str) -> set[str]:
    return {sensor for _, sensor, _ in stored_keys(influx_url, db)}


def dead_topics(data_dir: Path) -> set[str]:
    with DeadLetterStore(data_dir / "deadletter" / DEADLETTER_FILE, create=False) as store:
        return {letter.topic for letter in store.list(limit=10**6)}


# Few examples of 150 messages each, no shrinking: every example drives the real services.
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(data=st.data())
def test_fuzz_while_valid_stream_flows(ingester, influxd, mosquitto, db_name, ingest_env, data):
    batch = data.draw(st.integers(0, 10**6), label="batch")  # distinct sensor ids across examples
    fuzz = [data.draw(fuzzed(batch * 1000 + i), label=f"fuzz{i}") for i in range(150)]
    valid = native_stream(n_sensors=20, per_sensor=20, base_ms=NOW_MS - 3_600_000 - batch)
    valid = [(t.replace("/s0", f"/v{batch}-"), p, (c, s.replace("s0", f"v{batch}-"), ts)) for t, p, (c, s, ts) in valid]
    mixed = [(t, p) for t, p, _ in valid] + fuzz
    random.Random(batch).shuffle(mixed)
    assert publish_all(mosquitto.url, mixed) == len(mixed)

    expected = {k for _, _, k in valid}
    data_dir = Path(ingest_env["HEATWATCH_DATA_DIR"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        keys = set(stored_keys(influxd.url, db_name))
        stored = {s for _, s, _ in keys}
        dead = dead_topics(data_dir)
        unaccounted = [t for t, _ in fuzz if t.split("/")[3 if t.startswith("v3/") else 2] not in stored
                       and t not in dead]
        if expected <= keys and not unaccounted:
            break
        time.sleep(0.5)
    assert expected <= keys, f"{len(expected - keys)} valid readings missing"
    assert not unaccounted, f"fuzzed messages neither stored nor dead-lettered: {unaccounted[:5]}"
    assert ingester.running
    metrics = httpx.get(f"http://127.0.0.1:{ingest_env['HEATWATCH_METRICS_PORT']}/metrics").text
    assert "heatwatch_ingest_rejected_total" in metrics
