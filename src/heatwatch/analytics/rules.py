"""Live alert rules: pure functions from a town's current snapshot to the conditions that hold.

Each rule returns a :class:`Check` for every (sensor, kind) whose condition holds now, marked
``raised`` when it is past the threshold that opens an alert. Holding uses a hysteresis margin
(a temperature must fall 0.5 °C under 35 °C to end an extreme-heat alert), so a value hovering
at the threshold makes one alert, not one per evaluation. What opens, stays open or closes is
decided by :mod:`heatwatch.analytics.alerts`, which keeps the state.

Kinds (the ``kind`` tag): ``temperature`` and ``heat_index`` (median of the last minutes, sensors
failing QC left out: a sun-struck or drifting sensor is reported as ``qc``, not as a heat wave),
``uhi_night`` (sensor minus the coolest rural reference, 18:00–06:00 local, urban sensors),
``canicule`` (town-level: the newest day whose IBMn/IBMx are known reached both département
thresholds, from the stored ``town_daily``), ``offline`` (no reading for ``offline_s``),
``battery`` (last voltage under the threshold) and ``qc`` (the last ``qc_hours`` stored hours
all flagged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from heatwatch.core.measurements import VALUE_FLAGS, QcFlag
from heatwatch.core.thresholds import AlertThresholds

from .aggregate import TownContext
from .indices import heat_index

Direction = Literal["above", "below"]
TOWN = ""  # sensor tag of a town-level alert: absent in InfluxDB, "" in code
#: Flags that make an hour "failing" for the alerts. UNPLACED is a registry matter, not a fault.
FAILING = VALUE_FLAGS & ~QcFlag.UNPLACED


DIRECTION: dict[str, Direction] = {
    "temperature": "above", "heat_index": "above", "uhi_night": "above", "canicule": "above",
    "offline": "above", "battery": "below", "qc": "above",
}


@dataclass(frozen=True, slots=True)
class Check:
    sensor: str
    kind: str
    value: float
    threshold: float
    message: str
    raised: bool


@dataclass
class Snapshot:
    """What the rules see of one town at ``now``."""

    context: TownContext
    now: pd.Timestamp
    #: per sensor (index): t, rh (medians over the live window), n, last_seen, battery_v
    live: pd.DataFrame
    #: stored hourly rows of the last hours: sensor, time, qc, n
    hourly: pd.DataFrame
    #: stored town_daily rows of the last days: time, ibmn, ibmx, canicule
    town_daily: pd.DataFrame
    #: sensors expected to report (the registry's active sensors of the town)
    expected: frozenset[str] = frozenset()
    thresholds: AlertThresholds = field(default_factory=AlertThresholds)


def evaluate(s: Snapshot) -> list[Check]:
    checks: list[Check] = []
    for rule in (heat_rules, uhi_night_rule, canicule_rule, offline_rule, battery_rule, qc_rule):
        checks.extend(rule(s))
    return sorted(checks, key=lambda c: (c.kind, c.sensor))


def failing_sensors(s: Snapshot) -> set[str]:
    """Sensors whose newest stored hour is flagged: their live values are not trusted."""
    if s.hourly.empty:
        return set()
    newest = s.hourly.sort_values("time").groupby("sensor").tail(1)
    bad = (newest["qc"].fillna(0).astype("int64") & int(FAILING)) != 0
    return set(newest.loc[bad, "sensor"])


def _above(sensor: str, kind: str, value: float, threshold: float, clear: float, message: str) -> list[Check]:
    if not np.isfinite(value) or value < threshold - clear:
        return []
    return [Check(sensor, kind, float(value), threshold, message, bool(value >= threshold))]


def heat_rules(s: Snapshot) -> list[Check]:
    th = s.thresholds
    live = s.live[(s.live["n"].fillna(0) > 0) & s.live["t"].notna()]
    live = live[~live.index.isin(list(failing_sensors(s)))]
    out: list[Check] = []
    if live.empty:
        return out
    hi = heat_index(live["t"], live["rh"])
    for sensor, t, h in zip(live.index, live["t"], hi, strict=True):
        out += _above(sensor, "temperature", t, th.temperature_c, th.temperature_clear_c,
                      f"{sensor}: {t:.1f} °C (median of the last {th.live_window_s // 60} min), "
                      f"threshold {th.temperature_c:g} °C")
        out += _above(sensor, "heat_index", h, th.heat_index_c, th.heat_index_clear_c,
                      f"{sensor}: heat index {h:.1f} °C, threshold {th.heat_index_c:g} °C")
    return out


def uhi_night_rule(s: Snapshot) -> list[Check]:
    th = s.thresholds
    ctx = s.context
    hour = s.now.tz_convert(ctx.timezone).hour
    if 6 <= hour < 18:
        return []
    live = s.live[(s.live["n"].fillna(0) > 0) & s.live["t"].notna()]
    live = live[~live.index.isin(list(failing_sensors(s)))]
    refs = live[live.index.isin(list(ctx.references))]["t"]
    if refs.empty:
        return []
    reference = float(refs.min())
    urban = live[ctx.is_urban(pd.Series(live.index, index=live.index)).to_numpy()]
    out: list[Check] = []
    for sensor, t in urban["t"].items():
        uhi = t - reference
        out += _above(str(sensor), "uhi_night", uhi, th.uhi_night_c, th.uhi_clear_c,
                      f"{sensor}: {uhi:.1f} °C warmer than the rural reference tonight, threshold "
                      f"{th.uhi_night_c:g} °C")
    return out


#: The canicule rule looks at the newest day with IBM known only if it is this recent: IBMx of day D needs D's Tx
#: window, which closes at 06:00 UTC on D+1, so yesterday's is the newest a morning evaluation can know. An older
#: day (a recomputed past summer, a town whose reference stopped reporting) is history, not a condition now.
CANICULE_RECENT_DAYS = 2


def canicule_rule(s: Snapshot) -> list[Check]:
    thr = s.context.thresholds
    if thr is None or s.town_daily.empty:
        return []
    known = s.town_daily[s.town_daily["canicule"].notna()].sort_values("time")
    if known.empty:
        return []
    last = known.iloc[-1]
    if not bool(last["canicule"]):
        return []
    day = last["time"].tz_convert(s.context.timezone).date()
    today = s.now.tz_convert(s.context.timezone).date()
    if (today - day).days > CANICULE_RECENT_DAYS:
        return []
    return [Check(TOWN, "canicule", float(last["ibmx"]), thr.ibmx,
                  f"canicule thresholds reached on {day}: IBMn {last['ibmn']:.1f} ≥ {thr.ibmn:g} °C and "
                  f"IBMx {last['ibmx']:.1f} ≥ {thr.ibmx:g} °C", True)]


def offline_rule(s: Snapshot) -> list[Check]:
    th = s.thresholds
    sensors = sorted(set(s.expected) | set(s.live.index))
    last_seen = s.live["last_seen"] if "last_seen" in s.live.columns else pd.Series(dtype="datetime64[ms, UTC]")
    out: list[Check] = []
    for sensor in sensors:
        seen = last_seen.get(sensor)
        if seen is None or pd.isna(seen):
            age = float(th.seen_lookback_s)
            since = f"more than {th.seen_lookback_s // 86400} days"
        else:
            age = (s.now - seen).total_seconds()
            since = f"{age / 60:.0f} min (last at {seen.isoformat()})"
        if age >= th.offline_s:
            out.append(Check(sensor, "offline", age / 60, th.offline_s / 60, f"{sensor}: no reading for {since}",
                             True))
    return out


def battery_rule(s: Snapshot) -> list[Check]:
    """Volts where the device reports volts; else its percent of charge (SenML ``%EL``, Milesight...), each
    against its own threshold (``battery_v``, ``battery_pct``)."""
    th = s.thresholds
    out: list[Check] = []
    volts = s.live["battery_v"].dropna() if "battery_v" in s.live.columns else pd.Series(dtype=float)
    for sensor, v in volts.items():
        if v <= th.battery_v + th.battery_clear_v:
            out.append(Check(str(sensor), "battery", float(v), th.battery_v,
                             f"{sensor}: battery {v:.2f} V, threshold {th.battery_v:g} V", bool(v < th.battery_v)))
    if "battery_pct" in s.live.columns:
        for sensor, p in s.live["battery_pct"].dropna().items():
            if sensor in volts.index or p > th.battery_pct + th.battery_clear_pct:
                continue
            out.append(Check(str(sensor), "battery", float(p), th.battery_pct,
                             f"{sensor}: battery {p:.0f} %, threshold {th.battery_pct:g} %", bool(p < th.battery_pct)))
    return out


def data_lag_s(s: Snapshot) -> float | None:
    """Seconds since the newest reading of any sensor of the town (None: none within the look-back)."""
    if "last_seen" not in s.live.columns:
        return None
    newest = s.live["last_seen"].dropna()
    if newest.empty:
        return None
    return max(0.0, (s.now - newest.max()).total_seconds())


def town_silence_rule(s: Snapshot, lag_s: float | None) -> list[Check]:
    """The whole town silent: one town-level ``offline`` check instead of one per sensor, since a stalled pipeline
    (broker or ingester down, a backlog still queued) or a dead gateway cannot be told from every sensor dying."""
    th = s.thresholds
    age = float(th.seen_lookback_s) if lag_s is None else lag_s
    if age < th.offline_s:
        return []
    since = f"more than {th.seen_lookback_s // 86400} days" if lag_s is None else f"{age / 60:.0f} min"
    return [Check(TOWN, "offline", age / 60, th.offline_s / 60, f"no reading from any sensor of the town for {since}",
                  True)]


def qc_rule(s: Snapshot) -> list[Check]:
    """Raised when the last ``qc_hours`` stored hours of a sensor are all flagged; holds while its
    newest hour still is."""
    th = s.thresholds
    out: list[Check] = []
    if s.hourly.empty:
        return out
    for sensor, rows in s.hourly.sort_values("time").groupby("sensor", sort=True):
        qc = rows["qc"].fillna(0).astype("int64").to_numpy()
        flagged = (qc & int(FAILING)) != 0
        if not flagged[-1]:
            continue
        tail = flagged[-th.qc_hours:]
        run = int(len(flagged) - np.flatnonzero(~flagged)[-1] - 1) if (~flagged).any() else len(flagged)
        seen = int(np.bitwise_or.reduce(qc[-len(tail):])) & int(FAILING)
        names = "|".join(f.name or "" for f in QcFlag if seen & int(f))
        out.append(Check(str(sensor), "qc", float(run), float(th.qc_hours),
                         f"{sensor}: quality control failing for {run} h ({names})",
                         bool(len(tail) >= th.qc_hours and tail.all())))
    return out
