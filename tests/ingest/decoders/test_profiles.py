"""Device profiles: the packaged file, parsing errors, auto-detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from heatwatch.core.errors import ConfigError
from heatwatch.ingest.decoders.profiles import FieldMap, default_profiles, load_profiles, parse_profiles


def test_packaged_profiles() -> None:
    p = default_profiles()
    assert {"dragino-lht65", "milesight-em300-th", "elsys-ers", "heatwatch-generic"} <= set(p)
    assert p["dragino-lht65"].fields["temperature"] == FieldMap("TempC_SHT")
    assert p["elsys-ers"].fields["battery_v"] == FieldMap("vdd", 0.001)
    assert "battery_v" not in p["milesight-em300-th"].fields  # percent, not volts


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
    assert FieldMap("x").convert(21.37) == 21.37
    assert FieldMap("x", 0.1, -40.0).convert(600) == pytest.approx(20.0)


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
