"""Message → lines: decoder choice by topic, validation, dead letters, ignored topics (pure, no services)."""

from __future__ import annotations

import json
import time

import mqtt5

from heatwatch.core.settings import DEFAULT_SUBSCRIPTIONS, IngestSettings
from heatwatch.ingest.client import Received
from heatwatch.ingest.pipeline import Pipeline
from heatwatch.ingest.validate import Validator

NOW = int(time.time() * 1000)


def pipeline(max_payload_bytes: int = 1000, **kw) -> Pipeline:
    return Pipeline(DEFAULT_SUBSCRIPTIONS, Validator(towns={"vitre", "saint-omer"}, backlog_ms=86_400_000),
                    max_payload_bytes=max_payload_bytes, ignore=["heat/alerts/#"], **kw)


def msg(topic: str, body: object) -> Received:
    """One message as the MQTT client hands it over: a group of one PUBLISH packet."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Received(NOW, [mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=1)])


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
        assert out.dead[0].reason == reason and out.dead[0].payload == m.packets[0].payload


def _registry(tmp_path):
    from heatwatch.core.model import Sensor
    from heatwatch.core.registry import Registry

    reg = Registry(tmp_path / "registry.sqlite", towns={"vitre", "saint-omer"})
    reg.upsert(Sensor(id="vitre-centre-01", town="vitre", mqtt_identity="A8-40-41-00-01-81-C3-5A",
                      device_profile="dragino-lht65"))
    return reg


def test_registered_sensor_under_another_town_is_town_mismatch(tmp_path):
    seen: list[tuple[str, str]] = []
    with _registry(tmp_path) as reg:
        p = pipeline(devices=reg, on_sensor=lambda t, s: seen.append((t, s)))
        wrong = msg("heat/saint-omer/vitre-centre-01", {"ts": NOW, "temperature": 21.0})
        senml = msg("senml/saint-omer/vitre-centre-01", [{"bn": "urn:dev:heatwatch:vitre-centre-01:", "bt": NOW / 1000,
                                                          "n": "t", "u": "Cel", "v": 21.0}])
        right = msg("heat/vitre/vitre-centre-01", {"ts": NOW, "temperature": 21.5})
        out = p.process([wrong, senml, right])
        assert dict(out.rejected) == {"town_mismatch": 2}
        assert "registered in 'vitre'" in out.dead[0].detail
        assert out.lines == [f'reading,sensor=vitre-centre-01,town=vitre temperature=21.5,source="json" {NOW}']
        assert seen == [("vitre", "vitre-centre-01")]


def test_unregistered_sensor_named_like_a_town_or_reserved_word_is_not_registered(tmp_path):
    seen: list[tuple[str, str]] = []
    with _registry(tmp_path) as reg:
        p = pipeline(devices=reg, on_sensor=lambda t, s: seen.append((t, s)))
        out = p.process([msg("heat/vitre/saint-omer", {"ts": NOW, "temperature": 21.0}),
                         msg("heat/vitre/live", {"ts": NOW, "temperature": 21.0})])
        assert dict(out.rejected) == {"bad_topic": 2} and seen == [] and out.lines == []


def test_lorawan_uplink_by_deveui_lands_in_the_registered_town(tmp_path):
    # The registry spells the DevEUI with dashes; ChirpStack in lower case, under a Saint-Omer application.
    from pathlib import Path

    case = json.loads((Path(__file__).parent / "decoders/data/chirpstack-v4-dragino-lht65n.json").read_text())
    body = case["message"]
    body["deviceInfo"].update(devEui="a84041000181c35a", applicationName="heatwatch-saint-omer")
    body["time"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(NOW / 1000))
    with _registry(tmp_path) as reg:

        from heatwatch.ingest.decoders import decoders_for

        decoders = decoders_for(IngestSettings.load())
        p = pipeline(devices=reg, decoders=decoders, max_payload_bytes=65536)
        out = p.process([msg("application/x/device/a84041000181c35a/event/up", body)])
        assert out.dead == []
        assert out.lines[0].startswith("reading,sensor=vitre-centre-01,town=vitre temperature=28.29,humidity=88.6,"
                                       "battery_v=3.062,rssi=-36.0,source=\"chirpstack\",snr=10.5")
