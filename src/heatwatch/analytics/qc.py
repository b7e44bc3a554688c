"""Quality control of crowd-sourced temperature, after CrowdQC+ (Fenner et al. 2021), reimplemented.

Tuned for towns of a few dozen sensors rather than the thousands of Netatmo stations CrowdQC+
was built for: the spatial test uses Student-t quantiles (the sample median and Qn are
estimated from few values) and is skipped below five sensors; point tests (range, step, spike,
persistence) run on each sensor's own series first so that a broken sensor does not distort
the town median the spatial test compares against.

Every check sets a bit in an integer ``qc`` column; rows are never dropped, because flagged
data is stored and excluded from indices, not deleted (DESIGN.md §5). Temperature is the
tested variable, as in CrowdQC+; humidity only gets the range test, since RH legitimately
sits at 100 % for hours in fog and follows temperature steps.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from heatwatch.core.measurements import QcFlag
from heatwatch.core.model import RH_MAX, RH_MIN, T_MAX, T_MIN

from .robust import qn_rows

NO_FLAGS = QcFlag(0)
#: Flags set by the tests on one sensor's own series, before the spatial test.
POINT_FLAGS = QcFlag.RANGE | QcFlag.STEP | QcFlag.SPIKE | QcFlag.PERSISTENCE


@dataclass(frozen=True, slots=True)
class QcConfig:
    """Thresholds of the checks. Defaults suit 1–15 min readings from shaded sensors and hourly means."""

    #: Plausibility range, the same limits ingest validates with (DESIGN.md §4).
    t_min: float = T_MIN
    t_max: float = T_MAX
    rh_min: float = RH_MIN
    rh_max: float = RH_MAX
    #: Step: |ΔT| between consecutive readings may not exceed ``step_base_c + step_rate_c_per_h · Δt``.
    #: The base term absorbs sensor noise and a sun gap at 10-min spacing; the rate term lets
    #: hourly means move 10 °C/h (a storm outflow), which a real air mass rarely beats.
    step_base_c: float = 4.0
    step_rate_c_per_h: float = 6.0
    #: Readings further apart than this are not compared (a gap is not a step).
    max_gap_h: float = 3.0
    #: Spike: a value standing out from both neighbours by more than this, neighbours agreeing.
    spike_c: float = 3.0
    #: Persistence: consecutive values within ``persistence_tol_c`` for at least ``persistence_h``.
    persistence_h: float = 3.0
    persistence_tol_c: float = 0.005
    #: Spatial: one-sided probabilities of the Student-t(n−1) quantiles; 0.01 and 0.95 give the
    #: CrowdQC+ −2.33/+1.64 for large towns, wider bounds for small ones. Asymmetric because a warm
    #: bias (sun, wall, drift) is far more common than a cold one in crowd-sourced sensors.
    spatial_low_p: float = 0.01
    spatial_high_p: float = 0.95
    spatial_min_sensors: int = 5
    #: Floor on the Qn scale, °C: on calm, overcast hours sensors agree to 0.1 °C and a z-score
    #: on that spread would flag instrument noise.
    spatial_min_scale_c: float = 0.4
    #: Availability: fraction of expected readings in a local day.
    availability_min: float = 0.8
    #: Expected spacing of readings; None infers each sensor's median spacing from the data.
    expected_interval: timedelta | None = None


def usable(frame: pd.DataFrame | pd.Series, ignore: QcFlag = NO_FLAGS) -> pd.Series:
    """Boolean mask of rows whose ``qc`` has no flag other than those in ``ignore``."""
    qc = frame["qc"] if isinstance(frame, pd.DataFrame) else frame
    return (qc.astype("int64") & ~int(ignore)) == 0


def hours_since_epoch(time: pd.Series) -> npt.NDArray[np.float64]:
    """UTC timestamps as float hours, whatever the datetime resolution pandas chose."""
    return ((time - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(hours=1)).to_numpy(dtype=np.float64)


def run_qc(
    frame: pd.DataFrame,
    config: QcConfig | None = None,
    *,
    cool_sites: Collection[str] = (),
    unplaced: Collection[str] = (),
    tz: str = "Europe/Paris",
    temperature: str = "temperature",
    humidity: str = "humidity",
) -> pd.DataFrame:
    """Flag readings (or hourly means: pass ``temperature="t_mean", humidity="rh_mean"``).

    ``frame`` has columns town, sensor, time (tz-aware) and the two value columns. The result
    is a copy with the same index and row order plus an int64 ``qc`` column.

    ``cool_sites`` are sensors expected at the town's cold end — rural references, parks, water —
    and are never flagged SPATIAL_LOW: in a town of twenty sensors their genuine coolness sits
    beyond the low bound, and flagging it would delete the baseline the UHI is measured against
    and the cool islands the network is there to find. They are still flagged SPATIAL_HIGH, the
    common failure (sun on the shield, drift). ``unplaced`` sensors are flagged UNPLACED and left
    out of the town's median and scale, but still scored.

    Feed whole local days: the availability test counts readings per local day of ``tz``, and a
    day cut by the window would look incomplete.
    """
    cfg = config or QcConfig()
    if frame.empty:
        out = frame.copy()
        out["qc"] = pd.Series(dtype="int64")
        return out
    time = frame["time"]
    if getattr(time.dt, "tz", None) is None:
        raise ValueError("time must be timezone-aware (UTC)")
    # Work in (town, sensor, time) order; a stable sort keeps duplicate timestamps deterministic.
    order = np.lexsort((hours_since_epoch(time), frame["sensor"].to_numpy(), frame["town"].to_numpy()))
    df = frame.iloc[order]
    t = df[temperature].to_numpy(dtype=np.float64, na_value=np.nan)
    rh = (
        df[humidity].to_numpy(dtype=np.float64, na_value=np.nan)
        if humidity in df.columns
        else np.full(len(df), np.nan)
    )
    hours = hours_since_epoch(df["time"].dt.tz_convert("UTC"))
    group = df.groupby(["town", "sensor"], sort=False, observed=True).ngroup().to_numpy()
    flags = np.zeros(len(df), dtype=np.int64)

    with np.errstate(invalid="ignore"):
        bad_range = (t < cfg.t_min) | (t > cfg.t_max) | (rh < cfg.rh_min) | (rh > cfg.rh_max)
    flags |= np.where(bad_range, int(QcFlag.RANGE), 0)
    # Point tests only see values that exist and are plausible, so a NaN or a −999 does not
    # break a run or pose as a neighbour.
    valid = np.isfinite(t) & ~bad_range
    flags |= _spike_step(t, hours, group, valid, cfg)
    flags |= _persistence(t, hours, group, valid, cfg)
    is_unplaced = df["sensor"].isin(list(unplaced)).to_numpy()
    flags |= np.where(is_unplaced, int(QcFlag.UNPLACED), 0)

    clean = valid & (flags & int(POINT_FLAGS) == 0)
    flags |= _spatial(df, t, clean, is_unplaced, set(cool_sites), cfg)
    flags |= _availability(df, hours, group, valid, cfg, tz)

    out = frame.copy()
    qc = np.empty(len(df), dtype=np.int64)
    qc[order] = flags
    out["qc"] = qc
    return out


def _neighbour_ok(
    hours: npt.NDArray[np.float64], group: npt.NDArray[np.int64], max_gap_h: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Whether each element has a comparable predecessor in the same series, and the gap to it."""
    dt = np.diff(hours, prepend=np.nan)
    same = np.concatenate(([False], group[1:] == group[:-1]))
    return same & (dt <= max_gap_h), dt


def _spike_step(
    t: npt.NDArray[np.float64],
    hours: npt.NDArray[np.float64],
    group: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
    cfg: QcConfig,
) -> npt.NDArray[np.int64]:
    out = np.zeros(len(t), dtype=np.int64)
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return out
    x, h, g = t[idx], hours[idx], group[idx]
    prev_ok, _ = _neighbour_ok(h, g, cfg.max_gap_h)
    next_ok = np.append(prev_ok[1:], False)
    xp = np.concatenate(([np.nan], x[:-1]))
    xn = np.append(x[1:], np.nan)
    # WMO-style spike statistic: distance from the neighbours' mean beyond their own spread, so a
    # genuine step (neighbours disagree) is not a spike but an up-and-back-down is.
    with np.errstate(invalid="ignore"):
        spike_stat = np.abs(x - (xp + xn) / 2) - np.abs(xn - xp) / 2
        spike = prev_ok & next_ok & (spike_stat > cfg.spike_c)
    out[idx[spike]] |= int(QcFlag.SPIKE)

    # Steps are judged against the previous non-spike value, otherwise the good reading right
    # after a spike would be blamed for the jump back.
    keep = ~spike
    idx2, x2, h2, g2 = idx[keep], x[keep], h[keep], g[keep]
    prev_ok2, dt2 = _neighbour_ok(h2, g2, cfg.max_gap_h)
    jump = np.abs(np.diff(x2, prepend=np.nan))
    with np.errstate(invalid="ignore"):
        step = prev_ok2 & (jump > cfg.step_base_c + cfg.step_rate_c_per_h * dt2)
    out[idx2[step]] |= int(QcFlag.STEP)
    return out


def _persistence(
    t: npt.NDArray[np.float64],
    hours: npt.NDArray[np.float64],
    group: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
    cfg: QcConfig,
) -> npt.NDArray[np.int64]:
    out = np.zeros(len(t), dtype=np.int64)
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return out
    x, h, g = t[idx], hours[idx], group[idx]
    same = np.concatenate(([False], (g[1:] == g[:-1]) & (np.abs(np.diff(x)) <= cfg.persistence_tol_c)))
    starts = np.flatnonzero(~same)
    ends = np.append(starts[1:], len(x)) - 1
    duration = h[ends] - h[starts]
    run_of = np.cumsum(~same) - 1
    stuck = (duration >= cfg.persistence_h) & (ends > starts)
    out[idx[stuck[run_of]]] |= int(QcFlag.PERSISTENCE)
    return out


def spatial_thresholds(n: npt.ArrayLike, cfg: QcConfig) -> tuple[npt.NDArray[np.float64], ...]:
    """Lower and upper z bounds for ``n`` sensors: Student-t(n−1) quantiles (NaN below 2)."""
    df = np.asarray(n, dtype=np.float64) - 1
    df = np.where(df >= 1, df, np.nan)
    return stats.t.ppf(cfg.spatial_low_p, df), stats.t.ppf(cfg.spatial_high_p, df)


def _spatial(
    df: pd.DataFrame,
    t: npt.NDArray[np.float64],
    clean: npt.NDArray[np.bool_],
    is_unplaced: npt.NDArray[np.bool_],
    cool_sites: set[str],
    cfg: QcConfig,
) -> npt.NDArray[np.int64]:
    """Robust z-score of each sensor's hourly mean against the town's, per hour."""
    hour = df["time"].dt.tz_convert("UTC").dt.floor("h").reset_index(drop=True)
    keys = pd.DataFrame({"town": df["town"].to_numpy(), "hour": hour, "sensor": df["sensor"].to_numpy()})
    values = pd.Series(np.where(clean, t, np.nan))
    # Hourly means of clean values per sensor: the spatial test compares like with like
    # whether the input is raw readings at any spacing or already hourly.
    means = values.groupby([keys["town"], keys["hour"], keys["sensor"]], sort=True).mean()
    excluded = set(df["sensor"].to_numpy()[is_unplaced])
    found: list[pd.Series] = []
    for town, block in means.groupby(level=0, sort=True):
        m = block.droplevel(0).unstack("sensor")
        sensors = m.columns.to_numpy()
        a = m.to_numpy(dtype=np.float64)
        pop = a.copy()
        # Unplaced sensors are scored but do not define what the town looks like.
        pop[:, np.isin(sensors, list(excluded))] = np.nan
        n = np.isfinite(pop).sum(axis=1)
        enough = n >= cfg.spatial_min_sensors
        if not enough.any():
            continue
        a, pop, n = a[enough], pop[enough], n[enough]
        med = np.nanmedian(pop, axis=1)
        scale = np.maximum(qn_rows(pop), cfg.spatial_min_scale_c)
        z = (a - med[:, None]) / scale[:, None]
        lo, hi = spatial_thresholds(n, cfg)
        with np.errstate(invalid="ignore"):
            low = z < lo[:, None]
            high = z > hi[:, None]
        low[:, np.isin(sensors, list(cool_sites))] = False
        codes = np.where(low, int(QcFlag.SPATIAL_LOW), 0) | np.where(high, int(QcFlag.SPATIAL_HIGH), 0)
        stacked = pd.DataFrame(codes, index=m.index[enough], columns=m.columns).stack()
        stacked = stacked[stacked != 0]
        found.append(pd.concat({town: stacked}, names=["town"]))
    if not found:
        return np.zeros(len(t), dtype=np.int64)
    flagged = pd.concat(found)
    flagged.index = flagged.index.set_names(["town", "hour", "sensor"])
    looked_up = flagged.reindex(pd.MultiIndex.from_frame(keys))
    return looked_up.fillna(0).to_numpy(dtype=np.int64)


def _availability(
    df: pd.DataFrame,
    hours: npt.NDArray[np.float64],
    group: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
    cfg: QcConfig,
    tz: str,
) -> npt.NDArray[np.int64]:
    """Flag every row of a sensor's local day with fewer than ``availability_min`` of expected readings."""
    local = df["time"].dt.tz_convert(tz)
    day_start = local.dt.normalize()
    # Local days are 23, 24 or 25 h long around DST changes.
    next_start = (day_start.dt.tz_localize(None) + pd.Timedelta(days=1)).dt.tz_localize(tz)
    day_hours = (next_start - day_start) / pd.Timedelta(hours=1)
    if cfg.expected_interval is not None:
        interval = np.full(len(df), cfg.expected_interval / timedelta(hours=1))
    else:
        dt = np.diff(hours, prepend=np.nan)
        same = np.concatenate(([False], group[1:] == group[:-1]))
        spacing = pd.Series(np.where(same & (dt > 0), dt, np.nan))
        interval = spacing.groupby(group).transform("median").to_numpy()
    frame = pd.DataFrame(
        {
            "g": group,
            # Wall-clock midnights: a plain datetime64 key, not slow tz-aware objects.
            "day": day_start.dt.tz_localize(None).to_numpy(),
            "ok": valid,
            "expected": day_hours.to_numpy(dtype=np.float64) / interval,
        }
    )
    per_day = frame.groupby(["g", "day"], sort=False)
    count = per_day["ok"].transform("sum").to_numpy()
    expected = per_day["expected"].transform("first").to_numpy()
    # A sensor with a single reading has no spacing to infer from: it cannot be judged complete.
    short = ~(count >= cfg.availability_min * expected)
    return np.where(short, int(QcFlag.AVAILABILITY), 0)
