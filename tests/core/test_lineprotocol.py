"""The line-protocol encoder, without a database (its round trip through influxd is in test_influx.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatwatch.core.errors import EncodeError
from heatwatch.core.lineprotocol import Point, encode, escape_key, escape_measurement, escape_string, format_value
from heatwatch.core.measurements import READING
from heatwatch.core.model import SENSOR_ID_RE, Reading


def test_escaping_rules_of_each_part() -> None:
    assert escape_measurement("odd measurement,x=1") == r"odd\ measurement\,x=1"  # "=" is fine in a name
    assert escape_key("a b,c=d") == r"a\ b\,c\=d"
    assert escape_string('say "hi" \\ bye') == r'"say \"hi\" \\ bye"'
    assert escape_string("two\nlines") == '"two\nlines"'  # newlines are legal inside string fields


@pytest.mark.parametrize(("value", "text"), [
    (True, "true"), (False, "false"),  # before int: bool is an int subclass
    (3, "3i"), (-7, "-7i"), (0, "0i"),
    (23.4, "23.4"), (0.1 + 0.2, "0.30000000000000004"),  # shortest repr that parses back exactly
    (1e300, "1e+300"),
    ("x", '"x"'),
])
def test_field_values_by_type(value: object, text: str) -> None:
    assert format_value(value) == text  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None, b"bytes", [1]])
def test_unrepresentable_field_values(bad: object) -> None:
    with pytest.raises(EncodeError):
        format_value(bad)  # type: ignore[arg-type]


def test_a_point() -> None:
    p = Point("daily", {"town": "saint-omer", "sensor": "so 1"}, {"tn": 18.5, "n": 3, "ok": True, "s": "é"}, 17)
    # Tags sorted (what InfluxDB indexes fastest), None fields left out.
    assert encode(p) == r'daily,sensor=so\ 1,town=saint-omer tn=18.5,n=3i,ok=true,s="é" 17'
    p = Point("daily", {"town": "vitre", "sensor": ""}, {"tn": None, "tx": 30.0}, 1)
    assert encode(p) == "daily,town=vitre tx=30.0 1"  # an empty tag is an absent tag


@pytest.mark.parametrize(("point", "why"), [
    (Point("", {}, {"v": 1.0}, 0), "empty measurement"),
    (Point("m", {"t": "a\\"}, {"v": 1.0}, 0), "backslash"),  # would swallow the separator after it
    (Point("m", {"t": "a\nb"}, {"v": 1.0}, 0), "newline"),
    (Point("m\n", {}, {"v": 1.0}, 0), "newline"),
    (Point("m", {}, {"v": None}, 0), "no field"),
    (Point("m", {}, {"": 1.0}, 0), "empty"),
])
def test_what_line_protocol_cannot_carry_is_an_error(point: Point, why: str) -> None:
    with pytest.raises(EncodeError, match=why):
        encode(point)


# The ingest hot path writes readings by hand (no escaping: ids exclude every character that needs it);
# it must say exactly what the general encoder says, with the stored schema's names and types.
sensor_ids = st.from_regex(SENSOR_ID_RE, fullmatch=True)
maybe = st.none() | st.floats(-40, 60, allow_nan=False)


@given(sensor=sensor_ids, t=maybe, rh=maybe, batt=maybe, pct=maybe, rssi=maybe,
       source=st.sampled_from(["json", "senml", "tts", "chirpstack", None]), ts=st.integers(0, 2**42), snr=maybe)
def test_reading_to_line_is_the_encoder_on_the_reading_schema(sensor, t, rh, batt, pct, rssi, source, ts, snr) -> None:
    r = Reading("saint-omer", sensor, ts, t, rh, batt, rssi, source, pct, snr)
    fields = {"temperature": t, "humidity": rh, "battery_v": batt, "battery_pct": pct, "rssi": rssi, "source": source,
              "snr": snr}
    assert list(fields) == list(READING.field_names)
    if all(v is None for v in fields.values()):
        return  # ingest never stores a reading without a measurement
    expected = encode(Point(READING.name, {"town": "saint-omer", "sensor": sensor}, fields, ts))
    assert r.to_line() == expected
    for name, v in fields.items():
        if v is not None:
            kind = READING.field(name).kind
            assert (kind == "float" and isinstance(v, float)) or (kind == "str" and isinstance(v, str))
