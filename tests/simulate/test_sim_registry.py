"""The packaged EXAMPLE registries and sensor selection/cloning."""

from __future__ import annotations

import csv
import re
from importlib import resources
from pathlib import Path

import pytest

from heatwatch.core.model import Sensor, SiteClass
from heatwatch.core.settings import load_towns
from heatwatch.simulate import load_example_sensors, read_sensors_csv, select_sensors, write_sensors_csv
from heatwatch.simulate.tts import PROFILES

FILES = {"vitre": "vitre.csv", "saint-omer": "saint-omer.csv"}
PREFIX = {"vitre": "vitre-", "saint-omer": "so-"}


@pytest.mark.parametrize("town", list(FILES))
def test_example_registry_is_labelled_and_plausible(town: str) -> None:
    path = resources.files("heatwatch.data").joinpath("sensors", FILES[town])
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == list(Sensor.model_fields)
        rows = list(reader)
    sensors = [Sensor.model_validate({k: v for k, v in r.items() if v != ""}) for r in rows]
    assert 12 <= len(sensors) <= 16
    assert all(s.town == town and s.id.startswith(PREFIX[town]) for s in sensors)
    assert all(s.name.startswith("EXAMPLE (illustrative site)") for s in sensors)
    assert len({s.id for s in sensors}) == len(sensors)
    t = load_towns()[town]
    refs = [s.id for s in sensors if s.site_class is SiteClass.rural_reference]
    assert refs == t.reference_sensors
    classes = {s.site_class for s in sensors}
    assert {SiteClass.urban, SiteClass.park, SiteClass.water, SiteClass.suburban} <= classes
    for s in sensors:
        assert s.latitude is not None and s.longitude is not None
        assert abs(s.latitude - t.latitude) < 0.05 and abs(s.longitude - t.longitude) < 0.07
        assert s.lcz and re.fullmatch(r"LCZ ([1-9]|10|[A-G])", s.lcz)
    profiles = {s.device_profile for s in sensors}
    assert {"native", "senml"} <= profiles and set(PROFILES) <= profiles
    for s in sensors:
        if s.device_profile in PROFILES:
            assert s.mqtt_identity and re.fullmatch(r"eui-[0-9a-f]{16}", s.mqtt_identity)
    assert len({s.mqtt_identity for s in sensors}) == len(sensors)


def test_retired_sensors_are_not_simulated() -> None:
    every = load_example_sensors(include_retired=True)
    active = load_example_sensors()
    assert {s.id for s in every} - {s.id for s in active} == {"vitre-centre-05"}


def test_subset_keeps_the_references_and_clones_fill_up() -> None:
    base = load_example_sensors()
    few = select_sensors(base, 4)
    assert {"vitre-rural-01", "so-rural-01"} <= {s.id for s in few} and len(few) == 4
    many = select_sensors(base, 500, seed=3)
    assert len(many) == 500 and len({s.id for s in many}) == 500
    assert len({s.mqtt_identity for s in many}) == 500
    assert sum(s.is_reference for s in many) == 2
    assert all(Sensor.model_validate(s.model_dump()) == s for s in many)
    assert select_sensors(base, 500, seed=3) == many


def test_registry_csv_round_trip(tmp_path: Path) -> None:
    sensors = select_sensors(load_example_sensors(), 40)
    write_sensors_csv(sensors, tmp_path / "reg.csv")
    assert read_sensors_csv(tmp_path / "reg.csv") == sensors
