"""ChirpStack MQTT integration events (v4 and v3 JSON shapes): placement, identity, time, rejections.

The envelopes come from ``data/chirpstack-*.json`` (ChirpStack's documented ``up`` event with a
device codec's output); each test changes what it is about.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatwatch.core.errors import DecodeError
from heatwatch.ingest.decoders import DECODERS, Context
from heatwatch.ingest.decoders.chirpstack import ChirpStackDecoder, decode, topic_app_eui
from heatwatch.ingest.decoders.lorawan import Network
from heatwatch.ingest.reasons import Reason

DATA = Path(__file__).parent / "data"
NOW_MS = 1_719_835_300_000
V4 = json.loads((DATA / "chirpstack-v4-milesight-em300-th.json").read_text(encoding="utf-8"))
V3 = json.loads((DATA / "chirpstack-v3-json-milesight-em300-th.json").read_text(encoding="utf-8"))
APP = "17c82e96-be03-4f38-aef3-f83d48582d97"
TOWNS = ["vitre", "saint-omer"]


class Devices:
    def __init__(self, places: dict[str, tuple[str, str]], profiles: dict[str, str] | None = None) -> None:
        self.places, self.profiles = places, profiles or {}

    def resolve(self, identity: str) -> tuple[str, str] | None:
        return self.places.get(identity)

    def device_profile(self, identity: str) -> str | None:
        return self.profiles.get(identity)


def v4(**info: object) -> dict:
    msg = copy.deepcopy(V4["message"])
    msg["deviceInfo"].update(info)
    return msg


def run(msg: object, topic: str = V4["topic"], devices: object = None, decoder: ChirpStackDecoder | None = None):
    dec = decoder or ChirpStackDecoder(Network(towns=TOWNS))
    return dec(orjson.dumps(msg), Context(topic, NOW_MS, devices))  # type: ignore[arg-type]


def reject(msg: object, topic: str = V4["topic"], devices: object = None, decoder=None) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        run(msg, topic, devices, decoder)
    return info.value


def test_registered_for_chirpstack_format() -> None:
    assert DECODERS["chirpstack"] is decode


def test_v4_uplink_unregistered_device_name_is_the_sensor() -> None:
    [r] = run(v4()).readings
    assert (r.town, r.sensor, r.source) == ("saint-omer", "em300-th-01", "chirpstack")  # "heatwatch-saint-omer"
    assert (r.temperature, r.humidity, r.battery_pct, r.rssi) == (20.0, 30.0, 50.0, -101.0)
    assert r.ts_ms == 1_719_835_200_775  # "time", nanoseconds truncated


def test_device_name_not_a_sensor_id_uses_the_deveui() -> None:
    [r] = run(v4(deviceName="Capteur gare n°1")).readings
    assert r.sensor == "24e124136b502217"


@pytest.mark.parametrize("apps, info", [
    ({APP: "vitre"}, {}),  # by application id
    ({"Mairie - réseau LoRa": "vitre"}, {"applicationName": "Mairie - réseau LoRa"}),  # by application name
])
def test_app_towns_setting(apps: dict, info: dict) -> None:
    dec = ChirpStackDecoder(Network(apps, towns=TOWNS))
    [r] = run(v4(**info), decoder=dec).readings
    assert r.town == "vitre"


@pytest.mark.parametrize("name, town", [("Capteurs Vitré", "vitre"), ("ilot-chaleur-saint-omer", "saint-omer"),
                                        ("Saint-Omer", "saint-omer")])
def test_application_name_convention(name: str, town: str) -> None:
    [r] = run(v4(applicationName=name)).readings
    assert r.town == town


def test_unknown_application_is_unknown_device() -> None:
    assert reject(v4(applicationName="Test application")).reason == Reason.unknown_device


def test_registry_by_deveui_whatever_the_device_name() -> None:
    devices = Devices({"24E124136B502217": ("vitre", "vit-em300-3")}, {"24E124136B502217": "milesight-em300-th"})
    [r] = run(v4(deviceName="renamed-in-chirpstack", applicationName="Test application"), devices=devices).readings
    assert (r.town, r.sensor) == ("vitre", "vit-em300-3")


def test_registry_by_device_name() -> None:
    devices = Devices({"em300-th-01": ("vitre", "vit-em300-4")})
    [r] = run(v4(applicationName="Test application"), devices=devices).readings
    assert (r.town, r.sensor) == ("vitre", "vit-em300-4")


def test_topic_and_payload_deveui_must_agree() -> None:
    exc = reject(v4(devEui="24e124136b509999"))
    assert exc.reason == Reason.sensor_mismatch


def test_time_falls_back_to_network_server_then_receipt() -> None:
    msg = v4()
    del msg["time"]
    msg["rxInfo"][0]["nsTime"] = "2024-07-01T12:00:01.5Z"
    assert run(msg).readings[0].ts_ms == 1_719_835_201_500
    del msg["rxInfo"][0]["nsTime"]
    assert run(msg).readings[0].ts_ms == NOW_MS


def test_v3_json_v3_marshaler() -> None:
    [r] = run(V3["message"], V3["topic"]).readings
    assert (r.town, r.sensor, r.rssi, r.temperature) == ("vitre", "em300-th-07", -57.0, 20.0)
    assert r.ts_ms == NOW_MS  # no publishedAt in this shape: time of receipt


def test_v3_protobuf_json_marshaler_base64_deveui_and_object_json() -> None:
    msg = copy.deepcopy(V3["message"])
    msg["devEUI"] = base64.b64encode(bytes.fromhex("24e124136b50221a")).decode()
    msg["objectJSON"] = json.dumps(msg.pop("object"))
    msg["publishedAt"] = "2024-07-01T12:00:00.5Z"
    [r] = run(msg, "application/123/device/24e124136b50221a/rx").readings
    assert (r.sensor, r.humidity, r.ts_ms) == ("em300-th-07", 30.0, 1_719_835_200_500)


@pytest.mark.parametrize("topic", [
    "application/app/device/0102030405060708/event/up", "application/app/device/01-02-03-04-05-06-07-08/rx",
])
def test_topics(topic: str) -> None:
    assert topic_app_eui(Context(topic, 0)) == ("app", "0102030405060708")


@pytest.mark.parametrize("topic", [
    "application/app/device/0102030405060708/event/join", "application/app/device/xyz/event/up",
    "application/app/devices/0102030405060708/event/up", "application//device/0102030405060708/rx",
    "application/app/device/0102030405060708/event/up/x",
])
def test_bad_topic(topic: str) -> None:
    assert reject(v4(), topic).reason == Reason.bad_topic


def test_other_events_are_bad_shape() -> None:
    status = {"deduplicationId": "bf2a9746", "time": "2022-07-18T09:35:06.927172638+00:00", "margin": 10,
              "batteryLevel": 88.3}
    assert reject(status).reason == Reason.bad_shape


def test_no_codec_is_no_measurement() -> None:
    msg = v4()
    del msg["object"]
    exc = reject(msg)
    assert exc.reason == Reason.no_measurement and "codec" in exc.detail


_JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=6),
                     lambda i: st.lists(i, max_size=3) | st.dictionaries(st.text(max_size=4), i, max_size=4),
                     max_leaves=12)
_RX = st.none() | st.lists(st.dictionaries(st.text(max_size=5), st.integers(-2**40, 2**40) | st.text(max_size=4)))


@settings(max_examples=200)
@given(obj=_JSON, when=st.none() | st.text(max_size=30), rx=_RX)
def test_fuzz_never_crashes(obj: object, when: object, rx: object) -> None:
    msg = v4()
    msg.update(object=obj, time=when, rxInfo=rx)
    try:
        run(msg)
    except DecodeError as exc:
        assert exc.reason in set(Reason)


def test_app_towns_setting_names_configured_towns_only() -> None:
    from heatwatch.core.errors import ConfigError
    from heatwatch.core.settings import IngestSettings
    from heatwatch.ingest.decoders.lorawan import network_from_settings

    net = network_from_settings(IngestSettings.load(app_towns={"Mairie": "vitre"},
                                                    tts_app_towns={"old-app": "saint-omer"}))
    assert (net.town_for_app("Mairie"), net.town_for_app("old-app")) == ("vitre", "saint-omer")  # old name merged
    with pytest.raises(ConfigError, match="vitree"):
        network_from_settings(IngestSettings.load(app_towns={"Mairie": "vitree"}))


def test_snr_v4_and_v3() -> None:
    """The SNR of the gateway with the best RSSI: ``snr`` in v4, ``loRaSNR`` in v3 (the captured uplinks')."""
    [r4] = run(v4()).readings
    [r3] = run(V3["message"], V3["topic"]).readings
    for r, msg in ((r4, V4["message"]), (r3, V3["message"])):
        best = max(msg["rxInfo"], key=lambda g: g["rssi"])
        assert r.snr == float(best.get("snr", best.get("loRaSNR"))), (r, best)
