"""Seeded daily panels of nocturnal UHI with weather, for validating the intervention-effect estimator
(``heatwatch.api.insights.did``): its false discoveries when there is no effect but the summer after
the works is warmer or cooler than the one before, its power for a given cooling, and its coverage.
Used by ``tests/api/insights/test_did.py`` and ``bench/interventions``; the model and its figures are
in ``docs/science/interventions.md``.

Model, per day t and sensor s (nightly maximum of UHI, °C):

    uhi[t, s] = level_s + calm_gain_s · calm_t + heat_gain_s · warmth_t + wind_gain_s · wind_t + noise[t, s]

* ``warmth_t``: the air mass's temperature anomaly, AR(1) with lag-one correlation 0.8 and standard
  deviation 2.5 °C (summer synoptic spells last a week or more);
* ``calm_t``: a clear-and-calm index (standardised), AR(1) 0.5: clear calm nights make the largest
  heat islands (Oke 1982), so every sensor's UHI rises with it, a dense street more than a park;
* ``wind_t``: a weather factor the reference's Tn/Tx do not reveal (wind), AR(1) 0.5, standardised;
* ``noise``: sensor noise, AR(1) with correlation ``noise_rho``, standard deviation ``noise_sd``.

The rural reference sees ``tn_t = 14 + warmth_t − 1.5·calm_t + ε`` and ``tx_t = 25 + warmth_t +
2.5·calm_t + ε`` (ε ~ 0.5 °C): clear days are hotter and clear nights cooler in the fields, so the
diurnal range reveals the calm index and the level reveals the air mass. A warmer (cooler) summer
after the works shifts ``warmth`` and ``calm`` in the after period: with sensor-specific gains this
moves the treated−control difference without any intervention — the false discovery to avoid.

Sensors: ``levels`` ~ N(3.0, 0.3) °C (street sensors), ``calm_gain`` ~ U(0.6, 1.4) °C per unit,
``heat_gain`` ~ U(0, 0.12) per °C, ``wind_gain`` ~ U(0.1, 0.4). A *hot spot* treated sensor (the
typical target of a tree planting) sits outside the controls' range: level 4.6 °C, calm gain 1.8,
heat gain 0.16. Missing data: ``missing`` of the sensor-days at random, and in three panels of ten
a control silent for a week.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

BEFORE, AFTER, EXCLUDED = 0, 1, -1


@dataclass(frozen=True, slots=True)
class PanelSpec:
    days_before: int = 60
    days_after: int = 60
    #: excluded days between the periods (the works; a winter between two summers)
    gap: int = 0
    controls: int = 6
    treated: int = 1
    #: true effect, °C, added to the treated sensors after the works
    effect: float = 0.0
    #: shift of the air-mass anomaly in the after period, °C (+2: a warmer summer)
    warmer_after: float = 0.0
    #: shift of the clear-calm index in the after period, in standard deviations
    calmer_after: float = 0.0
    #: shift of the weather factor the reference does not see, in standard deviations
    unobserved_after: float = 0.0
    noise_rho: float = 0.4
    noise_sd: float = 0.4
    missing: float = 0.05
    hot_spot: bool = False
    #: slow drift of the treated sensor (a sensor fault), °C per 100 days
    drift: float = 0.0

    @property
    def days(self) -> int:
        return self.days_before + self.gap + self.days_after


@dataclass(frozen=True, slots=True)
class Panel:
    values: np.ndarray  # (days, sensors), NaN = missing
    treated: np.ndarray  # (sensors,) bool
    period: np.ndarray  # (days,) BEFORE / AFTER / EXCLUDED
    weather: np.ndarray  # (days, 2): reference tn, tx
    spec: PanelSpec


def ar1(rng: np.random.Generator, n: int, phi: float, sd: float, width: int | None = None) -> np.ndarray:
    """Stationary AR(1) series (or ``width`` independent ones as columns) with marginal sd ``sd``."""
    shape = (n,) if width is None else (n, width)
    e = rng.normal(0.0, sd * np.sqrt(1 - phi**2), shape)
    e[0] = rng.normal(0.0, sd, shape[1:]) if width is not None else rng.normal(0.0, sd)
    return lfilter([1.0], [1.0, -phi], e, axis=0)


def summer_panel(rng: np.random.Generator, spec: PanelSpec = PanelSpec()) -> Panel:
    n = spec.days
    period = np.array([BEFORE] * spec.days_before + [EXCLUDED] * spec.gap + [AFTER] * spec.days_after)
    after = period == AFTER
    warmth = ar1(rng, n, 0.8, 2.5) + spec.warmer_after * after
    calm = ar1(rng, n, 0.5, 1.0) + spec.calmer_after * after
    wind = ar1(rng, n, 0.5, 1.0) + spec.unobserved_after * after
    tn = 14.0 + warmth - 1.5 * calm + rng.normal(0.0, 0.5, n)
    tx = 25.0 + warmth + 2.5 * calm + rng.normal(0.0, 0.5, n)
    s = spec.treated + spec.controls
    level = rng.normal(3.0, 0.3, s)
    calm_gain = rng.uniform(0.6, 1.4, s)
    heat_gain = rng.uniform(0.0, 0.12, s)
    wind_gain = rng.uniform(0.1, 0.4, s)
    is_treated = np.arange(s) < spec.treated
    if spec.hot_spot:
        level[is_treated], calm_gain[is_treated], heat_gain[is_treated] = 4.6, 1.8, 0.16
    noise = ar1(rng, n, spec.noise_rho, spec.noise_sd, s)
    y = level + np.outer(calm, calm_gain) + np.outer(warmth, heat_gain) + np.outer(wind, wind_gain) + noise
    y[np.ix_(after, is_treated)] += spec.effect
    if spec.drift:
        y[:, is_treated] += (spec.drift / 100.0 * np.arange(n))[:, None]
    y[rng.random(y.shape) < spec.missing] = np.nan
    if rng.random() < 0.3:
        sensor = int(rng.integers(spec.treated, s))
        start = int(rng.integers(0, n - 7))
        y[start:start + 7, sensor] = np.nan
    return Panel(y, is_treated, period, np.column_stack([tn, tx]), spec)
