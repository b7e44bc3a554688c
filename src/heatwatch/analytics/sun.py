"""Solar elevation, vectorised: what tells sunshine-driven sensor errors from site effects.

The low-precision formulas of the Astronomical Almanac (as used by NOAA's solar calculator),
good to a few tenths of a degree between 1950 and 2050, which is far finer than the 10°
threshold the radiation check uses (docs/science/qc.md, "Solar radiation").
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_J2000 = 2451545.0
_UNIX_JD = 2440587.5


def solar_elevation(hours_utc: npt.ArrayLike, latitude: float, longitude: float) -> npt.NDArray[np.float64]:
    """Elevation of the sun's centre above the horizon, degrees, at UTC hours since the Unix epoch."""
    n = np.asarray(hours_utc, dtype=np.float64) / 24.0 + _UNIX_JD - _J2000
    mean_long = np.radians((280.460 + 0.9856474 * n) % 360.0)
    anomaly = np.radians((357.528 + 0.9856003 * n) % 360.0)
    ecl_long = mean_long + np.radians(1.915) * np.sin(anomaly) + np.radians(0.020) * np.sin(2 * anomaly)
    obliquity = np.radians(23.439 - 0.0000004 * n)
    ra = np.arctan2(np.cos(obliquity) * np.sin(ecl_long), np.cos(ecl_long))
    dec = np.arcsin(np.sin(obliquity) * np.sin(ecl_long))
    gmst_h = (18.697374558 + 24.06570982441908 * n) % 24.0
    hour_angle = np.radians(gmst_h * 15.0 + longitude) - ra
    lat = np.radians(latitude)
    sin_el = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour_angle)
    return np.degrees(np.arcsin(np.clip(sin_el, -1.0, 1.0)))
