"""Which network a sensor belongs to and how far its data is trusted (docs/citizens.md).

* network ``town``: the town's own sited network (registry owner ``town`` or any owner that is not a private
  one); trust ``official``, weight 1 in the town's indices.
* network ``citizen``: residents' sensors and crowd stations (owners in :data:`~heatwatch.core.privacy.PRIVATE_OWNERS`,
  whatever way they were registered). They enter ``provisional`` (weight 0: computed and shown, never in the
  town's indices) and become ``confirmed`` once they have passed quality control for the probation period
  (analytics, ``analytics/trust.py``); confirmed, they count in the town's indices with the citizen weight
  (``HEATWATCH_ANALYTICS_CITIZEN_WEIGHT``, default 0.5).
"""

from __future__ import annotations

from typing import Literal

from .model import Sensor
from .privacy import PRIVATE_OWNERS

Network = Literal["town", "citizen"]
Trust = Literal["official", "provisional", "confirmed"]
NETWORKS: tuple[Network, ...] = ("town", "citizen")
TRUSTS: tuple[Trust, ...] = ("official", "provisional", "confirmed")


def network_of(sensor: Sensor | None) -> Network:
    """``citizen`` for a resident's or crowd station, else ``town`` (an unregistered sensor is the town's:
    contributors are always registered)."""
    return "citizen" if sensor is not None and sensor.owner in PRIVATE_OWNERS else "town"


def trust_of(sensor: Sensor | None) -> Trust:
    if network_of(sensor) == "town":
        return "official"
    assert sensor is not None
    return sensor.trust or "provisional"


def weight_of(sensor: Sensor | None, citizen_weight: float) -> float:
    """The sensor's weight in the town's indices: 1 official, ``citizen_weight`` confirmed, 0 provisional."""
    t = trust_of(sensor)
    return 1.0 if t == "official" else citizen_weight if t == "confirmed" else 0.0


def counts_in_town(sensor: Sensor | None, network: Literal["all", "town"] = "all") -> bool:
    """Whether the sensor enters the town's values: its own always, a confirmed citizen sensor unless ``network``
    is ``town`` (the town network's values, without any citizen data), a provisional one never (weight 0).
    Town-level counts (tropical nights of ``/v1/indices`` and of the archived indices) count these sensors only."""
    t = trust_of(sensor)
    return t == "official" or (t == "confirmed" and network == "all")
