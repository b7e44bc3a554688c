"""The packaged EXAMPLE sensor registries and the sensor sets a run simulates.

The CSV files in ``heatwatch/data/sensors`` are illustrative sites, not the towns' real
deployment. Benchmarks need more sensors than exist: ``select_sensors`` clones the example
sites with derived ids, so any count can be simulated while staying near plausible places.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from heatwatch.core.model import Sensor, SiteClass

from . import noise

CSV_COLUMNS = list(Sensor.model_fields)
_S_ORDER, _S_JITTER_LAT, _S_JITTER_LON, _S_EUI = 20, 21, 22, 23

# Vendor OUIs of the device EUIs the clones get, so a cloned LoRaWAN device still looks like its model.
_EUI_PREFIX = {"dragino-lht65": "a84041", "milesight-em300-th": "24e124", "elsys-ers": "a81758"}


def read_sensors_csv(path: Path | str) -> list[Sensor]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [_sensor_from_row(row) for row in csv.DictReader(fh)]


def write_sensors_csv(sensors: Iterable[Sensor], path: Path | str) -> None:
    """A registry file in the same columns as the examples, for ``heatwatch sensors import``."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for s in sensors:
            row = s.model_dump(mode="json")
            writer.writerow({k: _csv_value(row[k]) for k in CSV_COLUMNS})


def load_example_sensors(towns: Iterable[str] | None = None, *, include_retired: bool = False) -> list[Sensor]:
    """The packaged example sensors, in file order, optionally only some towns."""
    wanted = set(towns) if towns is not None else None
    folder = resources.files("heatwatch.data").joinpath("sensors")
    sensors: list[Sensor] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".csv"):
            continue
        with entry.open("r", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                s = _sensor_from_row(row)
                if (wanted is None or s.town in wanted) and (include_retired or not s.retired):
                    sensors.append(s)
    if wanted is not None and (missing := wanted - {s.town for s in sensors}):
        raise ValueError(f"no example sensors for town(s) {sorted(missing)}")
    return sensors


def select_sensors(base: Sequence[Sensor], count: int | None, seed: int = 0) -> list[Sensor]:
    """``count`` sensors from ``base``: a subset keeping every reference, or base plus clones.

    A subset keeps the rural references first (UHI is undefined without them), then takes the
    others round-robin across towns. Clones copy a non-reference site with a derived id
    ``<id>-cNNN``, a position moved by up to ~200 m, and for LoRaWAN profiles a fresh device EUI.
    """
    active = [s for s in base if not s.retired]
    if count is None or count == len(active):
        return list(active)
    if count < len(active):
        refs = [s for s in active if s.is_reference]
        others = _round_robin([s for s in active if not s.is_reference])
        return (refs + others)[:count] if count >= len(refs) else refs[:count]
    templates = _round_robin([s for s in active if not s.is_reference]) or list(active)
    clones = [_clone(templates[i % len(templates)], i // len(templates) + 1, seed)
              for i in range(count - len(active))]
    return list(active) + clones


def _round_robin(sensors: Sequence[Sensor]) -> list[Sensor]:
    by_town: dict[str, list[Sensor]] = {}
    for s in sensors:
        by_town.setdefault(s.town, []).append(s)
    queues = list(by_town.values())
    out: list[Sensor] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def _clone(template: Sensor, n: int, seed: int) -> Sensor:
    new_id = f"{template.id[:58]}-c{n:03d}"
    key = noise.key_of(new_id)
    lat = template.latitude
    lon = template.longitude
    if lat is not None and lon is not None:
        lat = round(lat + (noise.uniform1(seed, key, _S_JITTER_LAT) - 0.5) * 0.0036, 6)
        lon = round(lon + (noise.uniform1(seed, key, _S_JITTER_LON) - 0.5) * 0.0054, 6)
    identity = template.mqtt_identity
    if template.device_profile in _EUI_PREFIX:
        tail = noise.bits1(seed, key, _S_EUI) & 0xFFFFFFFFFF
        identity = f"eui-{_EUI_PREFIX[template.device_profile]}{tail:010x}"
    elif identity:
        identity = new_id
    return template.model_copy(update={
        "id": new_id,
        "name": f"{template.name} (clone {n})",
        "latitude": lat,
        "longitude": lon,
        "mqtt_identity": identity,
        "site_class": template.site_class if template.site_class is not SiteClass.rural_reference
        else SiteClass.unplaced,
    })


def _sensor_from_row(row: dict[str, Any]) -> Sensor:
    # CSV has no null: an empty cell means "not set" for every optional field.
    clean = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
    return Sensor.model_validate({k: v for k, v in clean.items() if v not in ("", None)})


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
