"""Sensor metadata from the registry, and the status shown next to each sensor."""

from __future__ import annotations

from heatwatch.core.model import Sensor
from heatwatch.core.registry import Registry


def list_sensors(registry: Registry | None, town: str | None, include_retired: bool = True) -> list[Sensor]:
    if registry is None:
        return []
    return list(registry.list(town=town, include_retired=include_retired))


def sensor_index(registry: Registry | None, town: str | None) -> dict[str, Sensor]:
    return {s.id: s for s in list_sensors(registry, town)}


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
