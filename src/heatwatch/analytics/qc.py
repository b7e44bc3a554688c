"""Quality control that separates faulty sensors from hot places (docs/science/qc.md).

A town's own sited network is there to find places warmer than the rest: a street sensor
steadily warmer than its peers night after night is the finding, not a fault. So only fault
*shapes* flag data:

* point checks on each sensor's own series: seasonal range, spike, step (a level shift stays
  flagged until the series comes back), persistence (never across a data gap);
* against the sensor's peers (same site class / LCZ, nearest ones first): a gross deviation no
  site explains, the solar-radiation signature (warm by day in proportion to the sun, gone at
  night) and drift (a slow, monotonic trend of the difference);
* CrowdQC+'s monthly checks over the trailing 30 days: share of flagged hours, correlation with
  the peer median, availability (information only).

Citizen / crowd stations (``Site.crowd``) keep the CrowdQC+ town-wide robust z-score (m2),
where being warmer than everyone *is* suspicious, and are compared with the town's own sensors
of their class for the radiation signature and drift (never the other way round). Every check
sets a bit in an integer ``qc`` column; rows are never dropped: flagged data is stored and kept
out of indices, never deleted. Spatial and monthly flags never count against availability (they
remove values, not hours of presence). Temperature is the tested variable; humidity only gets its
physical range, since RH sits at 100 % for hours in fog and follows temperature steps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import stats

from heatwatch.core.measurements import VALUE_FLAGS, QcFlag
from heatwatch.core.model import RH_MAX, RH_MIN

from .robust import qn_rows
from .sun import solar_elevation

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


__all__ = ["VALUE_FLAGS", "QcConfig", "QcFlag", "Site", "peer_sets", "run_qc", "spatial_thresholds", "usable"]

NO_FLAGS = QcFlag(0)
#: Tests on one sensor's own series, before any comparison with others.
POINT_FLAGS = QcFlag.RANGE | QcFlag.STEP | QcFlag.SPIKE | QcFlag.PERSISTENCE
#: Tests against other sensors (peers, town) and the monthly verdicts built on them.
SPATIAL_FLAGS = (QcFlag.SPATIAL_LOW | QcFlag.SPATIAL_HIGH | QcFlag.RADIATION | QcFlag.DRIFT
                 | QcFlag.MONTH_FLAGGED | QcFlag.MONTH_CORRELATION)
#: Faults that count towards the monthly share (CrowdQC+ m3). RADIATION is left out on purpose:
#: it already removes the sunny hours, and a shield that lets the sun in still measures nights.
_SHARE_FLAGS = POINT_FLAGS | QcFlag.SPATIAL_LOW | QcFlag.SPATIAL_HIGH | QcFlag.DRIFT

#: Seasonal plausible range per calendar month (local time), °C: deliberately wide envelopes
#: for lowland metropolitan France (the national record is 46.0 °C, 28 June 2019). Ingest
#: already rejects −40…60 °C; this range catches what is possible somewhere in the year but not
#: in that month (28 °C in January, −5 °C in July). Towns may set tighter bounds.
DEFAULT_MONTHLY_RANGE_C: tuple[tuple[float, float], ...] = (
    (-25.0, 25.0), (-25.0, 27.0), (-20.0, 30.0), (-12.0, 33.0), (-8.0, 37.0), (-3.0, 44.0),
    (0.0, 46.0), (0.0, 46.0), (-3.0, 40.0), (-10.0, 34.0), (-18.0, 28.0), (-22.0, 25.0),
)

#: Peer groups this large share one median per hour (see ``_spatial``).
SHARED_MEDIAN_MIN = 8
#: Resolution of the town's median that level shifts are judged against.
WEATHER_BINS_PER_H = 6
#: Site classes that are allowed to be each other's peers when a sensor's own class is too small.
_FAMILY = {"urban": "built", "suburban": "built", "park": "green", "water": "green",
           "rural_reference": "rural"}


@dataclass(frozen=True, slots=True)
class QcConfig:
    """Parameters of the checks (each one is explained in docs/science/qc.md)."""

    #: Range: 12 (low, high) pairs, January first, °C.
    monthly_range_c: tuple[tuple[float, float], ...] = DEFAULT_MONTHLY_RANGE_C
    rh_min: float = RH_MIN
    rh_max: float = RH_MAX
    #: Step: |ΔT| between consecutive readings may not exceed ``step_base_c + step_rate_c_per_h · Δt``.
    step_base_c: float = 4.0
    step_rate_c_per_h: float = 6.0
    #: Readings further apart than this are not compared (a gap is not a step).
    max_gap_h: float = 3.0
    #: A level shift stays flagged until the series is back nearer its former level (moved with
    #: the town's weather) than the shifted one, at most this long; then the new level is accepted.
    step_hold_h: float = 24.0
    #: Spike: a value standing out from both neighbours by more than this, neighbours agreeing.
    spike_c: float = 3.0
    #: Persistence: values within ``persistence_tol_c`` for at least ``persistence_h``, with no
    #: gap above ``persistence_gap_factor`` × the sensor's usual spacing between them.
    persistence_h: float = 3.0
    persistence_tol_c: float = 0.005
    persistence_gap_factor: float = 2.5
    #: Peers: at least this many, searched within ``peer_radius_m`` first (CrowdQC+ m5's radius).
    peer_min: int = 3
    peer_radius_m: float = 3000.0
    #: Gross deviation from the peer median, °C, beyond any site effect within one site class.
    gross_c: float = 6.0
    #: Radiation: by day (sun above ``sun_min_deg``) the anomaly against peers exceeds by more than
    #: ``radiation_c`` the sensor's own night-time anomaly (median of the last ``radiation_nights``
    #: nights, sun below ``night_max_deg``; zero when that is negative), and that day's excess
    #: follows the sun (Pearson r with sin(elevation) ≥ ``radiation_r``).
    radiation_c: float = 2.0
    radiation_r: float = 0.5
    sun_min_deg: float = 10.0
    night_max_deg: float = -6.0
    radiation_nights: int = 7
    #: Drift: over a trailing ``drift_days`` window (≥ ``drift_min_days`` days with a daily
    #: median anomaly), Kendall |τ| ≥ ``drift_tau`` and a Theil–Sen change ≥ ``drift_c``.
    drift_days: int = 14
    drift_min_days: int = 7
    drift_tau: float = 0.6
    drift_c: float = 1.0
    #: Monthly checks over the trailing ``month_days`` (judged once ``month_min_days`` have data).
    #: CrowdQC+ m4 uses r < 0.9 against all stations; against same-class peers a genuine hot spot
    #: 2.7 °C warmer than its street peers at night reached r = 0.84 over a cloudy week, hence 0.8.
    month_days: int = 30
    month_min_days: int = 7
    month_flagged_max: float = 0.2
    month_r_min: float = 0.8
    month_available_min: float = 0.8
    #: Stored hourly history read before the window, for drift and monthly checks.
    history_days: int = 30
    #: Crowd stations: CrowdQC+ m2 one-sided probabilities of the Student-t(n−1) quantiles.
    spatial_low_p: float = 0.01
    spatial_high_p: float = 0.95
    spatial_min_sensors: int = 5
    spatial_min_scale_c: float = 0.4
    #: Availability: fraction of expected readings in a local day.
    availability_min: float = 0.8
    #: Expected spacing of readings; None infers each sensor's median spacing from the data.
    expected_interval: timedelta | None = None

    def range_bounds(self, month: npt.NDArray[np.int64]) -> tuple[F64, F64]:
        table = np.asarray(self.monthly_range_c, dtype=np.float64)
        if table.shape != (12, 2):
            raise ValueError("monthly_range_c needs 12 (low, high) pairs")
        return table[month - 1, 0], table[month - 1, 1]


@dataclass(frozen=True, slots=True)
class Site:
    """What QC needs to know of a sensor's place: who its peers are, and which profile it gets."""

    site_class: str = "urban"
    lcz: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    #: citizen / crowd station: CrowdQC+ town-wide z-score; nobody's peer, compared with the town's sensors
    crowd: bool = False

    @property
    def located(self) -> bool:
        return self.latitude is not None and self.longitude is not None


def usable(frame: pd.DataFrame | pd.Series, ignore: QcFlag = NO_FLAGS) -> pd.Series:
    """Boolean mask of rows whose ``qc`` has no flag other than those in ``ignore``."""
    qc = frame["qc"] if isinstance(frame, pd.DataFrame) else frame
    return (qc.astype("int64") & ~int(ignore)) == 0


def hours_since_epoch(time: pd.Series) -> F64:
    """UTC timestamps as float hours, whatever the datetime resolution pandas chose."""
    return ((time - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(hours=1)).to_numpy(dtype=np.float64)


def run_qc(
    frame: pd.DataFrame,
    config: QcConfig | None = None,
    *,
    sites: Mapping[str, Site] | None = None,
    cool_sites: Collection[str] = (),
    unplaced: Collection[str] = (),
    tz: str = "Europe/Paris",
    position: tuple[float, float] | None = None,
    history: pd.DataFrame | None = None,
    temperature: str = "temperature",
    humidity: str = "humidity",
    breaks: Mapping[str, Sequence[int]] | None = None,
) -> pd.DataFrame:
    """Flag readings (or hourly means: pass ``temperature="t_mean", humidity="rh_mean"``).

    ``frame`` has columns town, sensor, time (tz-aware) and the value columns; the result is a
    copy with the same index and row order plus an int64 ``qc`` column.

    ``sites`` gives each sensor's class, LCZ, position and profile; sensors missing from it (or
    all, when it is None) are one peer group. ``cool_sites`` (rural references, parks, water)
    are never flagged SPATIAL_LOW: being cool is their job. ``unplaced`` sensors are flagged
    UNPLACED and are nobody's peer. ``position`` (latitude, longitude) places the sun for the
    radiation check, which is skipped without it. ``history`` holds the stored hourly rows
    (sensor, time, t_mean, n, qc) before the window, for the drift and monthly checks.
    ``breaks`` gives, per sensor, the instants (epoch ms) its readings start a new series (a visit that
    replaced, moved or recalibrated it: core/maintenance.py): the point checks never compare readings across
    one, and the baselines of the day-level checks (drift, the radiation night level, the monthly checks)
    restart at it.

    Feed whole local days: the availability test counts readings per local day of ``tz``.
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
    rh = (df[humidity].to_numpy(dtype=np.float64, na_value=np.nan) if humidity in df.columns
          else np.full(len(df), np.nan))
    utc = df["time"].dt.tz_convert("UTC")
    hours = hours_since_epoch(utc)
    group = df.groupby(["town", "sensor"], sort=False, observed=True).ngroup().to_numpy()
    # The point checks' series: a sensor's readings, cut at each break (a replaced sensor's first reading is
    # no step from the old one's last).
    series = _series_groups(df["sensor"].to_numpy(dtype=object), group, hours, breaks or {})
    flags = np.zeros(len(df), dtype=np.int64)

    month = df["time"].dt.tz_convert(tz).dt.month.to_numpy(dtype=np.int64)
    lo, hi = cfg.range_bounds(month)
    with np.errstate(invalid="ignore"):
        bad_range = (t < lo) | (t > hi) | (rh < cfg.rh_min) | (rh > cfg.rh_max)
    flags |= np.where(bad_range, int(QcFlag.RANGE), 0)
    # Point tests only see values that exist and are plausible, so a NaN or a −99 does not
    # break a run or pose as a neighbour.
    valid = np.isfinite(t) & ~bad_range
    spacing = _spacing(hours, series, valid)
    is_unplaced = df["sensor"].isin(list(unplaced)).to_numpy()
    flags |= np.where(is_unplaced, int(QcFlag.UNPLACED), 0)
    towns = df["town"].to_numpy()
    bounds = np.flatnonzero(np.concatenate(([True], towns[1:] != towns[:-1], [True])))
    for a, b in itertools.pairwise(bounds.tolist()):
        part = slice(a, b)
        grid = _Grid.build(df.iloc[part], group[part], hours[part], t[part], valid[part], is_unplaced[part],
                           history, tz, position, cfg)
        grid.set_breaks(breaks or {}, tz)
        weather = grid.weather_at(hours[part], t[part], valid[part])
        flags[part] |= _spike_step(t[part], hours[part], series[part], valid[part], weather, cfg)
        flags[part] |= _persistence(t[part], hours[part], series[part], valid[part], spacing[part], cfg)
        clean = valid[part] & (flags[part] & int(POINT_FLAGS) == 0)
        grid.set_clean(t[part], clean, np.isfinite(t[part]))
        codes = _spatial(grid, sites or {}, set(cool_sites), set(unplaced), cfg)
        flags[part] |= codes[grid.row_hour, grid.row_col]
    flags |= _availability(df, hours, group, valid, cfg, tz)

    out = frame.copy()
    qc = np.empty(len(df), dtype=np.int64)
    qc[order] = flags
    out["qc"] = qc
    return out


# Point checks ---------------------------------------------------------------------------------


def _series_groups(sensors: npt.NDArray[np.object_], group: I64, hours: F64,
                   breaks: Mapping[str, Sequence[int]]) -> I64:
    """``group`` (rows sorted by series, then time) cut at each sensor's breaks: ascending run ids."""
    if not breaks or not len(group):
        return group
    seg = np.zeros(len(group), dtype=np.int64)
    for sensor, instants in breaks.items():
        rows = np.flatnonzero(sensors == sensor)
        if len(rows) and len(instants):
            at_h = np.sort(np.asarray(instants, dtype=np.float64)) / 3_600_000
            seg[rows] = np.searchsorted(at_h, hours[rows], side="right")
    change = (group[1:] != group[:-1]) | (seg[1:] != seg[:-1])
    return np.concatenate(([0], np.cumsum(change))).astype(np.int64)


def _neighbour_ok(hours: F64, group: I64, max_gap_h: float) -> tuple[B, F64]:
    """Whether each element has a comparable predecessor in the same series, and the gap to it."""
    dt = np.diff(hours, prepend=np.nan)
    same = np.concatenate(([False], group[1:] == group[:-1]))
    return same & (dt <= max_gap_h), dt


def _spacing(hours: F64, group: I64, valid: B) -> F64:
    """Each row's series' median spacing between valid readings, hours (NaN with a single reading)."""
    idx = np.flatnonzero(valid)
    out = np.full(len(hours), np.nan)
    if len(idx) < 2:
        return out
    h, g = hours[idx], group[idx]
    dt = np.diff(h, prepend=np.nan)
    same = np.concatenate(([False], g[1:] == g[:-1]))
    per = pd.Series(np.where(same & (dt > 0), dt, np.nan)).groupby(g).median()
    return per.reindex(group).to_numpy(dtype=np.float64)


def _spike_step(t: F64, hours: F64, group: I64, valid: B, weather: F64, cfg: QcConfig) -> I64:
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
    idx2, x2, h2, g2, w2 = idx[keep], x[keep], h[keep], g[keep], weather[idx[keep]]
    prev_ok2, dt2 = _neighbour_ok(h2, g2, cfg.max_gap_h)
    jump = np.abs(np.diff(x2, prepend=np.nan))
    with np.errstate(invalid="ignore"):
        starts = np.flatnonzero(prev_ok2 & (jump > cfg.step_base_c + cfg.step_rate_c_per_h * dt2))
    if not len(starts):
        return out
    group_end = np.searchsorted(g2, g2, side="right")  # one past the last element of each series
    flagged = np.zeros(len(x2), dtype=bool)
    done = -1
    # A level shift (a −15 °C excursion of 50 min, a connector that slips) stays flagged until
    # the series is back nearer its former level than the shifted one; the former level moves
    # with the town's weather meanwhile, so a storm front felt by every sensor is no step at all.
    for p in starts.tolist():  # steps are rare: a loop over them, vectorised along each one
        if p <= done:
            continue
        x0, w0, h0 = x2[p - 1], w2[p - 1], h2[p - 1]
        delta = x2[p] - x0
        stop = p + int(np.searchsorted(h2[p:group_end[p]], h0 + cfg.step_hold_h, side="right"))
        dev = x2[p:stop] - (x0 + (w2[p:stop] - w0))
        back = np.flatnonzero(np.abs(dev) <= abs(delta) / 2)
        end = p + int(back[0]) if len(back) else stop
        flagged[p:end] = True
        done = end if len(back) else end - 1
    out[idx2[flagged]] |= int(QcFlag.STEP)
    return out


def _persistence(t: F64, hours: F64, group: I64, valid: B, spacing: F64, cfg: QcConfig) -> I64:
    out = np.zeros(len(t), dtype=np.int64)
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return out
    x, h, g, sp = t[idx], hours[idx], group[idx], spacing[idx]
    dt = np.diff(h, prepend=np.nan)
    # A run never bridges a data gap: two equal readings either side of a silence say nothing
    # about a stuck sensor (the silence is the availability test's business).
    with np.errstate(invalid="ignore"):
        joined = (g[1:] == g[:-1]) & (np.abs(np.diff(x)) <= cfg.persistence_tol_c) & (
            dt[1:] <= cfg.persistence_gap_factor * sp[1:])
    same = np.concatenate(([False], joined))
    starts = np.flatnonzero(~same)
    ends = np.append(starts[1:], len(x)) - 1
    duration = h[ends] - h[starts]
    run_of = np.cumsum(~same) - 1
    stuck = (duration >= cfg.persistence_h) & (ends > starts)
    out[idx[stuck[run_of]]] |= int(QcFlag.PERSISTENCE)
    return out


def _availability(df: pd.DataFrame, hours: F64, group: I64, valid: B, cfg: QcConfig, tz: str) -> I64:
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
    frame = pd.DataFrame({
        "g": group,
        # Wall-clock midnights: a plain datetime64 key, not slow tz-aware objects.
        "day": day_start.dt.tz_localize(None).to_numpy(),
        "ok": valid,
        "expected": day_hours.to_numpy(dtype=np.float64) / interval,
    })
    per_day = frame.groupby(["g", "day"], sort=False)
    count = per_day["ok"].transform("sum").to_numpy()
    expected = per_day["expected"].transform("first").to_numpy()
    # A sensor with a single reading has no spacing to infer from: it cannot be judged complete.
    short = ~(count >= cfg.availability_min * expected)
    return np.where(short, int(QcFlag.AVAILABILITY), 0)


# The hour × sensor grid of one town --------------------------------------------------------------


def _cell_means(cell: I64, values: F64, mask: B, size: int) -> tuple[F64, I64]:
    w = mask & np.isfinite(values)
    sums = np.bincount(cell[w], weights=values[w], minlength=size)
    count = np.bincount(cell[w], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, sums / np.maximum(count, 1), np.nan), count


class _Grid:
    """Hourly means of one town's sensors on a UTC hour grid that starts with the stored history."""

    def __init__(self) -> None:
        self.sensors: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        self.h0 = 0
        self.n_hours = 0
        self.first_window_hour = 0
        self.row_hour: I64 = np.empty(0, dtype=np.int64)
        self.row_col: I64 = np.empty(0, dtype=np.int64)
        self.valid_means: F64 = np.empty((0, 0))
        self.means: F64 = np.empty((0, 0))
        self.present: B = np.empty((0, 0), dtype=bool)
        self.emptied: B = np.empty((0, 0), dtype=bool)
        self.history_faults: B = np.empty((0, 0), dtype=bool)
        self.unplaced: B = np.empty(0, dtype=bool)
        self.day: I64 = np.empty(0, dtype=np.int64)
        self.night_day: I64 = np.empty(0, dtype=np.int64)
        self.elevation: F64 | None = None
        self._cell: I64 = np.empty(0, dtype=np.int64)
        self._size = 0
        self._hist = pd.DataFrame()
        #: column → [(grid hour, local day)] of each series break
        self.breaks: dict[int, list[tuple[int, int]]] = {}

    @classmethod
    def build(cls, part: pd.DataFrame, group: I64, hours: F64, t: F64, valid: B, is_unplaced: B,
              history: pd.DataFrame | None, tz: str, position: tuple[float, float] | None,
              cfg: QcConfig) -> _Grid:
        g = cls()
        # Rows are sorted by sensor: its columns are the runs of ``group``.
        col = group - group[0]
        firsts = np.flatnonzero(np.concatenate(([True], col[1:] != col[:-1])))
        sensors = part["sensor"].to_numpy(dtype=object)[firsts]
        g.sensors = sensors
        hour = np.floor(hours).astype(np.int64)
        first = int(hour.min())
        g.first_window_hour = first
        hist = _history_part(history, part["town"].iloc[0], sensors, first, cfg.history_days)
        g.h0 = int(hist["hour"].min()) if len(hist) else first
        g.n_hours = int(hour.max()) - g.h0 + 1
        g.row_hour = hour - g.h0
        g.row_col = col.astype(np.int64)
        shape = (g.n_hours, len(sensors))
        cell = g.row_hour * len(sensors) + g.row_col
        size = g.n_hours * len(sensors)
        g._cell, g._size = cell, size
        g.valid_means = _cell_means(cell, t, valid, size)[0].reshape(shape)
        unplaced_col = np.zeros(len(sensors), dtype=bool)
        unplaced_col[g.row_col[is_unplaced]] = True
        g.unplaced = unplaced_col
        g.present = np.zeros(shape, dtype=bool)
        g.emptied = np.zeros(shape, dtype=bool)
        g.history_faults = np.zeros(shape, dtype=bool)
        g.means = np.full(shape, np.nan)
        g._hist = hist
        times = pd.to_datetime((g.h0 + np.arange(g.n_hours)) * 3600, unit="s", utc=True)
        local = times.tz_convert(tz)
        g.day = (local.normalize().tz_localize(None).to_numpy().astype("datetime64[D]").astype(np.int64))
        g.night_day = ((local + pd.Timedelta(hours=12)).normalize().tz_localize(None)
                       .to_numpy().astype("datetime64[D]").astype(np.int64))
        if position is not None:
            g.elevation = solar_elevation(g.h0 + np.arange(g.n_hours) + 0.5, *position)
        return g

    def set_clean(self, t: F64, clean: B, finite: B) -> None:
        shape = (self.n_hours, len(self.sensors))
        means, _ = _cell_means(self._cell, t, clean, self._size)
        self.means = means.reshape(shape)
        present = np.bincount(self._cell[finite], minlength=self._size).reshape(shape) > 0
        self.present = present
        self.emptied = present & ~np.isfinite(self.means)
        hist = self._hist
        if len(hist):
            r = hist["hour"].to_numpy(dtype=np.int64) - self.h0
            c = hist["col"].to_numpy(dtype=np.int64)
            qc = hist["qc"].to_numpy(dtype=np.int64)
            n = hist["n"].to_numpy(dtype=np.float64)
            tm = hist["t_mean"].to_numpy(dtype=np.float64)
            had = (n > 0) | ((qc & int(POINT_FLAGS)) != 0)
            self.means[r, c] = np.where(n > 0, tm, np.nan)
            self.valid_means[r, c] = self.means[r, c]
            self.present[r, c] = had
            self.emptied[r, c] = had & ~(n > 0)
            self.history_faults[r, c] = (qc & int(_SHARE_FLAGS)) != 0

    def set_breaks(self, breaks: Mapping[str, Sequence[int]], tz: str) -> None:
        self.breaks = {}
        for k, sensor in enumerate(self.sensors):
            instants = sorted(breaks.get(str(sensor), ()))
            if not instants:
                continue
            ms = np.asarray(instants, dtype=np.int64)
            local = pd.to_datetime(ms, unit="ms", utc=True).tz_convert(tz)
            days = local.normalize().tz_localize(None).to_numpy().astype("datetime64[D]").astype(np.int64)
            hrs = np.floor(ms / 3_600_000).astype(np.int64) - self.h0
            self.breaks[k] = list(zip(hrs.tolist(), days.tolist(), strict=True))

    def series_start(self, d0: int, n_days: int, offset: int = 0) -> I64:
        """(n_days, sensors): for a window ending on day index k (local days from ``d0``), the first day index
        of the sensor's current series: its latest break's day (+ ``offset``) on or before k; far back without."""
        out = np.full((n_days, len(self.sensors)), -(10**6), dtype=np.int64)
        k = np.arange(n_days)
        for col, items in self.breaks.items():
            for _, day in items:
                r = day - d0
                hit = k >= r
                out[hit, col] = np.maximum(out[hit, col], r + offset)
        return out

    def before_break(self) -> B:
        """(hours, sensors): the hours of a break's local day before the break, which belong to the old series
        although their day starts the new one."""
        out = np.zeros((self.n_hours, len(self.sensors)), dtype=bool)
        idx = np.arange(self.n_hours)
        for col, items in self.breaks.items():
            for hour, day in items:
                out[(self.day == day) & (idx < hour), col] = True
        return out

    def weather_at(self, hours: F64, t: F64, valid: B) -> F64:
        """The town's median temperature in 10-minute bins, interpolated to each instant (0 if unknown).

        What a level shift is measured against: a gust front that every sensor feels within ten
        minutes moves the median with it, so it is weather, not a step.
        """
        placed = ~self.unplaced[self.row_col]
        bins = np.floor((hours - self.h0) * WEATHER_BINS_PER_H).astype(np.int64)
        n_bins = int(bins.max()) + 1
        n_s = len(self.sensors)
        means, _ = _cell_means(bins * n_s + self.row_col, t, valid & placed, n_bins * n_s)
        grid = means.reshape(n_bins, n_s)
        with np.errstate(invalid="ignore"):
            med = _nanmedian(grid, axis=1)
        med[np.isfinite(grid).sum(axis=1) < 3] = np.nan
        ok = np.isfinite(med)
        if not ok.any():
            return np.zeros(len(hours))
        # Each reading takes its own bin's median (a front within ten minutes moves it at once);
        # bins with fewer than three sensors are interpolated from their neighbours.
        filled = np.interp(np.arange(n_bins), np.flatnonzero(ok), med[ok])
        return filled[bins]


def _history_part(history: pd.DataFrame | None, town: str, sensors: npt.NDArray[np.object_], first_hour: int,
                  days: int) -> pd.DataFrame:
    empty = pd.DataFrame({"hour": pd.Series(dtype=np.int64), "col": pd.Series(dtype=np.int64),
                          "t_mean": pd.Series(dtype=np.float64), "n": pd.Series(dtype=np.float64),
                          "qc": pd.Series(dtype=np.int64)})
    if history is None or history.empty or days <= 0:
        return empty
    h = history
    if "town" in h.columns:
        h = h[h["town"] == town]
    h = h[h["sensor"].isin(list(sensors))]
    hour = np.floor(hours_since_epoch(h["time"].dt.tz_convert("UTC"))).astype(np.int64)
    keep = (hour < first_hour) & (hour >= first_hour - 24 * days)
    if not keep.any():
        return empty
    h = h[keep]
    return pd.DataFrame({
        "hour": hour[keep],
        "col": np.searchsorted(sensors, h["sensor"].to_numpy(dtype=object)),
        "t_mean": h["t_mean"].to_numpy(dtype=np.float64),
        "n": h["n"].fillna(0).to_numpy(dtype=np.float64),
        "qc": h["qc"].fillna(0).to_numpy(dtype=np.int64),
    })


# Checks against peers -------------------------------------------------------------------------


def _nanmedian(a: F64, axis: int) -> F64:
    """``np.nanmedian`` that returns NaN for all-NaN slices without warning (threads make
    ``warnings.catch_warnings`` unreliable)."""
    ok = np.isfinite(a).any(axis=axis, keepdims=True)
    med = np.nanmedian(np.where(ok, a, 0.0), axis=axis)
    return np.where(np.squeeze(ok, axis=axis), med, np.nan)


def _peer_median(sub: F64, n_peers: int) -> F64:
    """Median of the peers per hour; NaN when fewer than half of them (and under 2) report."""
    med = _nanmedian(sub, axis=1)
    med[np.isfinite(sub).sum(axis=1) < max(2, math.ceil(n_peers / 2))] = np.nan
    return med


def _distance_m(lat1: float, lon1: float, lat2: F64, lon2: F64) -> F64:
    p1, p2 = math.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - math.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * 6371008.8 * np.arcsin(np.sqrt(a))


def peer_sets(sensors: npt.ArrayLike, sites: Mapping[str, Site], eligible: npt.ArrayLike,
              cfg: QcConfig, judged: npt.ArrayLike | None = None) -> list[tuple[npt.NDArray[np.int64], str]]:
    """Each sensor's peers (column indices) and the tier they were found at.

    Peers are taken among ``eligible`` sensors (the town's own placed network); the sensors of
    ``judged`` get peers (default: the eligible ones — crowd stations are given them too, among the
    town's sensors, for the radiation signature of the crowd profile). Tiers, first with at least
    ``peer_min`` peers wins: same class and LCZ within the radius, same class and LCZ, same class
    within the radius, same class, same family (built: urban and suburban; green: parks and water)
    within the radius, same family. ``"none"`` when no tier has enough: such a sensor gets no peer
    check (a lone rural reference, two parks).
    """
    names = [str(s) for s in np.asarray(sensors, dtype=object)]
    ok = np.asarray(eligible, dtype=bool)
    wanted = ok if judged is None else np.asarray(judged, dtype=bool)
    info = [sites.get(s, Site(site_class="town")) for s in names]
    cls = np.array([i.site_class for i in info], dtype=object)
    lcz = np.array([(i.lcz or "").replace(" ", "").upper() for i in info], dtype=object)
    fam = np.array([_FAMILY.get(i.site_class, i.site_class) for i in info], dtype=object)
    lat = np.array([i.latitude if i.located else np.nan for i in info], dtype=np.float64)
    lon = np.array([i.longitude if i.located else np.nan for i in info], dtype=np.float64)
    out: list[tuple[npt.NDArray[np.int64], str]] = []
    for k, me in enumerate(info):
        others = ok.copy()
        others[k] = False
        near = np.zeros(len(names), dtype=bool)
        if me.located:
            with np.errstate(invalid="ignore"):
                near = _distance_m(me.latitude, me.longitude, lat, lon) <= cfg.peer_radius_m  # type: ignore[arg-type]
        same_cls = others & (cls == cls[k])
        tiers = [("lcz-near", same_cls & (lcz == lcz[k]) & near), ("lcz", same_cls & (lcz == lcz[k])),
                 ("class-near", same_cls & near), ("class", same_cls),
                 ("family-near", others & (fam == fam[k]) & near), ("family", others & (fam == fam[k]))]
        found: tuple[npt.NDArray[np.int64], str] = (np.empty(0, dtype=np.int64), "none")
        if wanted[k]:
            for tier, mask in tiers:
                if mask.sum() >= cfg.peer_min:
                    found = (np.flatnonzero(mask), tier)
                    break
        out.append(found)
    return out


def _spatial(grid: _Grid, sites: Mapping[str, Site], cool: set[str], unplaced: set[str], cfg: QcConfig) -> I64:
    """Codes per (grid hour, sensor) from the peer, crowd and monthly checks."""
    m = grid.means
    n_h, n_s = m.shape
    codes = np.zeros((n_h, n_s), dtype=np.int64)
    crowd = np.array([sites.get(str(s), Site()).crowd for s in grid.sensors], dtype=bool)
    placed = ~grid.unplaced & ~np.isin(grid.sensors, list(unplaced))
    # Crowd stations get peers among the town's own sensors (never among each other): what the
    # radiation signature and drift compare them with; the town's sensors never compare with them.
    peers = peer_sets(grid.sensors, sites, placed & ~crowd, cfg, judged=placed)
    ref = np.full((n_h, n_s), np.nan)
    shared: dict[tuple[int, ...], F64] = {}
    with np.errstate(invalid="ignore"):
        for k, (cols, _) in enumerate(peers):
            if not len(cols):
                continue
            if len(cols) >= SHARED_MEDIAN_MIN:
                # In a large group the median of the whole group (the sensor included) differs
                # from the leave-one-out one by at most half a rank: compute it once per group.
                # A crowd station is no member of its peers' group: their own median.
                key = tuple(sorted({*cols.tolist()} if crowd[k] else {*cols.tolist(), k}))
                if key not in shared:
                    shared[key] = _peer_median(m[:, list(key)], len(key))
                ref[:, k] = shared[key]
            else:
                ref[:, k] = _peer_median(m[:, cols], len(cols))
        anomaly = m - ref
        is_cool = np.isin(grid.sensors, list(cool))
        codes |= np.where(anomaly > cfg.gross_c, int(QcFlag.SPATIAL_HIGH), 0)
        codes |= np.where((anomaly < -cfg.gross_c) & ~is_cool[None, :], int(QcFlag.SPATIAL_LOW), 0)
    # Shape checks only against peers of the sensor's own class: against another class the
    # difference has a day/night shape of its own (a park is cooler by day, a street by night).
    # A sensor the registry does not describe gets no shape check: its class is unknown.
    own_class = np.array([str(s) in sites and tier in ("lcz-near", "lcz", "class-near", "class")
                          for s, (_, tier) in zip(grid.sensors, peers, strict=True)], dtype=bool)
    if grid.elevation is not None and own_class.any():
        codes[:, own_class] |= _radiation(grid, anomaly[:, own_class], cfg, np.flatnonzero(own_class))
    if own_class.any():
        codes[:, own_class] |= _drift(grid, anomaly[:, own_class], cfg, np.flatnonzero(own_class))
    if crowd.any():
        # Hour by hour and only for the window: the history's verdicts are already stored.
        w0 = grid.first_window_hour - grid.h0
        codes[w0:, crowd] |= _crowd_m2(m[w0:], placed, cool, grid.sensors, cfg)[:, crowd]
    # Monthly checks compare with the peer median, or the town's median for sensors without peers.
    with np.errstate(invalid="ignore"):
        pop = m[:, placed & ~crowd]
        town_med = _nanmedian(pop, axis=1) if pop.shape[1] else np.full(n_h, np.nan)
    comparison = np.where(np.isfinite(ref), ref, town_med[:, None])
    codes[:, placed] |= _monthly(grid, codes, comparison, cfg)[:, placed]
    return codes


def _since_start(windows: F64, start: I64) -> F64:
    """Trailing windows (n_days, n_s, w; window k covers days k−w+1…k) with the days before each sensor's series
    start (``start``: n_days, n_s) set to NaN."""
    n_days, _, w = windows.shape
    pos = np.arange(n_days)[:, None, None] - w + 1 + np.arange(w)[None, None, :]
    return np.where(pos < start[:, :, None], np.nan, windows)


def _radiation(grid: _Grid, anomaly: F64, cfg: QcConfig, cols: I64) -> I64:
    elev = grid.elevation
    assert elev is not None
    n_h, n_s = anomaly.shape
    out = np.zeros((n_h, n_s), dtype=np.int64)
    night = elev < cfg.night_max_deg
    sun = elev > cfg.sun_min_deg
    if not night.any() or not sun.any():
        return out
    # The sensor's own night-time anomaly, median per night then over the trailing nights: what
    # its site gives it when no sun shines on anything.
    d0 = int(min(grid.day.min(), grid.night_day.min()))
    n_days = int(max(grid.day.max(), grid.night_day.max())) - d0 + 1
    with np.errstate(invalid="ignore"):
        nightly = (pd.DataFrame(anomaly[night]).groupby(grid.night_day[night] - d0).median()
                   .reindex(range(n_days)).to_numpy(dtype=np.float64, copy=True))
        w = cfg.radiation_nights
        padded = np.vstack([np.full((w - 1, n_s), np.nan), nightly])
        windows = sliding_window_view(padded, w, axis=0)  # (n_days, n_s, w)
        if grid.breaks:
            # The night level restarts with the series: the first whole night after the visit's day.
            windows = _since_start(windows, grid.series_start(d0, n_days, offset=1)[:, cols])
        baseline = _nanmedian(windows, axis=-1)
        baseline[np.isfinite(windows).sum(axis=-1) < 2] = np.nan
    # Sun on the sensor makes it warmer than its peers: measured above its own night level, or
    # above its peers if its nights are cool (a tree-lined street's nights do not excuse its days).
    excess = anomaly - np.maximum(baseline[grid.day - d0], 0.0)
    s = np.sin(np.radians(np.clip(elev, 0.0, None)))
    # That day's excess must follow the sun (Pearson r over its sunny hours): a heat exhaust
    # running office hours is not sunshine.
    ok = sun[:, None] & np.isfinite(excess)
    day = np.broadcast_to((grid.day - d0)[:, None], ok.shape)
    col = np.broadcast_to(np.arange(n_s)[None, :], ok.shape)
    key = (day * n_s + col)[ok]
    e = excess[ok]
    sv = np.broadcast_to(s[:, None], ok.shape)[ok]
    size = n_days * n_s

    def total(w: F64 | None = None) -> F64:
        return np.bincount(key, weights=w, minlength=size).astype(np.float64)

    n = total()
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = total(e * sv) - total(e) * total(sv) / n
        var_e = total(e * e) - total(e) ** 2 / n
        var_s = total(sv * sv) - total(sv) ** 2 / n
        r = np.where(n >= 4, cov / np.sqrt(var_e * var_s), np.nan).reshape(n_days, n_s)
        follows = r[grid.day - d0] >= cfg.radiation_r
        hit = sun[:, None] & (excess > cfg.radiation_c) & follows
    out[hit] = int(QcFlag.RADIATION)
    return out


def _drift(grid: _Grid, anomaly: F64, cfg: QcConfig, cols: I64) -> I64:
    n_s = anomaly.shape[1]
    d0 = int(grid.day.min())
    n_days = int(grid.day.max()) - d0 + 1
    day = grid.day - d0
    if grid.breaks:
        # The visit's day starts the new series with its hours after the visit only.
        anomaly = np.where(grid.before_break()[:, cols], np.nan, anomaly)
    with np.errstate(invalid="ignore"):
        frame = pd.DataFrame(anomaly).groupby(day)
        daily = frame.median().reindex(range(n_days)).to_numpy(dtype=np.float64, copy=True)
        count = frame.count().reindex(range(n_days)).fillna(0).to_numpy()
    daily[count < 12] = np.nan
    w = cfg.drift_days
    padded = np.vstack([np.full((w - 1, n_s), np.nan), daily])
    win = sliding_window_view(padded, w, axis=0)  # (n_days, n_s, w)
    if grid.breaks:
        # A drift of the old series says nothing of the new one: windows start at the series' first day.
        win = _since_start(win, grid.series_start(d0, n_days)[:, cols])
    i, j = np.triu_indices(w, k=1)
    diff = win[..., j] - win[..., i]
    with np.errstate(invalid="ignore"):
        slope = _nanmedian(diff / (j - i), axis=-1)  # Theil–Sen
        pairs = np.isfinite(diff).sum(axis=-1)
        tau = np.nansum(np.sign(diff), axis=-1) / np.where(pairs > 0, pairs, np.nan)  # Kendall τ-a
        finite = np.isfinite(win)
        first = np.argmax(finite, axis=-1)
        last = w - 1 - np.argmax(finite[..., ::-1], axis=-1)
        change = np.abs(slope) * (last - first)
        drifting = (finite.sum(axis=-1) >= cfg.drift_min_days) & (np.abs(tau) >= cfg.drift_tau) & (
            change >= cfg.drift_c)
    return np.where(drifting[day], int(QcFlag.DRIFT), 0).astype(np.int64)


def spatial_thresholds(n: npt.ArrayLike, cfg: QcConfig) -> tuple[F64, ...]:
    """Lower and upper z bounds for ``n`` sensors: Student-t(n−1) quantiles (NaN below 2)."""
    df = np.asarray(n, dtype=np.float64) - 1
    df = np.where(df >= 1, df, np.nan)
    return stats.t.ppf(cfg.spatial_low_p, df), stats.t.ppf(cfg.spatial_high_p, df)


def _crowd_m2(m: F64, placed: B, cool: set[str], sensors: npt.NDArray[np.object_], cfg: QcConfig) -> I64:
    """CrowdQC+ m2: robust z-score per hour against every placed sensor of the town (Qn scale,
    Student-t bounds for small towns, skipped under ``spatial_min_sensors``)."""
    codes = np.zeros(m.shape, dtype=np.int64)
    pop = m.copy()
    pop[:, ~placed] = np.nan
    n = np.isfinite(pop).sum(axis=1)
    enough = n >= cfg.spatial_min_sensors
    if not enough.any():
        return codes
    with np.errstate(invalid="ignore"):
        med = _nanmedian(pop[enough], axis=1)
        scale = np.maximum(qn_rows(pop[enough]), cfg.spatial_min_scale_c)
        z = (m[enough] - med[:, None]) / scale[:, None]
        lo, hi = spatial_thresholds(n[enough], cfg)
        low = z < lo[:, None]
        high = z > hi[:, None]
    low[:, np.isin(sensors, list(cool))] = False
    codes[enough] = np.where(low, int(QcFlag.SPATIAL_LOW), 0) | np.where(high, int(QcFlag.SPATIAL_HIGH), 0)
    return codes


def _monthly(grid: _Grid, codes: I64, comparison: F64, cfg: QcConfig) -> I64:
    """CrowdQC+ m3, m4 and o3 over the trailing ``month_days``, judged per local day."""
    m = grid.means
    n_s = m.shape[1]
    d0 = int(grid.day.min())
    n_days = int(grid.day.max()) - d0 + 1
    day = grid.day - d0
    faults = grid.emptied | grid.history_faults | ((codes & int(_SHARE_FLAGS)) != 0)
    pair = np.isfinite(m) & np.isfinite(comparison)
    present_h = grid.present
    # Trailing windows start at the sensor's series start (a visit that replaced, moved or recalibrated it).
    start = grid.series_start(d0, n_days)
    if grid.breaks:
        old = grid.before_break()
        present_h, faults, pair = present_h & ~old, faults & ~old, pair & ~old
    x = np.where(pair, m, 0.0)
    y = np.where(pair, comparison, 0.0)

    def per_day(v: npt.NDArray[np.float64] | B) -> F64:
        out = np.zeros((n_days, n_s))
        np.add.at(out, day, np.asarray(v, dtype=np.float64))
        return out

    k1 = np.arange(n_days)[:, None] + 1
    lower = np.maximum(np.maximum(k1 - cfg.month_days, 0), start)

    def trailing(v: F64) -> F64:
        c = np.vstack([np.zeros((1, n_s)), np.cumsum(v, axis=0)])
        return np.take_along_axis(c, np.broadcast_to(k1, (n_days, n_s)), axis=0) - np.take_along_axis(c, lower, axis=0)

    present = per_day(present_h)
    sums = {name: trailing(per_day(v)) for name, v in {
        "present": present_h, "faults": faults & present_h, "n": pair, "x": x, "y": y,
        "xy": x * y, "xx": x * x, "yy": y * y}.items()}
    days_seen = trailing((present > 0).astype(np.float64))
    # Availability counts from the sensor's first day in view, so a new sensor is not "sparse".
    first_day = np.where((present > 0).any(axis=0), np.argmax(present > 0, axis=0), n_days)
    k = np.arange(n_days)[:, None]
    span = np.clip(k - np.maximum(np.maximum(first_day[None, :], k - cfg.month_days + 1), start) + 1, 0, None)
    judged = days_seen >= cfg.month_min_days
    with np.errstate(invalid="ignore", divide="ignore"):
        share = sums["faults"] / sums["present"]
        n = sums["n"]
        cov = sums["xy"] - sums["x"] * sums["y"] / n
        r = cov / np.sqrt((sums["xx"] - sums["x"] ** 2 / n) * (sums["yy"] - sums["y"] ** 2 / n))
        available = sums["present"] / (24.0 * span)
        verdict = (np.where(judged & (share > cfg.month_flagged_max), int(QcFlag.MONTH_FLAGGED), 0)
                   | np.where(judged & (n >= 12 * cfg.month_min_days) & (r < cfg.month_r_min),
                              int(QcFlag.MONTH_CORRELATION), 0)
                   | np.where(judged & (available < cfg.month_available_min), int(QcFlag.MONTH_SPARSE), 0))
    return verdict[day].astype(np.int64)
