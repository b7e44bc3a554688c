"""What every public output shows of a sensor: the columns each row about a sensor carries.

One function so that the api's answers in every format, the maps, the rankings, the report and the
SensorThings view all show the same thing: the name and position as the public may see them (blurred and
neutral for a private site: :mod:`.privacy`), whether the position is blurred, the network and the trust
(:mod:`.trust`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .model import Sensor
from .privacy import public_position, public_sensor
from .trust import network_of, trust_of

#: The columns :func:`public_fields` gives, in order.
PUBLIC_COLUMNS = ("name", "latitude", "longitude", "position_blurred", "network", "trust")


def public_fields(sensor: Sensor | None) -> dict[str, Any]:
    """Name, latitude, longitude (blurred for a private site), position_blurred, network and trust."""
    if sensor is None:
        return {"name": None, "latitude": None, "longitude": None, "position_blurred": False, "network": "town",
                "trust": "official"}
    lat, lon, blurred = public_position(sensor)
    return {"name": public_sensor(sensor).name, "latitude": lat, "longitude": lon, "position_blurred": blurred,
            "network": network_of(sensor), "trust": trust_of(sensor)}


def append_network_trust(rows: Iterable[list[Any]], sensor_at: int, sensors: Mapping[str, Sensor]) -> None:
    """End each row of a per-sensor dataset with its sensor's ``network`` and ``trust`` (the columns
    :data:`heatwatch.core.datasets.SENSOR_TRUST`), the sensor id being at ``sensor_at``; in place.

    An unregistered sensor is the town's (:func:`.trust.network_of`), as everywhere else."""
    # Once per sensor, not per row: a page is mostly many rows of few sensors.
    pairs: dict[Any, tuple[str, str]] = {}
    for row in rows:
        sid = row[sensor_at]
        pair = pairs.get(sid)
        if pair is None:
            s = sensors.get(sid)
            pair = pairs[sid] = (network_of(s), trust_of(s))
        row += pair
