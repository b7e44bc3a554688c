"""Approximate solar times (Cooper declination, Spencer-style equation of time).

A few minutes of error are irrelevant here: the times only place the daily temperature
minimum (near sunrise), maximum (mid-afternoon) and the start of urban night-time warming.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

# Standard refraction plus solar radius at the horizon.
_HORIZON = math.radians(-0.833)
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class SolarDay:
    """UTC epoch seconds of sunrise, solar noon and sunset for one date at one place."""

    sunrise: float
    noon: float
    sunset: float


def solar_day(day: date, latitude: float, longitude: float) -> SolarDay:
    n = day.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + n) / 365)
    b = 2 * math.pi * (n - 81) / 364
    eot_min = 9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)
    noon_h = 12.0 - longitude / 15.0 - eot_min / 60.0
    phi = math.radians(latitude)
    cos_w = (math.sin(_HORIZON) - math.sin(phi) * math.sin(decl)) / (math.cos(phi) * math.cos(decl))
    # Clamp for polar day/night; French towns never get there but the function should not raise.
    half_h = math.degrees(math.acos(max(-1.0, min(1.0, cos_w)))) / 15.0
    midnight = (day - _EPOCH).days * 86400.0
    return SolarDay(
        sunrise=midnight + (noon_h - half_h) * 3600.0,
        noon=midnight + noon_h * 3600.0,
        sunset=midnight + (noon_h + half_h) * 3600.0,
    )


def daylight(ts_s: float, latitude: float, longitude: float) -> float:
    """0 at night, rising to 1 at solar noon: a cheap stand-in for irradiance."""
    day = datetime.fromtimestamp(ts_s, UTC).date()
    s = solar_day(day, latitude, longitude)
    if ts_s <= s.sunrise or ts_s >= s.sunset:
        return 0.0
    return math.sin(math.pi * (ts_s - s.sunrise) / (s.sunset - s.sunrise))
