"""SenML (RFC 8428) decoder: base attributes, times, merging by time, units, rejections."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatwatch.core.errors import DecodeError
from heatwatch.ingest.decoders import DECODERS, Context
from heatwatch.ingest.decoders.senml import RELATIVE_TIME_LIMIT, decode, named_sensor
from heatwatch.ingest.reasons import Reason

NOW_MS = 1_719_835_200_000  # 2024-07-01T12:00:00Z
TOPIC = "senml/vitre/vit-012"


def run(pack: object, topic: str = TOPIC, received_ms: int = NOW_MS):
    return decode(orjson.dumps(pack), Context(topic, received_ms))


def reject(pack: object, topic: str = TOPIC) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        run(pack, topic)
    return info.value


def test_registered_for_senml_format() -> None:
    assert DECODERS["senml"] is decode


def test_base_name_base_time_relative_times_merged_by_time() -> None:
    # A sensor flushing three samples a minute apart, temperature and humidity per instant.
    bt = 1_719_835_080.0
    out = run([
        {"bn": "urn:dev:heatwatch:vit-012:", "bt": bt, "bver": 10, "n": "temp", "u": "Cel", "v": 24.5},
        {"n": "rh", "u": "%RH", "v": 51.0},
        {"n": "temp", "u": "Cel", "v": 24.75, "t": 60},
        {"n": "rh", "u": "%RH", "v": 50.5, "t": 60},
        {"n": "temp", "u": "Cel", "v": 25.0, "t": 120},
        {"n": "rh", "u": "%RH", "v": 50.0, "t": 120},
        {"n": "bat", "u": "V", "v": 3.02, "t": 120},
    ])
    assert out.rejects == []
    assert [(r.ts_ms, r.temperature, r.humidity, r.battery_v) for r in out.readings] == [
        (1_719_835_080_000, 24.5, 51.0, None),
        (1_719_835_140_000, 24.75, 50.5, None),
        (1_719_835_200_000, 25.0, 50.0, 3.02),
    ]
    assert {(r.town, r.sensor, r.source) for r in out.readings} == {("vitre", "vit-012", "senml")}


def test_base_unit_and_base_value_apply_to_later_records() -> None:
    out = run([
        {"bn": "vit-012:", "bt": 1_719_835_000, "bu": "Cel", "bv": 20.0, "n": "t", "v": 1.5},
        {"n": "t", "v": 2.5, "t": 10},
        {"bu": "%RH", "bv": 0, "n": "h", "v": 40, "t": 10},
    ])
    assert [(r.ts_ms, r.temperature, r.humidity) for r in out.readings] == [
        (1_719_835_000_000, 21.5, None),
        (1_719_835_010_000, 22.5, 40.0),
    ]


def test_no_time_at_all_is_time_of_receipt() -> None:
    out = run([{"n": "temperature", "u": "Cel", "v": 23.1}, {"n": "humidity", "u": "%RH", "v": 60}])
    [r] = out.readings
    assert (r.ts_ms, r.temperature, r.humidity) == (NOW_MS, 23.1, 60.0)


def test_times_below_2_pow_28_are_relative_to_receipt() -> None:
    # RFC 8428 §4.5.3: negative = seconds before now; bt + t decides, not t alone.
    out = run([
        {"bt": -120, "u": "Cel", "v": 20.0},
        {"u": "Cel", "v": 21.0, "t": 60},
        {"u": "Cel", "v": 22.0, "t": 120.5},
    ])
    assert [r.ts_ms for r in out.readings] == [NOW_MS - 120_000, NOW_MS - 60_000, NOW_MS + 500]


def test_absolute_time_in_t_without_base_time() -> None:
    out = run([{"u": "Cel", "v": 20.0, "t": 1_719_835_100.25}])
    assert out.readings[0].ts_ms == 1_719_835_100_250


def test_threshold_is_exactly_2_pow_28() -> None:
    limit = RELATIVE_TIME_LIMIT
    out = run([{"u": "Cel", "v": 20.0, "t": limit}, {"u": "Cel", "v": 21.0, "t": limit - 1}])
    assert sorted(r.ts_ms for r in out.readings) == sorted([limit * 1000, NOW_MS + (limit - 1) * 1000])


def test_kelvin_converted_and_battery_percent_dropped() -> None:
    out = run([
        {"bt": 1_719_835_000, "n": "t", "u": "K", "v": 298.15},
        {"n": "batt", "u": "%EL", "v": 87},
        {"n": "batt", "u": "%EL", "v": 86, "t": 300},  # a battery-only instant produces no reading
    ])
    assert out.rejects == []
    [r] = out.readings
    assert r.temperature == pytest.approx(25.0)
    assert r.battery_v is None


def test_unknown_unit_rejects_only_that_record() -> None:
    out = run([
        {"bn": "vit-012:", "bt": 1_719_835_000, "n": "temp", "u": "Cel", "v": 24.0},
        {"n": "pressure", "u": "Pa", "v": 101325},
        {"n": "rh", "u": "%RH", "v": 55},
        {"n": "nounit", "v": 1},
    ])
    [r] = out.readings
    assert (r.temperature, r.humidity) == (24.0, 55.0)
    assert [e.reason for e in out.rejects] == [Reason.unknown_unit, Reason.unknown_unit]
    assert "record 1" in out.rejects[0].detail and "Pa" in out.rejects[0].detail


@pytest.mark.parametrize("record", [
    {"u": "Cel", "vs": "24.5"},
    {"u": "Cel", "vb": True},
    {"u": "Cel", "vd": "AAEC"},
    {"u": "Cel", "v": "24.5"},
    {"u": "Cel", "v": None},
    {"u": "Cel", "v": True},
    {"u": "%RH", "v": [50]},
])
def test_non_numeric_values(record: dict) -> None:
    out = run([{"u": "Cel", "v": 20.0}, record])
    assert len(out.readings) == 1
    assert [e.reason for e in out.rejects] == [Reason.non_numeric]


def test_non_finite_after_base_value_is_non_numeric() -> None:
    out = run([{"bv": 1.7e308, "u": "Cel", "v": 1.7e308}])
    assert [e.reason for e in out.rejects] == [Reason.non_numeric]


def test_record_without_value_is_bad_shape_but_base_only_record_is_context() -> None:
    out = run([{"bn": "vit-012:", "bu": "Cel"}, {"n": "t", "v": 20}, {"n": "t", "t": -5}])
    assert len(out.readings) == 1
    assert [e.reason for e in out.rejects] == [Reason.bad_shape]


@pytest.mark.parametrize("record", [{"u": "Cel", "v": 1, "t": "yesterday"}, {"u": "Cel", "v": 1, "t": -1e15}])
def test_bad_record_times(record: dict) -> None:
    out = run([record])
    assert [e.reason for e in out.rejects] == [Reason.bad_timestamp]


def test_overflowing_time_is_rejected_not_crashing() -> None:
    out = run([{"bt": 1.7e308, "u": "Cel", "v": 1, "t": 1.7e308}])
    assert [e.reason for e in out.rejects] == [Reason.bad_timestamp]


def test_bad_base_time_rejects_pack() -> None:
    assert reject([{"bt": "now", "u": "Cel", "v": 1}]).reason == Reason.bad_timestamp


def test_conflicting_values_at_one_time() -> None:
    out = run([{"u": "Cel", "v": 20.0}, {"u": "Cel", "v": 20.0}, {"u": "Cel", "v": 21.0}])
    assert out.readings[0].temperature == 20.0
    assert [e.reason for e in out.rejects] == [Reason.bad_shape]


@pytest.mark.parametrize("bn", ["urn:dev:heatwatch:vit-099:", "vit-099:", "URN:DEV:heatwatch:vit-099"])
def test_base_name_naming_another_sensor_rejects_pack(bn: str) -> None:
    exc = reject([{"bn": bn, "n": "temp", "u": "Cel", "v": 20}])
    assert exc.reason == Reason.sensor_mismatch


def test_name_naming_another_sensor_rejects_pack() -> None:
    exc = reject([{"n": "vit-012:temp", "u": "Cel", "v": 20}, {"n": "vit-013:temp", "u": "Cel", "v": 21}])
    assert exc.reason == Reason.sensor_mismatch


@pytest.mark.parametrize("bn", ["urn:dev:mac:0024befffe804ff1:", "urn:dev:ow:10e2073a01080063:", "", "sensor/"])
def test_names_that_do_not_name_a_heatwatch_sensor_are_not_checked(bn: str) -> None:
    out = run([{"bn": bn, "n": "temp", "u": "Cel", "v": 20}])
    assert out.readings[0].sensor == "vit-012"


def test_named_sensor() -> None:
    assert named_sensor("urn:dev:heatwatch:so-3:temperature") == "so-3"
    assert named_sensor("urn:dev:heatwatch:so-3") == "so-3"
    assert named_sensor("so-3:temperature") == "so-3"
    assert named_sensor("temperature") is None
    assert named_sensor("urn:dev:ow:10e2073a01080063:temp") is None


def test_invalid_name_characters_reject_record() -> None:
    out = run([{"n": "temp erature", "u": "Cel", "v": 20}, {"n": "-x", "u": "Cel", "v": 20}, {"n": 3, "u": "Cel"}])
    assert [e.reason for e in out.rejects] == [Reason.bad_shape] * 3


@pytest.mark.parametrize("pack, reason", [
    ([{"bver": 11, "u": "Cel", "v": 1}], Reason.bad_shape),  # newer version: must not be used
    ([{"bver": "10", "u": "Cel", "v": 1}], Reason.bad_shape),
    ([{"u": "Cel", "v": 1, "crit_": 1}], Reason.bad_shape),  # must-understand label
    ([], Reason.bad_shape),
    ({"u": "Cel", "v": 1}, Reason.bad_shape),  # a record, not a pack
    ([{"u": "Cel", "v": 1}, 5], Reason.bad_shape),
    ([{"bn": 7, "u": "Cel", "v": 1}], Reason.bad_shape),
    ([{"bu": 7, "v": 1}], Reason.bad_shape),
    ([{"bv": "x", "u": "Cel", "v": 1}], Reason.non_numeric),
])
def test_whole_pack_rejections(pack: object, reason: Reason) -> None:
    assert reject(pack).reason == reason


def test_invalid_json() -> None:
    with pytest.raises(DecodeError) as info:
        decode(b"[{", Context(TOPIC, NOW_MS))
    assert info.value.reason == Reason.invalid_json


@pytest.mark.parametrize("topic", ["senml/vitre", "senml/Vitre/s1", "senml/vitre/-bad"])
def test_bad_topic(topic: str) -> None:
    assert reject([{"u": "Cel", "v": 1}], topic=topic).reason == Reason.bad_topic


def test_rfc_8428_multiple_measurements_example_shape() -> None:
    # The shape of RFC 8428 §5.1.4 (a mobile device: humidity every 5 s, then battery) with
    # heatwatch units; locations (lat/lon units) are not measurements heatwatch accepts.
    out = run([
        {"bn": "urn:dev:heatwatch:vit-012:", "bt": 1.320067464e09, "bu": "%RH", "v": 21.2},
        {"t": 10, "v": 21.3},
        {"t": 20, "v": 21.4},
        {"n": "lat", "u": "lat", "v": 48.12, "t": 20},
        {"n": "batt", "u": "%EL", "v": 98, "t": 20},
    ])
    assert [(r.ts_ms, r.humidity) for r in out.readings] == [
        (1_320_067_464_000, 21.2), (1_320_067_474_000, 21.3), (1_320_067_484_000, 21.4)]
    assert [e.reason for e in out.rejects] == [Reason.unknown_unit]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["bn", "bt", "bu", "bv", "bver", "n", "u", "v", "vs", "t", "s", "x_"]) | st.text(max_size=3),
        inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300)
@given(_json)
def test_fuzz_never_crashes(value: object) -> None:
    try:
        out = run(value)
    except DecodeError as exc:
        assert exc.reason in set(Reason)
    else:
        assert all(isinstance(e, DecodeError) for e in out.rejects)
