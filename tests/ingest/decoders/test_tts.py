"""The Things Stack v3 uplink decoder, with real-world-shaped uplinks of each built-in profile."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatwatch.core.errors import DecodeError
from heatwatch.core.settings import IngestSettings
from heatwatch.ingest.decoders import DECODERS, Context
from heatwatch.ingest.decoders.profiles import parse_profiles
from heatwatch.ingest.decoders.tts import TtsDecoder, decode, from_settings, rfc3339_ms, topic_app_device
from heatwatch.ingest.reasons import Reason

NOW_MS = 1_719_835_300_000
RECEIVED_AT_MS = 1_719_835_200_123  # 2024-07-01T12:00:00.123456789Z truncated to ms


def uplink(device: str, app: str, decoded: dict[str, Any] | None, rssi: list[float] = (-97.0,)) -> dict[str, Any]:
    """An uplink as TTS v3 publishes it (trimmed of the fields heatwatch does not read)."""
    up: dict[str, Any] = {
        "session_key_id": "AYa1b2c3d4e5f6g7h8i9j0==",
        "f_port": 2,
        "f_cnt": 4120,
        "frm_payload": "y6QJYwJcAX//f/8=",
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": f"gw-{i}", "eui": f"B827EBFFFE8B01{i:02X}"},
                "time": "2024-07-01T12:00:00.098765Z",
                "timestamp": 2_384_104_612 + i,
                "rssi": r,
                "channel_rssi": r,
                "snr": 7.25,
                "uplink_token": "ChIKEAoOZ3ctMRIIuCfr//6LAQ==",
                "received_at": "2024-07-01T12:00:00.101234567Z",
            }
            for i, r in enumerate(rssi)
        ],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}, "frequency": "868100000"},
        "received_at": "2024-07-01T12:00:00.123456789Z",
        "consumed_airtime": "0.061696s",
        "network_ids": {"net_id": "000013", "tenant_id": "ttn", "cluster_id": "eu1"},
    }
    if decoded is not None:
        up["decoded_payload"] = decoded
    return {
        "end_device_ids": {
            "device_id": device,
            "application_ids": {"application_id": app},
            "dev_eui": "A840414E31851234",
            "join_eui": "A000000000000100",
            "dev_addr": "260B1234",
        },
        "correlation_ids": ["gs:uplink:01J1ZQ8KX4Y2"],
        "received_at": "2024-07-01T12:00:00.234567891Z",
        "uplink_message": up,
    }


LHT65 = {"BatV": 3.052, "Bat_status": 3, "Ext_sensor": "Temperature Sensor", "Hum_SHT": 55.4,
         "TempC_DS": 327.67, "TempC_SHT": 24.31}
EM300 = {"battery": 92, "humidity": 48.5, "temperature": 27.3}
ERS = {"humidity": 41, "light": 123, "motion": 0, "temperature": 22.8, "vdd": 3641}


class Devices:
    """A registry stand-in: the DeviceLookup protocol plus the optional device_profile hook."""

    def __init__(self, places: dict[str, tuple[str, str]], profiles: dict[str, str] | None = None) -> None:
        self.places = places
        self.profiles = profiles or {}

    def resolve(self, identity: str) -> tuple[str, str] | None:
        return self.places.get(identity)

    def device_profile(self, identity: str) -> str | None:
        return self.profiles.get(identity)


def topic(device: str, app: str = "heatwatch-vitre", tenant: str | None = "ttn") -> str:
    return f"v3/{app}@{tenant}/devices/{device}/up" if tenant else f"v3/{app}/devices/{device}/up"


def run(msg: object, t: str, devices: object = None, decoder: TtsDecoder = decode):
    return decoder(orjson.dumps(msg), Context(t, NOW_MS, devices))  # type: ignore[arg-type]


def reject(msg: object, t: str, devices: object = None, decoder: TtsDecoder = decode) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        run(msg, t, devices, decoder)
    return info.value


def test_registered_for_tts_format() -> None:
    assert DECODERS["tts"] is decode


def test_dragino_lht65_via_registry() -> None:
    devices = Devices({"lht65-0042": ("vitre", "vit-007")}, {"lht65-0042": "dragino-lht65"})
    out = run(uplink("lht65-0042", "heatwatch-vitre", LHT65), topic("lht65-0042"), devices)
    [r] = out.readings
    assert (r.town, r.sensor, r.ts_ms) == ("vitre", "vit-007", RECEIVED_AT_MS)
    assert (r.temperature, r.humidity, r.battery_v, r.rssi, r.source) == (24.31, 55.4, 3.052, -97.0, "tts")


def test_milesight_em300_th_autodetected_battery_percent() -> None:
    out = run(uplink("em300-th-01", "heatwatch-saint-omer", EM300), topic("em300-th-01", "heatwatch-saint-omer"))
    [r] = out.readings
    assert (r.town, r.sensor) == ("saint-omer", "em300-th-01")  # unknown to the registry: device id
    assert (r.temperature, r.humidity, r.battery_v, r.battery_pct) == (27.3, 48.5, None, 92.0)


def test_elsys_ers_vdd_millivolts_to_volts() -> None:
    out = run(uplink("ers-lite-9", "heatwatch-vitre", ERS), topic("ers-lite-9", tenant=None))
    [r] = out.readings
    assert (r.temperature, r.humidity) == (22.8, 41.0)
    assert r.battery_v == pytest.approx(3.641)


def test_omitted_fields_are_tolerated() -> None:
    # TTS drops zero/empty fields: an LHT65 at 0 % RH... and a payload with temperature only.
    decoded = {"BatV": 2.98, "Bat_status": 2, "TempC_SHT": -3.5}
    out = run(uplink("lht65-0042", "heatwatch-vitre", decoded), topic("lht65-0042"))
    [r] = out.readings
    assert (r.temperature, r.humidity, r.battery_v) == (-3.5, None, 2.98)


def test_best_rssi_over_several_gateways() -> None:
    msg = uplink("em300-th-01", "heatwatch-vitre", EM300, rssi=[-112.0, -87.0, -101.0])
    msg["uplink_message"]["rx_metadata"].append({"gateway_ids": {"gateway_id": "packetbroker"}})  # no rssi
    msg["uplink_message"]["rx_metadata"].append({"gateway_ids": {"gateway_id": "x"}, "rssi": "strong"})
    assert run(msg, topic("em300-th-01")).readings[0].rssi == -87.0


def test_channel_rssi_when_rssi_omitted() -> None:
    msg = uplink("em300-th-01", "heatwatch-vitre", EM300)
    del msg["uplink_message"]["rx_metadata"][0]["rssi"]
    msg["uplink_message"]["rx_metadata"][0]["channel_rssi"] = -99
    assert run(msg, topic("em300-th-01")).readings[0].rssi == -99.0


def test_no_rx_metadata_means_no_rssi() -> None:
    msg = uplink("em300-th-01", "heatwatch-vitre", EM300)
    del msg["uplink_message"]["rx_metadata"]
    assert run(msg, topic("em300-th-01")).readings[0].rssi is None


def test_time_falls_back_to_top_level_then_receipt() -> None:
    msg = uplink("em300-th-01", "heatwatch-vitre", EM300)
    del msg["uplink_message"]["received_at"]
    assert run(msg, topic("em300-th-01")).readings[0].ts_ms == 1_719_835_200_234  # truncated, not rounded
    del msg["received_at"]
    assert run(msg, topic("em300-th-01")).readings[0].ts_ms == NOW_MS


def test_device_time_from_profile() -> None:
    decoded = {"temperature": 21.0, "humidity": 70.0, "battery_v": 3.3, "ts": 1_719_835_000}
    out = run(uplink("custom-1", "heatwatch-vitre", decoded), topic("custom-1"))
    [r] = out.readings
    assert (r.ts_ms, r.battery_v) == (1_719_835_000_000, 3.3)  # heatwatch-generic profile detected
    decoded["ts"] = "2024-07-01T11:56:40.000000001Z"
    assert run(uplink("custom-1", "heatwatch-vitre", decoded), topic("custom-1")).readings[0].ts_ms == 1_719_835_000_000


def test_registry_profile_wins_over_detection() -> None:
    # Extra fields that look like an Elsys; the registry says it is an EM300-TH.
    decoded = {**EM300, "vdd": 3600, "light": 5}
    devices = Devices({"em300-th-01": ("vitre", "em300-th-01")}, {"em300-th-01": "milesight-em300-th"})
    assert run(uplink("em300-th-01", "heatwatch-vitre", decoded), topic("em300-th-01"), devices).readings[0].battery_v \
        is None
    assert run(uplink("em300-th-01", "heatwatch-vitre", decoded), topic("em300-th-01")).readings[0].battery_v == 3.6


def test_unknown_registry_profile_is_dead_lettered_not_guessed() -> None:
    # Guessing could store the wrong field; the dead letter is replayed once the profile exists.
    devices = Devices({"lht65-0042": ("vitre", "vit-007")}, {"lht65-0042": "dragino-lht65-ext"})
    exc = reject(uplink("lht65-0042", "heatwatch-vitre", LHT65), topic("lht65-0042"), devices)
    assert exc.reason == Reason.unknown_profile and "dragino-lht65-ext" in exc.detail


def test_dragino_stock_formatter_strings_and_no_probe_sentinel() -> None:
    decoded = {"BatV": 3.062, "Ext_sensor": "Temperature Sensor", "Hum_SHT": "48.0", "TempC_DS": "327.67",
               "TempC_SHT": "27.97"}
    [r] = run(uplink("lht65-0042", "heatwatch-vitre", decoded), topic("lht65-0042")).readings
    assert (r.temperature, r.humidity, r.battery_v) == (27.97, 48.0, 3.062)


@pytest.mark.parametrize("humidity", [6553.5, "6553.5", 655.35, 65535, "", "NaN", None])
def test_sentinel_or_empty_humidity_is_absent_temperature_kept(humidity: object) -> None:
    decoded = {"BatV": 3.0, "Bat_status": 3, "TempC_SHT": "21.50", "Hum_SHT": humidity}
    [r] = run(uplink("lht65-0042", "heatwatch-vitre", decoded), topic("lht65-0042")).readings
    assert (r.temperature, r.humidity) == (21.5, None)


def test_every_value_a_sentinel_is_no_measurement() -> None:
    decoded = {"BatV": 3.0, "Bat_status": 3, "TempC_SHT": 327.67, "Hum_SHT": 6553.5}
    assert reject(uplink("lht65-0042", "heatwatch-vitre", decoded), topic("lht65-0042")).reason == Reason.no_measurement


def test_profile_absent_list_adds_sentinels() -> None:
    profiles = parse_profiles({"acme": {"temperature": "t", "humidity": {"field": "rh", "absent": [0]},
                                        "absent": [-99.9]}})
    dec = TtsDecoder(profiles=profiles)
    [r] = run(uplink("acme-1", "heatwatch-vitre", {"t": 20.5, "rh": 0}), topic("acme-1"), decoder=dec).readings
    assert (r.temperature, r.humidity) == (20.5, None)
    [r] = run(uplink("acme-1", "heatwatch-vitre", {"t": -99.9, "rh": 40}), topic("acme-1"), decoder=dec).readings
    assert (r.temperature, r.humidity) == (None, 40.0)


@pytest.mark.parametrize("registered", ["A840414E31851234", "a8:40:41:4e:31:85:12:34", "a840-414e-3185-1234",
                                        "eui-a840414e31851234"])
def test_deveui_identity_whatever_the_device_id(registered: str) -> None:
    from heatwatch.core.model import normalize_eui

    eui = normalize_eui(registered)
    devices = Devices({eui: ("saint-omer", "so-11")}, {eui: "dragino-lht65"})
    # The TTS device id is nothing the registry knows; its DevEUI (A840414E31851234 in uplink()) is.
    [r] = run(uplink("my-lht-renamed", "acme-demo", LHT65), topic("my-lht-renamed", "acme-demo"), devices).readings
    assert (r.town, r.sensor, r.temperature) == ("saint-omer", "so-11", 24.31)


def test_added_profile_is_one_table() -> None:
    profiles = parse_profiles({
        "acme-th": {"temperature": {"field": "t10", "scale": 0.1}, "humidity": "rh", "time": "epoch"}})
    dec = TtsDecoder(profiles=profiles)
    decoded = {"t10": 215, "rh": 63, "epoch": 1_719_835_000}
    [r] = run(uplink("acme-1", "heatwatch-vitre", decoded), topic("acme-1"), decoder=dec).readings
    assert (r.temperature, r.humidity, r.ts_ms) == (pytest.approx(21.5), 63.0, 1_719_835_000_000)


def test_app_to_town_mapping_and_town_list() -> None:
    dec = TtsDecoder({"mairie-capteurs": "vitre"}, towns=["vitre", "saint-omer"])
    assert dec.town_for_app("mairie-capteurs") == "vitre"
    assert dec.town_for_app("heatwatch-saint-omer") == "saint-omer"
    assert dec.town_for_app("ilot-chaleur-saint-omer") == "saint-omer"
    assert dec.town_for_app("vitre-lorawan") == "vitre"
    assert dec.town_for_app("something-else") is None
    out = run(uplink("em300-th-01", "mairie-capteurs", EM300), topic("em300-th-01", "mairie-capteurs"), decoder=dec)
    assert out.readings[0].town == "vitre"


def test_from_settings() -> None:
    dec = from_settings(IngestSettings.load(tts_app_towns={"x-app": "vitre"}))
    assert dec.town_for_app("x-app") == "vitre"
    assert dec.town_for_app("capteurs-saint-omer") == "saint-omer"
    assert from_settings(IngestSettings.load()).town_for_app("x-app") is None


def test_rfc3339_ms() -> None:
    assert rfc3339_ms("2024-07-01T12:00:00.123456789Z") == RECEIVED_AT_MS
    assert rfc3339_ms("2024-07-01T14:00:00+02:00") == 1_719_835_200_000
    assert rfc3339_ms("2024-07-01T12:00:00.5Z") == 1_719_835_200_500
    assert rfc3339_ms("2024-07-01T12:00:00.999999999Z") == 1_719_835_200_999
    for bad in ("2024-07-01T12:00:00", "yesterday", 17, "2024-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00"):
        with pytest.raises(DecodeError) as info:
            rfc3339_ms(bad)
        assert info.value.reason == Reason.bad_timestamp


def test_topic_app_device() -> None:
    assert topic_app_device(Context("v3/heatwatch-vitre@ttn/devices/lht65-1/up", 0)) == ("heatwatch-vitre", "lht65-1")
    assert topic_app_device(Context("v3/heatwatch-vitre/devices/lht65-1/up", 0)) == ("heatwatch-vitre", "lht65-1")


# Rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [
    "v3/app/devices/dev/join", "v3/app/devices/up", "v2/app/devices/dev/up", "v3/app/gateways/dev/up",
    "v3/@ttn/devices/dev/up", "v3/app/devices/-dev/up",
])
def test_bad_topic(t: str) -> None:
    assert reject(uplink("dev", "app", EM300), t).reason == Reason.bad_topic


def test_device_mismatch() -> None:
    exc = reject(uplink("em300-th-02", "heatwatch-vitre", EM300), topic("em300-th-01"))
    assert exc.reason == Reason.sensor_mismatch


def test_unknown_device_without_town() -> None:
    exc = reject(uplink("em300-th-01", "acme-demo", EM300), topic("em300-th-01", "acme-demo"))
    assert exc.reason == Reason.unknown_device


def test_registry_known_device_needs_no_app_mapping() -> None:
    devices = Devices({"em300-th-01": ("saint-omer", "so-04")})
    out = run(uplink("em300-th-01", "acme-demo", EM300), topic("em300-th-01", "acme-demo"), devices)
    assert (out.readings[0].town, out.readings[0].sensor) == ("saint-omer", "so-04")


def test_not_an_uplink() -> None:
    msg = uplink("em300-th-01", "heatwatch-vitre", EM300)
    del msg["uplink_message"]
    msg["join_accept"] = {"session_key_id": "AYa1", "received_at": "2024-07-01T12:00:00Z"}
    assert reject(msg, topic("em300-th-01")).reason == Reason.bad_shape


@pytest.mark.parametrize("mutate", [
    lambda m: m.pop("end_device_ids"),
    lambda m: m["end_device_ids"].pop("device_id"),
    lambda m: m["uplink_message"].update(decoded_payload=[1, 2]),
])
def test_bad_shape(mutate) -> None:
    msg = uplink("em300-th-01", "heatwatch-vitre", copy.deepcopy(EM300))
    mutate(msg)
    assert reject(msg, topic("em300-th-01")).reason == Reason.bad_shape


def test_not_an_object_and_invalid_json() -> None:
    assert reject([1], topic("x-1")).reason == Reason.bad_shape
    with pytest.raises(DecodeError) as info:
        decode(b"\xff{", Context(topic("x-1"), NOW_MS))
    assert info.value.reason == Reason.invalid_json


@pytest.mark.parametrize("decoded", [
    None,  # no payload formatter on the application
    {},
    {"Bat_status": 3, "BatV": 3.0},  # LHT65 with its sensor fields omitted
    {"DATALOG": "[24.31,55.4,...]"},  # LHT65 datalog mode, not a live reading
])
def test_no_measurement(decoded: dict | None) -> None:
    assert reject(uplink("lht65-0042", "heatwatch-vitre", decoded), topic("lht65-0042")).reason == Reason.no_measurement


def test_profile_without_its_fields_is_no_measurement() -> None:
    devices = Devices({"lht65-0042": ("vitre", "vit-007")}, {"lht65-0042": "dragino-lht65"})
    exc = reject(uplink("lht65-0042", "heatwatch-vitre", EM300), topic("lht65-0042"), devices)
    assert exc.reason == Reason.no_measurement and "dragino-lht65" in exc.detail


@pytest.mark.parametrize("field, value", [("temperature", "27.3 °C"), ("humidity", True), ("battery_v", [3]),
                                          ("temperature", "hot"), ("humidity", {"value": 3}), ("temperature", "inf")])
def test_non_numeric(field: str, value: object) -> None:
    decoded = {"temperature": 27.3, "humidity": 48.5, "battery_v": 3.1, field: value}
    assert reject(uplink("c-1", "heatwatch-vitre", decoded), topic("c-1")).reason == Reason.non_numeric


@pytest.mark.parametrize("where", ["uplink", "device"])
def test_bad_timestamp(where: str) -> None:
    decoded = {"temperature": 21.0, "humidity": 70.0}
    msg = uplink("c-1", "heatwatch-vitre", decoded)
    if where == "uplink":
        msg["uplink_message"]["received_at"] = "not a time"
    else:
        decoded["ts"] = "soon"
        msg = uplink("c-1", "heatwatch-vitre", decoded)
    assert reject(msg, topic("c-1")).reason == Reason.bad_timestamp


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300)
@given(decoded=_json, received=_json, rx=_json)
def test_fuzz_never_crashes(decoded: object, received: object, rx: object) -> None:
    msg = uplink("c-1", "heatwatch-vitre", None)
    msg["uplink_message"].update(decoded_payload=decoded, received_at=received, rx_metadata=rx)
    try:
        run(msg, topic("c-1"))
    except DecodeError as exc:
        assert exc.reason in set(Reason)


def test_snr_of_the_gateway_that_heard_it_best() -> None:
    """The maintenance view's link margin: the SNR of the best-RSSI gateway; TTS leaves out a zero SNR."""
    msg = uplink("em300-th-01", "heatwatch-vitre", EM300, rssi=[-112.0, -87.0])
    msg["uplink_message"]["rx_metadata"][0]["snr"] = -9.5
    msg["uplink_message"]["rx_metadata"][1]["snr"] = 4.75
    r = run(msg, topic("em300-th-01")).readings[0]
    assert (r.rssi, r.snr) == (-87.0, 4.75)
    del msg["uplink_message"]["rx_metadata"][1]["snr"]
    assert run(msg, topic("em300-th-01")).readings[0].snr == 0.0
    assert "snr=0.0" in run(msg, topic("em300-th-01")).readings[0].to_line()
