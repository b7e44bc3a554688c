"""Deterministic weather for each simulated site: a pure function of (seed, town, sensor, time).

Model, per town:

* Daily extremes of the rural reference: a seasonal climatology (rural Tx 23 °C / Tn 13.5 °C
  in mid-July, 5 / 2.5 °C in mid-January, close to Rennes and Lille normals) plus a bounded
  synoptic anomaly (three incommensurate sinusoids over days) and a small daily jitter; the
  optional heat wave replaces the anomaly by a fixed boost.
* Diurnal cycle: minimum at sunrise, maximum at solar noon + 1.5 h (15:30-16:00 local in
  summer); a quarter-sine rise and a half-cosine fall to the next sunrise, so the daily
  Tn and Tx are exactly the values drawn above (plus bounded noise).
* Site effect: the rural curve plus a daytime offset and a night-time urban heat island that
  builds from an hour before sunset and fades within three hours after sunrise, scaled by the
  Local Climate Zone and by a daily factor (weaker on windy days, strongest in heat waves).
* Humidity from a dew point that stays roughly constant over a day (Tn - 1.2 °C, urban sites
  a little drier), so relative humidity falls when temperature rises, as it does outdoors.

Every random component is bounded and hashed from time (see ``noise``), so daily extremes are
predictable to within about 0.5 °C, which the heat-wave guarantees in ``options.HeatWave`` rely on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from heatwatch.core.model import Sensor, SiteClass

from . import noise
from .options import HeatWave
from .sun import solar_day

F64 = NDArray[np.float64]

# Noise streams: one per independent random component, so changing one leaves the others.
S_PHASE, S_JTX, S_JTN, S_JTD, S_JUHI, S_FLUCT = 1, 2, 3, 4, 5, 6
S_BIAS, S_WHITE, S_DEW, S_RH, S_BATT0, S_BATTRATE, S_BATTNOISE, S_PHASE_GRID = 10, 11, 12, 13, 14, 15, 16, 17

# Magnus coefficients of docs/science/indices.md (Alduchov & Eskridge 1996), so the simulated humidity and
# the dew point analytics derives from it agree.
MAGNUS_A, MAGNUS_B = 17.625, 243.04

_SYNOPTIC = ((4.3, 0.7), (7.1, 0.5), (11.7, 0.3))  # (period in days, amplitude on Tx in °C)
_FLUCT = ((2820.0, 0.12), (7560.0, 0.10), (13320.0, 0.08))  # (period s, amplitude °C): clouds, gusts

# Night-time UHI and daytime offset per Local Climate Zone (Stewart & Oke 2012), °C. Orders of
# magnitude from Rennes (Dubreuil et al. 2020): compact centre ~3 °C on clear nights.
_LCZ_NIGHT = {
    "LCZ 1": 3.6, "LCZ 2": 3.2, "LCZ 3": 2.9, "LCZ 4": 2.2, "LCZ 5": 2.1, "LCZ 6": 1.6,
    "LCZ 7": 1.8, "LCZ 8": 1.5, "LCZ 9": 1.0, "LCZ 10": 1.8,
    "LCZ A": 0.5, "LCZ B": 0.7, "LCZ C": 0.3, "LCZ D": 0.0, "LCZ E": 0.4, "LCZ F": 0.2, "LCZ G": 0.9,
}
_LCZ_DAY = {
    "LCZ 1": 0.6, "LCZ 2": 0.5, "LCZ 3": 0.5, "LCZ 4": 0.3, "LCZ 5": 0.3, "LCZ 6": 0.2,
    "LCZ 7": 0.6, "LCZ 8": 0.9, "LCZ 9": 0.1, "LCZ 10": 0.8,
    "LCZ A": -0.9, "LCZ B": -0.6, "LCZ C": -0.2, "LCZ D": 0.0, "LCZ E": 0.5, "LCZ F": 0.2, "LCZ G": -1.2,
}
_CLASS_LCZ = {
    SiteClass.urban: "LCZ 2", SiteClass.suburban: "LCZ 6", SiteClass.park: "LCZ B",
    SiteClass.water: "LCZ G", SiteClass.rural_reference: "LCZ D", SiteClass.unplaced: "LCZ 6",
}
_CLASS_DEW = {
    SiteClass.urban: -0.6, SiteClass.suburban: -0.3, SiteClass.park: 0.3,
    SiteClass.water: 0.8, SiteClass.rural_reference: 0.0, SiteClass.unplaced: 0.0,
}

# Battery: full voltage per device profile, empty at 2.5 V for every profile.
BATTERY_EMPTY_V = 2.5
_BATTERY_FULL_V = {"dragino-lht65": 3.10, "elsys-ers": 3.65, "milesight-em300-th": 3.60}
_DEFAULT_FULL_V = 3.30
_BATTERY_EPOCH = date(2024, 1, 1)


def battery_full_v(profile: str | None) -> float:
    return _BATTERY_FULL_V.get(profile or "", _DEFAULT_FULL_V)


def battery_percent(volts: float, profile: str | None) -> int:
    """Remaining charge as devices report it: linear between empty and full voltage."""
    full = battery_full_v(profile)
    return round(min(100.0, max(0.0, (volts - BATTERY_EMPTY_V) / (full - BATTERY_EMPTY_V) * 100.0)))


@dataclass(frozen=True, slots=True)
class SiteEffect:
    day: float    # °C added in daytime
    night: float  # °C added at night, before the daily UHI factor
    dew: float    # °C added to the dew point
    bias: float   # fixed calibration/siting offset of this device


def site_effect(sensor: Sensor, seed: int) -> SiteEffect:
    if sensor.is_reference:
        # The reference defines zero UHI; a bias here would shift every town index.
        return SiteEffect(0.0, 0.0, 0.0, 0.0)
    lcz = _normal_lcz(sensor.lcz) or _CLASS_LCZ[sensor.site_class]
    night = _LCZ_NIGHT.get(lcz, _LCZ_NIGHT[_CLASS_LCZ[sensor.site_class]])
    day = _LCZ_DAY.get(lcz, _LCZ_DAY[_CLASS_LCZ[sensor.site_class]])
    key = noise.key_of(sensor.id)
    bias = (noise.uniform1(seed, key, S_BIAS) - 0.5) * 0.5
    return SiteEffect(day=day, night=night, dew=_CLASS_DEW[sensor.site_class], bias=bias)


def _normal_lcz(value: str | None) -> str | None:
    """'lcz2', 'LCZ 2' and 'LCZ2' all name the same zone in hand-written registries."""
    if not value:
        return None
    m = re.fullmatch(r"\s*LCZ\s*([0-9]{1,2}|[A-G])\s*", value.upper())
    return f"LCZ {m.group(1)}" if m else None


def climatology(doy: F64) -> tuple[F64, F64]:
    """Rural (Tn, Tx) normals by day of year, peaking on 19 July."""
    c = np.cos(2 * np.pi * (doy - 200.0) / 365.25)
    return 8.0 + 5.5 * c, 14.0 + 9.0 * c


@dataclass(frozen=True, slots=True)
class Daily:
    """Per local date, from ``first`` on: solar anchors (epoch s) and the rural daily values."""

    first: date
    sunrise: F64
    tmax_at: F64
    sunset: F64
    tn: F64
    tx: F64
    td: F64
    uhi: F64


class TownWeather:
    """The rural reference curve of one town, and the site curves derived from it."""

    def __init__(self, town: str, latitude: float, longitude: float, seed: int,
                 heatwave: HeatWave | None) -> None:
        self.town = town
        self.latitude = latitude
        self.longitude = longitude
        self.seed = seed
        self.key = noise.key_of(town)
        self.heatwave_dates = frozenset(heatwave.dates()) if heatwave is not None else frozenset()
        self.heatwave = heatwave
        self._phases = [2 * math.pi * noise.uniform1(seed, self.key, S_PHASE, k) for k in range(6)]

    # Daily values ------------------------------------------------------------------

    def daily(self, first: date, last: date) -> Daily:
        n = (last - first).days + 1
        days = [first + timedelta(days=i) for i in range(n)]
        ordinals = np.array([d.toordinal() for d in days], dtype=np.int64)
        doy = np.array([d.timetuple().tm_yday for d in days], dtype=np.float64)
        tn_clim, tx_clim = climatology(doy)
        anomaly = np.zeros(n)
        for k, (period, amp) in enumerate(_SYNOPTIC):
            anomaly += amp * np.sin(2 * np.pi * ordinals / period + self._phases[k])
        hw = np.array([d in self.heatwave_dates for d in days], dtype=np.float64)
        calm = 1.0 - hw
        j_tx = noise.triangular(self.seed, self.key, S_JTX, ordinals, 0.3)
        j_tn = noise.triangular(self.seed, self.key, S_JTN, ordinals, 0.3)
        tx_boost = self.heatwave.tx_boost if self.heatwave else 0.0
        tn_boost = self.heatwave.tn_boost if self.heatwave else 0.0
        tx = tx_clim + (anomaly + j_tx) * calm + hw * tx_boost
        tn = tn_clim + (0.7 * anomaly + j_tn) * calm + hw * tn_boost
        tx = np.maximum(tx, tn + 4.0)
        # Heat-wave air masses are drier: dew point further below the minimum.
        td = tn - 1.2 - 1.3 * hw + noise.triangular(self.seed, self.key, S_JTD, ordinals, 0.8)
        uhi = np.clip(0.9 + 0.25 * anomaly / 1.5 + noise.triangular(self.seed, self.key, S_JUHI, ordinals, 0.15),
                      0.55, 1.2)
        uhi = uhi * calm + 1.2 * hw  # anticyclonic calm: the strongest heat islands
        suns = [solar_day(d, self.latitude, self.longitude) for d in days]
        return Daily(
            first=first,
            sunrise=np.array([s.sunrise for s in suns]),
            tmax_at=np.array([s.noon + 1.5 * 3600.0 for s in suns]),
            sunset=np.array([s.sunset for s in suns]),
            tn=tn, tx=tx, td=td, uhi=uhi,
        )

    # Curves --------------------------------------------------------------------------

    def components(self, ts_s: NDArray[np.int64]) -> tuple[F64, F64, F64, F64]:
        """Rural temperature, night weight (0..1), UHI factor and dew point at each time."""
        t = ts_s.astype(np.float64)
        first = datetime.fromtimestamp(float(t.min()), UTC).date() - timedelta(days=2)
        last = datetime.fromtimestamp(float(t.max()), UTC).date() + timedelta(days=2)
        d = self.daily(first, last)
        idx = np.searchsorted(d.sunrise, t, side="right") - 1
        sr, sr_next, tmax_at, ss = d.sunrise[idx], d.sunrise[idx + 1], d.tmax_at[idx], d.sunset[idx]
        rising = t < tmax_at
        u = np.clip((t - sr) / (tmax_at - sr), 0.0, 1.0)
        v = np.clip((t - tmax_at) / (sr_next - tmax_at), 0.0, 1.0)
        t_rise = d.tn[idx] + (d.tx[idx] - d.tn[idx]) * np.sin(0.5 * np.pi * u)
        t_fall = d.tn[idx + 1] + (d.tx[idx] - d.tn[idx + 1]) * 0.5 * (1.0 + np.cos(np.pi * v))
        rural = np.where(rising, t_rise, t_fall)
        w_rise = 1.0 - _smoothstep((t - sr) / (3 * 3600.0))
        w_fall = _smoothstep((t - (ss - 3600.0)) / (4 * 3600.0))
        night = np.where(rising, w_rise, w_fall)
        uhi = np.where(rising, d.uhi[idx - 1], d.uhi[idx])
        for k, (period, amp) in enumerate(_FLUCT):
            rural = rural + amp * np.sin(2 * np.pi * t / period + self._phases[3 + k])
        td = np.interp(t, d.tmax_at, d.td)
        return rural, night, uhi, td

    def site(self, sensor: Sensor, ts_s: NDArray[np.int64]) -> tuple[F64, F64]:
        """Clean (fault-free) temperature and relative humidity of one site, unrounded."""
        rural, night, uhi, td = self.components(ts_s)
        eff = site_effect(sensor, self.seed)
        key = noise.key_of(sensor.id)
        temp = (rural + eff.bias + eff.day * (1.0 - night) + eff.night * uhi * night
                + noise.triangular(self.seed, key, S_WHITE, ts_s, 0.15))
        dew = td + eff.dew + noise.triangular(self.seed, key, S_DEW, ts_s, 0.5)
        rh = relative_humidity(temp, dew) + noise.triangular(self.seed, key, S_RH, ts_s, 1.5)
        return temp, np.clip(rh, 5.0, 100.0)

    def battery(self, sensor: Sensor, ts_s: NDArray[np.int64]) -> F64:
        """Battery voltage, slowly falling from the install date (0.04-0.15 V a year, a multi-year cell)."""
        key = noise.key_of(sensor.id)
        installed = sensor.installed or _BATTERY_EPOCH
        since = (ts_s - (installed - date(1970, 1, 1)).days * 86400).astype(np.float64) / 86400.0
        v0 = battery_full_v(sensor.device_profile) - 0.05 * noise.uniform1(self.seed, key, S_BATT0)
        rate = 0.0001 + 0.0003 * noise.uniform1(self.seed, key, S_BATTRATE)
        v = v0 - rate * np.maximum(since, 0.0) + noise.triangular(self.seed, key, S_BATTNOISE, ts_s, 0.004)
        return np.maximum(v, 2.4)


def relative_humidity(temp: F64, dew: F64) -> F64:
    gamma_td = MAGNUS_A * dew / (MAGNUS_B + dew)
    gamma_t = MAGNUS_A * temp / (MAGNUS_B + temp)
    return 100.0 * np.exp(gamma_td - gamma_t)


def _smoothstep(x: F64) -> F64:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def grid(sensor_id: str, seed: int, step_s: int, start_s: int, end_s: int) -> NDArray[np.int64]:
    """This sensor's sampling instants in [start_s, end_s): every step, at a fixed per-sensor phase.

    Real sensors are not synchronised; a per-sensor phase also keeps a broker from receiving
    every sensor's message in the same millisecond.
    """
    phase = int(noise.uniform1(seed, noise.key_of(sensor_id), S_PHASE_GRID) * step_s)
    k0 = -((phase - start_s) // step_s)  # ceil((start - phase) / step)
    first = phase + k0 * step_s
    if first >= end_s:
        return np.empty(0, dtype=np.int64)
    return np.arange(first, end_s, step_s, dtype=np.int64)
