"""Device profiles: the packaged file, parsing errors, auto-detection."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from heatwatch.core.errors import ConfigError
from heatwatch.ingest.decoders.profiles import (
    FieldMap,
    ProfileSource,
    default_profiles,
    load_profiles,
    parse_profiles,
)


def test_packaged_profiles() -> None:
    p = default_profiles()
    assert {"dragino-lht65", "milesight-em300-th", "elsys-ers", "heatwatch-generic"} <= set(p)
    assert p["dragino-lht65"].fields["temperature"].field == "TempC_SHT"
    assert p["elsys-ers"].fields["battery_v"].read({"vdd": 3641}) == 3.641  # millivolts
    assert set(p["milesight-em300-th"].fields) == {"temperature", "humidity", "battery_pct"}  # percent, not volts


@pytest.mark.parametrize("payload, expected", [
    ({"TempC_SHT": 20, "Hum_SHT": 50, "BatV": 3}, "dragino-lht65"),
    ({"temperature": 20, "humidity": 50, "battery": 90}, "milesight-em300-th"),
    ({"temperature": 20, "humidity": 50, "vdd": 3600}, "elsys-ers"),
    ({"temperature": 20, "vdd": 3600, "light": 4, "motion": 0}, "elsys-ers"),
    ({"temperature": 20, "humidity": 50, "battery_v": 3.1}, "heatwatch-generic"),
    ({"BatV": 3.0, "Bat_status": 2}, None),  # no measurement field at all
])
def test_detect(payload: dict, expected: str | None) -> None:
    found = default_profiles().detect(payload)
    assert (found.name if found else None) == expected


def test_field_map_convert() -> None:
    assert FieldMap.build("x").convert(21.37) == 21.37
    assert FieldMap.build("x", scale=0.1, offset=-40.0).convert(600) == pytest.approx(20.0)


@pytest.mark.parametrize("raw, message", [
    ({"p": 3}, "must be a table"),
    ({"p": {"battery_v": "v"}}, "neither temperature nor humidity"),
    ({"p": {"temperature": "t", "colour": "red"}}, "unknown keys"),
    ({"p": {"temperature": {"scale": 2}}}, "field name"),
    ({"p": {"temperature": {"field": "t", "factor": 2}}}, "unknown keys"),
    ({"p": {"temperature": {"field": "t", "scale": "x"}}}, "numbers"),
    ({"p": {"temperature": "t", "time": 5}}, "time"),
    ({"p": {"temperature": "t", "detect": "a"}}, "detect"),
])
def test_parse_errors(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_profiles(raw)


def test_load_from_file(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('[acme]\ntemperature = { field = "t", scale = 0.01 }\n', encoding="utf-8")
    assert load_profiles(f)["acme"].fields["temperature"].scale == 0.01
    f.write_text("[acme\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_profiles(f)
    with pytest.raises(ConfigError):
        load_profiles(tmp_path / "missing.toml")


@pytest.mark.parametrize("path, payload, expected", [
    ("a.b", {"a": {"b": 1.5}}, 1.5),
    ("a.1", {"a": [1, 2]}, 2),
    ("a.1", {"a": {"1": 7}}, 7),  # a digit is a key in an object (ChirpStack Cayenne channels)
    ("a.*", {"a": {"10": 1, "2": 3}}, 3),  # lowest channel, numerically
    ("temperature_*", {"temperature_5": 1, "temperature_3": 2, "t": 0}, 2),
    ("m[id=4097].v", {"m": [{"id": 4098, "v": 1}, {"id": 4097, "v": 2}]}, 2),
    ("a.b", {"a": 3}, None),
    ("a.5", {"a": [1]}, None),
    ("m[id=1].v", {"m": {"id": 1}}, None),
])
def test_field_paths(path: str, payload: dict, expected: object) -> None:
    assert FieldMap.build(path).raw(payload) == expected


@pytest.mark.parametrize("spec, raw, expected", [
    ({"field": "t", "unit": "K"}, 293.15, 20.0),
    ({"field": "t", "unit": "degF"}, 68, 20.0),
    ({"field": "t", "scale": 0.01}, "2150", 21.5),
])
def test_units(spec: dict, raw: object, expected: float) -> None:
    p = parse_profiles({"p": {"temperature": spec}})["p"]
    assert p.read({"t": raw})["temperature"] == pytest.approx(expected)


def test_battery_units_and_legacy_key() -> None:
    p = parse_profiles({
        "v": {"temperature": "t", "battery": "b"},
        "mv": {"temperature": "t", "battery": {"field": "b", "unit": "mV"}},
        "pct": {"temperature": "t", "battery": {"field": "b", "unit": "%"}},
        "old": {"temperature": "t", "battery_v": {"field": "b", "scale": 0.001}},
    })
    assert p["v"].read({"t": 1, "b": 3.1})["battery_v"] == 3.1
    assert p["mv"].read({"t": 1, "b": 3100})["battery_v"] == 3.1
    assert p["pct"].read({"t": 1, "b": 87})["battery_pct"] == 87
    assert p["old"].read({"t": 1, "b": 3100})["battery_v"] == 3.1
    with pytest.raises(ConfigError, match="unit"):
        parse_profiles({"x": {"temperature": "t", "battery": {"field": "b", "unit": "Ah"}}})
    with pytest.raises(ConfigError, match="two fields"):
        parse_profiles({"x": {"temperature": "t", "battery": "b", "battery_v": "c"}})
    with pytest.raises(ConfigError, match="path"):
        parse_profiles({"x": {"temperature": "a..b"}})


def test_operator_file_adds_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('[acme-th]\ntemperature = "tc"\n\n'
                 '[milesight-em300-th]\ntemperature = "temperature"\nhumidity = "humidity"\n'
                 'battery = { field = "battery", unit = "V" }\n', encoding="utf-8")
    merged = load_profiles(f)
    assert "acme-th" in merged and "dragino-lht65" in merged  # packaged ones stay
    assert "battery_v" in merged["milesight-em300-th"].fields  # the operator's table replaced the packaged one
    assert "battery_pct" in default_profiles()["milesight-em300-th"].fields


def test_profile_source_reloads_the_operator_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('[acme-th]\ntemperature = "tc"\n', encoding="utf-8")
    source = ProfileSource(f)
    assert "acme-th" in source.current() and "acme-rh" not in source.current()
    assert source.refresh() is False  # unchanged
    f.write_text('[acme-th]\ntemperature = "tc"\n[acme-rh]\nhumidity = "h"\n', encoding="utf-8")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))  # a new mtime even on coarse clocks
    assert source.refresh() is True and "acme-rh" in source.current()
    f.write_text("[broken\n", encoding="utf-8")  # a typo while ingest runs: keep what is loaded
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 2_000_000_000))
    assert source.refresh() is False and "acme-rh" in source.current()
    with pytest.raises(ConfigError):  # ... but at start-up it stops the service
        ProfileSource(f)
    with pytest.raises(ConfigError):
        ProfileSource(tmp_path / "missing.toml")
