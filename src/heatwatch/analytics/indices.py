"""Thermal comfort indices: dew point, NWS heat index, Environment Canada humidex.

Formulas, sources and test vectors: docs/science/indices.md. Every function takes scalars, numpy
arrays or pandas Series (temperatures in °C unless the name says °F) and returns the same
kind: a float for scalars, an array for arrays, a Series on the input's index for Series.
Missing values propagate as NaN instead of raising, because hourly frames always have holes.
"""

from __future__ import annotations

from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

# Magnus coefficients of Alduchov & Eskridge (1996), over water, °C.
MAGNUS_A = 17.625
MAGNUS_B = 243.04

# The first argument's container decides the result's (a Series keeps its index).
Values = TypeVar("Values", float, npt.NDArray[np.float64], pd.Series)
Operand = float | npt.NDArray[np.float64] | pd.Series
FloatArray = npt.NDArray[np.float64]


def _arr(x: Operand) -> FloatArray:
    if isinstance(x, pd.Series):
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(x, dtype=np.float64)


def _like(result: FloatArray, first: Values, other: Operand) -> Values:
    for x in (first, other):
        if isinstance(x, pd.Series):
            return cast(Values, pd.Series(result, index=x.index))
    if result.ndim == 0:
        return cast(Values, float(result))
    return cast(Values, result)


def _dew_point(t: FloatArray, rh: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        # RH 0 has no dew point (the logarithm diverges): NaN like any missing input.
        gamma = np.log(np.where(rh > 0, rh, np.nan) / 100.0) + MAGNUS_A * t / (MAGNUS_B + t)
        return MAGNUS_B * gamma / (MAGNUS_A - gamma)


def _heat_index_f(t: FloatArray, rh: FloatArray) -> FloatArray:
    # The NWS simple form is already the average of T and Steadman's estimate; averaging it
    # with T once more (as several libraries do) underestimates, so it is used as is.
    simple = 0.5 * (t + 61.0 + (t - 68.0) * 1.2 + rh * 0.094)
    full = (
        -42.379
        + 2.04901523 * t
        + 10.14333127 * rh
        - 0.22475541 * t * rh
        - 0.00683783 * t * t
        - 0.05481717 * rh * rh
        + 0.00122874 * t * t * rh
        + 0.00085282 * t * rh * rh
        - 0.00000199 * t * t * rh * rh
    )
    with np.errstate(invalid="ignore"):
        dry = (rh < 13) & (t >= 80) & (t <= 112)
        dry_adj = (13 - rh) / 4 * np.sqrt(np.clip(17 - np.abs(t - 95), 0, None) / 17)
        humid = (rh > 85) & (t >= 80) & (t <= 87)
        humid_adj = (rh - 85) / 10 * (87 - t) / 5
        full = full - np.where(dry, dry_adj, 0.0) + np.where(humid, humid_adj, 0.0)
        # np.where would turn a NaN comparison into "simple": keep NaN explicitly.
        return np.where(np.isnan(simple), np.nan, np.where(simple >= 80, full, simple))


def _humidex(t: FloatArray, td: FloatArray) -> FloatArray:
    vapour_hpa = 6.11 * np.exp(5417.7530 * (1 / 273.16 - 1 / (td + 273.15)))
    return t + 0.5555 * (vapour_hpa - 10.0)


def dew_point(temperature: Values, humidity: Operand) -> Values:
    """Dew point (°C) from air temperature (°C) and relative humidity (%), Magnus formula."""
    return _like(_dew_point(_arr(temperature), _arr(humidity)), temperature, humidity)


def heat_index_f(temperature_f: Values, humidity: Operand) -> Values:
    """US NWS heat index (°F) from temperature (°F) and relative humidity (%)."""
    return _like(_heat_index_f(_arr(temperature_f), _arr(humidity)), temperature_f, humidity)


def heat_index(temperature: Values, humidity: Operand) -> Values:
    """US NWS heat index (°C) from temperature (°C) and relative humidity (%).

    Below about 27 °C the NWS simple form applies and the index stays near the temperature.
    """
    hi_f = _heat_index_f(_arr(temperature) * 1.8 + 32.0, _arr(humidity))
    return _like((hi_f - 32.0) / 1.8, temperature, humidity)


def humidex(temperature: Values, dewpoint: Operand) -> Values:
    """Environment Canada humidex from temperature and dew point, both °C."""
    return _like(_humidex(_arr(temperature), _arr(dewpoint)), temperature, dewpoint)


def humidex_rh(temperature: Values, humidity: Operand) -> Values:
    """Humidex from temperature (°C) and relative humidity (%), through the Magnus dew point."""
    t = _arr(temperature)
    return _like(_humidex(t, _dew_point(t, _arr(humidity))), temperature, humidity)
