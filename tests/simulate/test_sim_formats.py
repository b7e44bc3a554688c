"""Payloads of the formats of docs/architecture.md (MQTT topics), and what a decoder must get back from them."""

from __future__ import annotations

import base64
import json
import re
import struct
from datetime import datetime, timedelta

import pytest
from paho.mqtt.client import topic_matches_sub

from heatwatch.core.model import Reading, Sensor
from heatwatch.core.settings import DEFAULT_SUBSCRIPTIONS
from heatwatch.simulate import SimOptions, encode, format_for, load_example_sensors, prepare
from heatwatch.simulate.options import LOCAL_TZ

SENSORS = {s.id: s for s in load_example_sensors()}
TS = int(datetime(2025, 7, 14, 15, 0, tzinfo=LOCAL_TZ).timestamp() * 1000)
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")


def _reading(sensor: Sensor, ts: int = TS, t: float = 23.47, rh: float = 55.23, bat: float = 3.0871) -> Reading:
    return Reading(sensor.town, sensor.id, ts, t, rh, bat)


def _ms(rfc3339: str) -> int:
    base, frac = rfc3339.rstrip("Z").split(".")
    dt = datetime.fromisoformat(base + "+00:00")
    return int(dt.timestamp()) * 1000 + int(frac.ljust(9, "0")[:3])


def test_profiles_map_to_formats() -> None:
    assert format_for(SENSORS["vitre-centre-01"]) == "json"      # native
    assert format_for(SENSORS["vitre-centre-02"]) == "senml"
    for sid in ("vitre-centre-03", "vitre-centre-04", "vitre-centre-06"):
        assert format_for(SENSORS[sid]) == "tts"
    assert format_for(SENSORS["vitre-centre-03"], "json") == "json"
    with pytest.raises(ValueError):
        format_for(Sensor(id="x-1", town="vitre", device_profile="acme-9000"))


def test_native_json_single_and_backlog() -> None:
    s = SENSORS["vitre-centre-01"]
    m = encode(s, [_reading(s)])
    assert m.topic == "heat/vitre/vitre-centre-01"
    assert json.loads(m.payload) == {"ts": TS, "temperature": 23.47, "humidity": 55.2, "battery_v": 3.087}
    assert m.readings == (Reading("vitre", "vitre-centre-01", TS, 23.47, 55.2, 3.087),)
    m = encode(s, [_reading(s, TS), _reading(s, TS + 300_000, t=22.0)])
    body = json.loads(m.payload)
    assert isinstance(body, list) and [o["ts"] for o in body] == [TS, TS + 300_000]
    assert len(m.readings) == 2


def test_senml_pack_single_and_backlog() -> None:
    s = SENSORS["vitre-centre-02"]
    m = encode(s, [_reading(s)])
    assert m.topic == "senml/vitre/vitre-centre-02"
    pack = json.loads(m.payload)
    assert pack[0]["bn"] == "urn:dev:heatwatch:vitre-centre-02:" and pack[0]["bt"] == TS / 1000
    assert [(r["n"], r["u"]) for r in pack] == [("temperature", "Cel"), ("humidity", "%RH"), ("battery", "%EL")]
    assert pack[0]["v"] == 23.47 and pack[1]["v"] == 55.2 and 0 <= pack[2]["v"] <= 100
    assert m.readings[0].battery_v is None  # %EL is a charge, not volts
    m = encode(s, [_reading(s, TS), _reading(s, TS + 300_000)])
    pack = json.loads(m.payload)
    assert len(pack) == 6 and "bn" not in pack[3]
    assert [r.get("t", 0) for r in pack] == [0, 0, 0, 300, 300, 300]


def _decode_lht65(b: bytes) -> dict[str, object]:
    # Port of the TTN device-repository codec vendor/dragino/lht65.js (fPort 2, Ext = 1).
    bat, t, h, ext, ds = struct.unpack(">HhHBh", b[:9])
    return {"BatV": (bat & 0x3FFF) / 1000, "Bat_status": b[0] >> 6, "TempC_SHT": t / 100,
            "Hum_SHT": (h & 0xFFF) / 10, "Ext_sensor": "Temperature Sensor" if ext & 0x0F == 1 else "?",
            "TempC_DS": ds / 100}


def _decode_em300(b: bytes) -> dict[str, object]:
    # vendor/milesight-iot/em300-th.js: channel id, channel type, value.
    assert b[0:2] == b"\x01\x75" and b[3:5] == b"\x03\x67" and b[7:9] == b"\x04\x68"
    return {"battery": b[2], "temperature": struct.unpack("<h", b[5:7])[0] / 10, "humidity": b[9] / 2}


def _decode_elsys(b: bytes) -> dict[str, object]:
    # vendor/elsys/elsys.js: type byte then value (0x01 temp/10, 0x02 RH, 0x04 lux, 0x05 motion, 0x07 vdd mV).
    out: dict[str, object] = {}
    i = 0
    while i < len(b):
        typ = b[i]
        if typ == 0x01:
            out["temperature"] = struct.unpack(">h", b[i + 1:i + 3])[0] / 10
            i += 3
        elif typ == 0x02:
            out["humidity"] = b[i + 1]
            i += 2
        elif typ == 0x04:
            out["light"] = struct.unpack(">H", b[i + 1:i + 3])[0]
            i += 3
        elif typ == 0x05:
            out["motion"] = b[i + 1]
            i += 2
        elif typ == 0x07:
            out["vdd"] = struct.unpack(">H", b[i + 1:i + 3])[0]
            i += 3
        else:
            raise AssertionError(f"unknown Elsys type {typ}")
    return out


@pytest.mark.parametrize(("sensor_id", "f_port", "decoder", "fields"), [
    ("vitre-centre-03", 2, _decode_lht65, ["BatV", "Bat_status", "TempC_SHT", "Hum_SHT", "Ext_sensor", "TempC_DS"]),
    ("vitre-centre-04", 85, _decode_em300, ["battery", "temperature", "humidity"]),
    ("vitre-centre-06", 5, _decode_elsys, ["temperature", "humidity", "light", "motion", "vdd"]),
])
def test_tts_uplink_shape_and_decoded_payload(sensor_id: str, f_port: int, decoder, fields: list[str]) -> None:  # type: ignore[no-untyped-def]
    s = SENSORS[sensor_id]
    m = encode(s, [_reading(s)])
    assert m.topic == f"v3/heatwatch-vitre@ttn/devices/{s.mqtt_identity}/up"
    up = json.loads(m.payload)
    ids = up["end_device_ids"]
    assert ids["device_id"] == s.mqtt_identity
    assert ids["application_ids"] == {"application_id": "heatwatch-vitre"}
    assert re.fullmatch(r"[0-9A-F]{16}", ids["dev_eui"]) and ids["dev_eui"].lower() == s.mqtt_identity[4:]
    assert re.fullmatch(r"[0-9A-F]{8}", ids["dev_addr"])
    assert RFC3339.match(up["received_at"])
    msg = up["uplink_message"]
    assert msg["f_port"] == f_port and msg["f_cnt"] > 0
    assert list(msg["decoded_payload"]) == fields
    assert decoder(base64.b64decode(msg["frm_payload"])) == msg["decoded_payload"]
    assert RFC3339.match(msg["received_at"]) and msg["consumed_airtime"].endswith("s")
    assert msg["settings"]["data_rate"]["lora"]["bandwidth"] == 125000
    assert 7 <= msg["settings"]["data_rate"]["lora"]["spreading_factor"] <= 12
    assert msg["settings"]["frequency"].isdigit()
    assert msg["rx_metadata"]
    for gw in msg["rx_metadata"]:
        assert gw["gateway_ids"]["gateway_id"] and RFC3339.match(gw["received_at"])
        assert {"rssi", "channel_rssi"} <= gw.keys()  # snr 0 is omitted, as TTS omits zero fields
    # What a decoder must store: NS reception time, strongest gateway, values at frame precision.
    r = m.readings[0]
    assert r.ts_ms == _ms(msg["received_at"]) and 0 < r.ts_ms - TS < 2000
    assert r.rssi == max(gw["rssi"] for gw in msg["rx_metadata"])
    assert abs(r.temperature - 23.47) <= 0.05 and abs(r.humidity - 55.23) <= 0.5  # type: ignore[operator]


def test_every_message_of_a_run_is_json_on_a_subscribed_topic() -> None:
    sim = prepare(SimOptions(start=datetime(2025, 7, 14), duration=timedelta(hours=2)))
    filters = {sub.format: sub.filter for sub in DEFAULT_SUBSCRIPTIONS}
    seen = set()
    for m in sim.messages():
        json.loads(m.payload)
        assert topic_matches_sub(filters[m.format], m.topic)
        seen.add(m.format)
    assert seen == {"json", "senml", "tts"}


@pytest.mark.parametrize("fmt", ["json", "senml", "tts", "chirpstack"])
def test_format_override_applies_to_every_sensor(fmt: str) -> None:
    sim = prepare(SimOptions(start=datetime(2025, 7, 14), duration=timedelta(minutes=10), format=fmt))  # type: ignore[arg-type]
    msgs = list(sim.messages())
    assert msgs and {m.format for m in msgs} == {fmt}


@pytest.mark.parametrize("lorawan", ["tts", "chirpstack"])
def test_ingest_decoders_recover_exactly_the_published_readings(lorawan: str) -> None:
    decoders = pytest.importorskip("heatwatch.ingest.decoders")
    sim = prepare(SimOptions(start=datetime(2025, 7, 14), duration=timedelta(days=2), lorawan=lorawan))  # type: ignore[arg-type]
    assert lorawan in {m.format for m in sim.messages()}
    identities = {s.mqtt_identity: (s.town, s.id) for s in sim.sensors if s.mqtt_identity}

    class Lookup:
        def resolve(self, identity: str) -> tuple[str, str] | None:
            return identities.get(identity)

    def key(r: Reading) -> tuple[object, ...]:
        return (r.town, r.sensor, r.ts_ms)

    for m in sim.messages():
        got = decoders.DECODERS[m.format](m.payload, decoders.Context(m.topic, m.emit_ms, Lookup()))
        assert not got.rejects, (m.topic, got.rejects)
        assert sorted(map(key, got.readings)) == sorted(map(key, m.readings))
        for a, b in zip(sorted(got.readings, key=key), sorted(m.readings, key=key), strict=True):
            for field in ("temperature", "humidity", "battery_v", "battery_pct", "rssi"):
                x, y = getattr(a, field), getattr(b, field)
                assert (x is None) == (y is None) and (x is None or abs(x - y) < 1e-9), (m.topic, field, x, y)
