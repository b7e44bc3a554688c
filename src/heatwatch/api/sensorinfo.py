"""Sensor metadata from the registry, and the status shown next to each sensor."""

from __future__ import annotations

from heatwatch.core.model import Sensor
from heatwatch.core.privacy import public_sensor
from heatwatch.core.public import public_fields
from heatwatch.core.registry import Registry

__all__ = ["list_public_sensors", "list_sensors", "public_fields", "sensor_index", "status_of"]


def list_sensors(registry: Registry | None, town: str | None, include_retired: bool = True) -> list[Sensor]:
    if registry is None:
        return []
    return list(registry.list(town=town, include_retired=include_retired))


def list_public_sensors(registry: Registry | None, town: str | None, include_retired: bool = True) -> list[Sensor]:
    """The registry's sensors as public outputs may show them: private sites blurred and neutrally named
    (core/privacy.py). For display only: analyses take :func:`list_sensors`."""
    return [public_sensor(s) for s in list_sensors(registry, town, include_retired)]



#: (registry's id, town) → (registry, its sensors, their index): what :func:`sensor_index` answered last.
_INDEXES: dict[tuple[int, str | None], tuple[Registry | None, list[Sensor], dict[str, Sensor]]] = {}


def sensor_index(registry: Registry | None, town: str | None) -> dict[str, Sensor]:
    """The registry's sensors (of a town, retired ones included) by id. The same mapping, with the same sensor
    objects, while the registry's sensors are unchanged (``Registry.list`` shares its objects until the registry
    changes; equal ones read again count as unchanged): what ``/v1/latest`` checks per row to keep its rendered
    rows. Read it, never change it."""
    sensors = list_sensors(registry, town)
    key = (id(registry), town)
    hit = _INDEXES.get(key)
    # list == compares the shared objects by identity first: a C loop while nothing changed.
    if hit is not None and hit[0] is registry and hit[1] == sensors:
        _INDEXES[key] = (registry, sensors, hit[2])  # equal ones read again: compared by identity from now on
        return hit[2]
    if len(_INDEXES) >= 64:  # registries come and go in tests; an api has one
        _INDEXES.clear()
    index = {s.id: s for s in sensors}
    _INDEXES[key] = (registry, sensors, index)
    return index


#: What each sensor status means (``/v1/latest``, ``/v1/sensors``); published in ``GET /v1/codes``.
STATUSES: dict[str, str] = {
    "ok": "registered and heard from recently",
    "offline": "silent longer than HEATWATCH_API_STALE_AFTER_S (default: the offline alert's delay, 1 h)",
    "retired": "retired in the registry: its past data stays published",
    "unregistered": "sends data but is not in the registry yet (no position, kept out of indices)",
    "no_data": "registered, never heard from",
}


def status_of(sensor: Sensor | None, last_ms: int | None, now_ms: int, stale_after_s: int) -> str:
    """retired (registry says so), unregistered (data but no registry entry), no_data (registered, never
    heard from), offline (silent longer than ``stale_after_s``), else ok."""
    if sensor is not None and sensor.retired:
        return "retired"
    if last_ms is None:
        return "no_data"
    if now_ms - last_ms > stale_after_s * 1000:
        return "offline"
    if sensor is None:
        return "unregistered"
    return "ok"
