"""Hourly, daily and town-daily aggregates of one town's readings, as pure pandas.

Input: raw readings of one town (columns town, sensor, time tz-aware, temperature, humidity),
as a job reads them from the ``reading`` measurement. Output: frames whose columns are exactly
the tags, fields and ``time`` of the ``hourly``, ``daily`` and ``town_daily`` measurements of
DESIGN.md §3, ready to be written back. Same input, same output, row for row: results are sorted
and nothing depends on input order, wall-clock time or randomness, so a rerun overwrites the
same points with the same values.

Conventions, each a choice worth knowing:

* An hourly value is the mean of the readings in [h, h+1) UTC that pass the point checks
  (range, step, spike, persistence); an hour with none keeps a row with ``n`` = 0, no values and
  the flags that emptied it, so the reason is stored.
* Daily per-sensor values use the local calendar day of the town (Europe/Paris): what a
  resident means by "Tuesday". ``uhi_night_max`` of day D is the night that ends on the morning
  of D (18:00 D−1 to 06:00 D local), matching Météo-France's Tn convention where the night
  before belongs to the day.
* The town Tn/Tx behind IBMn/IBMx use Météo-France's climatological windows in UTC and the
  rural reference sensor(s) — Météo-France uses one reference station per département; ours is
  the town's rural reference (median if several qualify). When no reference has enough hours in
  the window, the median of all usable sensors stands in: warmer, but better than no index.
* IBM of day D is the mean of D−2, D−1 and D (trailing, so it is known at the end of D), and
  only when all three days have a Tn/Tx.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from heatwatch.core.measurements import DAILY, DAILY_BLOCKING, HOURLY, TOWN_DAILY, VALUE_FLAGS, QcFlag
from heatwatch.core.model import CaniculeThresholds, Sensor, SiteClass, Town

from .indices import dew_point, heat_index, humidex
from .qc import POINT_FLAGS, QcConfig, run_qc

# Frame columns are the stored measurements' tags, time and fields, in schema order.
HOURLY_COLUMNS = HOURLY.columns
DAILY_COLUMNS = DAILY.columns
TOWN_DAILY_COLUMNS = TOWN_DAILY.columns
TROPICAL_NIGHT_C = 20.0
HOT_HOUR_C = 30.0


@dataclass(frozen=True, slots=True)
class TownContext:
    """What the aggregates need to know about a town and its sensors, beyond the readings."""

    id: str
    timezone: str = "Europe/Paris"
    references: frozenset[str] = frozenset()
    #: Sensors whose UHI makes the town's uhi_mean/uhi_max; None means every sensor that is not
    #: a reference, a cool site or unplaced.
    urban: frozenset[str] | None = None
    #: Parks, water: expected cold, never flagged SPATIAL_LOW (references always are too).
    cool_sites: frozenset[str] = frozenset()
    unplaced: frozenset[str] = frozenset()
    thresholds: CaniculeThresholds | None = None
    qc: QcConfig = field(default_factory=QcConfig)

    @classmethod
    def from_registry(cls, town: Town, sensors: Iterable[Sensor], qc: QcConfig | None = None) -> TownContext:
        """Build from the kernel's town config and the registry's sensors of that town."""
        mine = [s for s in sensors if s.town == town.id and not s.retired]
        refs = set(town.reference_sensors) | {s.id for s in mine if s.is_reference}
        return cls(
            id=town.id,
            timezone=town.timezone,
            references=frozenset(refs),
            urban=frozenset(s.id for s in mine if s.site_class is SiteClass.urban),
            cool_sites=frozenset(s.id for s in mine if s.site_class in (SiteClass.park, SiteClass.water)),
            unplaced=frozenset(s.id for s in mine if not s.placed and s.id not in refs),
            thresholds=town.canicule,
            qc=qc or QcConfig(),
        )

    def is_urban(self, sensors: pd.Series) -> pd.Series:
        if self.urban is not None:
            return sensors.isin(list(self.urban))
        return ~sensors.isin(list(self.references | self.cool_sites | self.unplaced))


@dataclass(frozen=True, slots=True)
class TownAggregates:
    hourly: pd.DataFrame
    daily: pd.DataFrame
    town_daily: pd.DataFrame


def aggregate_town(
    readings: pd.DataFrame, town: TownContext, days: Collection[date] | None = None
) -> TownAggregates:
    """The three aggregate frames of one town from its raw readings.

    To recompute local days D1…D2 completely, pass readings from 18:00 UTC the day before D1
    (night UHI, Tn window) to 06:00 UTC the day after D2 (Tx window), and ``days`` = D1…D2 so
    that the partial edge days are not emitted (hourly rows included).
    """
    hourly = hourly_aggregates(readings, town)
    daily = daily_aggregates(hourly, town, days)
    per_town = town_daily_aggregates(hourly, daily, town, days)
    # Edge hours outside ``days`` are only context: their local day is cut, so their
    # availability flag would be wrong, and writing them would overwrite good points.
    kept = _keep_days(hourly, days, town.timezone).reset_index(drop=True)
    return TownAggregates(kept, daily, per_town)


def _or_reduce(qc: pd.Series, keys: list[pd.Series]) -> pd.Series:
    """Bitwise OR of ``qc`` per group, one vectorised max per flag bit."""
    out: pd.Series | None = None
    for bit in QcFlag:
        part = (qc & int(bit)).groupby(keys, sort=True).max()
        out = part if out is None else out | part
    assert out is not None
    return out.astype("int64")


def _single_town(frame: pd.DataFrame, town: TownContext) -> None:
    towns = set(frame["town"].unique())
    if towns - {town.id}:
        raise ValueError(f"frame holds towns {sorted(towns)}, expected only {town.id!r}")


def hourly_aggregates(readings: pd.DataFrame, town: TownContext) -> pd.DataFrame:
    """``hourly`` rows per sensor and UTC hour, with QC flags and UHI against the rural reference."""
    _single_town(readings, town)
    if readings.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in HOURLY_COLUMNS})
    q = run_qc(
        readings,
        town.qc,
        cool_sites=town.references | town.cool_sites,
        unplaced=town.unplaced,
        tz=town.timezone,
    )
    temp = q["temperature"].astype("float64")
    rh = q["humidity"].astype("float64") if "humidity" in q.columns else pd.Series(np.nan, index=q.index)
    clean = ((q["qc"] & int(POINT_FLAGS)) == 0) & temp.notna()
    keys = [q["sensor"], q["time"].dt.tz_convert("UTC").dt.floor("h").rename("time")]
    t_ok = temp.where(clean)
    g = t_ok.groupby(keys, sort=True)
    out = pd.DataFrame({
        "t_mean": g.mean(),
        "t_min": g.min(),
        "t_max": g.max(),
        "rh_mean": rh.where(clean).groupby(keys, sort=True).mean(),
        "n": g.count().astype("int64"),
    })
    all_flags = _or_reduce(q["qc"], keys)
    clean_flags = _or_reduce(q["qc"].where(clean, 0).astype("int64"), keys)
    # Point flags of discarded readings do not taint an hour that still has clean readings;
    # an hour left empty keeps them all as its reason.
    out["qc"] = np.where(out["n"] > 0, clean_flags, all_flags).astype("int64")
    out = out.reset_index()
    out.insert(0, "town", town.id)
    out["dewpoint"] = dew_point(out["t_mean"], out["rh_mean"])
    out["heat_index"] = heat_index(out["t_mean"], out["rh_mean"])
    out["humidex"] = humidex(out["t_mean"], out["dewpoint"])
    out["uhi"] = out["t_mean"] - _reference_per_hour(out, town).reindex(out["time"]).to_numpy()
    return out[HOURLY_COLUMNS].sort_values(["sensor", "time"], ignore_index=True)


def _hour_ok(hourly: pd.DataFrame) -> pd.Series:
    return ((hourly["qc"].astype("int64") & int(VALUE_FLAGS)) == 0) & (hourly["n"] > 0)


def _reference_per_hour(hourly: pd.DataFrame, town: TownContext) -> pd.Series:
    """The lowest usable hourly mean among the rural references (Rennes Urban Network definition)."""
    ref = hourly[hourly["sensor"].isin(list(town.references)) & _hour_ok(hourly)]
    return ref.groupby("time", sort=True)["t_mean"].min()


def _local_day(time: pd.Series, tz: str) -> pd.Series:
    """Start of the local calendar day, as a tz-aware timestamp in ``tz``."""
    return time.dt.tz_convert(tz).dt.normalize()


def _day_hours(day_start: pd.Series, tz: str) -> pd.Series:
    """Length of each local day in hours: 23 or 25 on DST change days."""
    nxt = (day_start.dt.tz_localize(None) + pd.Timedelta(days=1)).dt.tz_localize(tz)
    return (nxt - day_start) / pd.Timedelta(hours=1)


def _keep_days(frame: pd.DataFrame, days: Collection[date] | None, tz: str) -> pd.DataFrame:
    if days is None:
        return frame
    wanted = frame["time"].dt.tz_convert(tz).dt.date.isin(set(days))
    return frame[wanted.to_numpy()]


def daily_aggregates(
    hourly: pd.DataFrame, town: TownContext, days: Collection[date] | None = None
) -> pd.DataFrame:
    """``daily`` rows per sensor and local day; ``time`` is local midnight, in UTC."""
    _single_town(hourly, town)
    if hourly.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in DAILY_COLUMNS})
    tz = town.timezone
    h = hourly.copy()
    h["day"] = _local_day(h["time"], tz)
    ok = _hour_ok(h)
    v = h.where(ok)  # unusable hours become NaN and drop out of every statistic
    keys = [h["sensor"], h["day"]]
    g = v.groupby(keys, sort=True)
    out = pd.DataFrame({
        "tn": g["t_min"].min(),
        "tx": g["t_max"].max(),
        "t_mean": g["t_mean"].mean(),
        "rh_mean": g["rh_mean"].mean(),
        "heat_index_max": g["heat_index"].max(),
        "humidex_max": g["humidex"].max(),
        "uhi_mean": g["uhi"].mean(),
        "hours_ge_30": (v["t_mean"] >= HOT_HOUR_C).groupby(keys, sort=True).sum().astype("int64"),
        "ok_hours": ok.groupby(keys, sort=True).sum(),
        # Day flags: every flag met that day; AVAILABILITY is added below when coverage is short.
        "qc": _or_reduce(h["qc"].astype("int64"), keys),
    })
    # The night ending on the morning of D: shifting local wall time by +6 h maps
    # 18:00 D−1 … 06:00 D onto 00:00 … 12:00 of D.
    wall = h["time"].dt.tz_convert(tz).dt.tz_localize(None) + pd.Timedelta(hours=6)
    night = wall.dt.hour < 12
    night_day = wall.dt.normalize().dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    night_max = v["uhi"][night].groupby([h["sensor"][night], night_day[night]], sort=True).max()
    night_max.index = night_max.index.set_names(["sensor", "day"])
    out["uhi_night_max"] = night_max.reindex(out.index)
    out = out.reset_index()
    out["coverage"] = out["ok_hours"] / _day_hours(out["day"], tz)
    out["tropical_night"] = (out["tn"] >= TROPICAL_NIGHT_C).astype("boolean").mask(out["tn"].isna())

    short = out["coverage"] < town.qc.availability_min
    out["qc"] = (out["qc"] | np.where(short, int(QcFlag.AVAILABILITY), 0)).astype("int64")
    out["town"] = town.id
    out["time"] = out["day"].dt.tz_convert("UTC")
    out = _keep_days(out, days, tz)
    return out[DAILY_COLUMNS].sort_values(["sensor", "time"], ignore_index=True)


def daily_usable(daily: pd.DataFrame) -> pd.Series:
    """Sensor-days with enough usable hours from a placed sensor."""
    return (daily["qc"].astype("int64") & int(DAILY_BLOCKING)) == 0


def _window_extremes(hourly: pd.DataFrame, town: TownContext) -> pd.DataFrame:
    """Tn and Tx of the town per climatological day, from the references or the fallback median."""
    ok = _hour_ok(hourly) & ~hourly["sensor"].isin(list(town.unplaced))
    h = hourly[ok]
    utc = h["time"].dt.tz_convert("UTC").dt.tz_localize(None)
    result = {}
    # Tn of D: [18:00 UTC D−1, 18:00 UTC D) → +6 h lands in D. Tx of D: [06:00 D, 06:00 D+1) → −6 h.
    for name, col, shift, how in (("tn", "t_min", 6, "min"), ("tx", "t_max", -6, "max")):
        clim_day = (utc + pd.Timedelta(hours=shift)).dt.normalize().dt.date
        g = h[col].groupby([h["sensor"], clim_day], sort=True)
        per_sensor = pd.DataFrame({"v": g.agg(how), "hours": g.count()})
        per_sensor = per_sensor[per_sensor["hours"] >= town.qc.availability_min * 24]
        per_sensor.index = per_sensor.index.set_names(["sensor", "day"])
        is_ref = per_sensor.index.get_level_values("sensor").isin(list(town.references))
        ref = per_sensor[is_ref]["v"].groupby(level="day").median()
        fallback = per_sensor["v"].groupby(level="day").median()
        result[name] = ref.combine_first(fallback)
    frame = pd.DataFrame(result)
    if frame.empty:
        return frame
    full = pd.date_range(min(frame.index), max(frame.index), freq="D").date
    return frame.reindex(full)


def town_daily_aggregates(
    hourly: pd.DataFrame, daily: pd.DataFrame, town: TownContext, days: Collection[date] | None = None
) -> pd.DataFrame:
    """``town_daily`` rows per local day: IBMn/IBMx, canicule, town UHI, hottest sensor, sensors_ok."""
    _single_town(hourly, town)
    tz = town.timezone
    if daily.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in TOWN_DAILY_COLUMNS})
    d = daily.copy()
    d["date"] = d["time"].dt.tz_convert(tz).dt.date
    good = daily_usable(d)
    urban = town.is_urban(d["sensor"])

    by_day = pd.DataFrame(index=pd.Index(sorted(d["date"].unique()), name="date"))
    by_day["sensors_ok"] = good.groupby(d["date"]).sum().astype("int64")
    by_day["uhi_mean"] = d["uhi_mean"][good & urban].groupby(d["date"][good & urban]).mean()
    h = hourly[_hour_ok(hourly) & town.is_urban(hourly["sensor"])]
    h_date = h["time"].dt.tz_convert(tz).dt.date
    by_day["uhi_max"] = h["uhi"].groupby(h_date).max()
    # Highest daily mean among usable sensor-days; sorting by sensor first breaks ties by id.
    ranked = d[good & d["t_mean"].notna()].sort_values(["date", "t_mean", "sensor"],
                                                       ascending=[True, False, True])
    by_day["hottest_sensor"] = ranked.groupby("date")["sensor"].first()

    extremes = _window_extremes(hourly, town)
    if extremes.empty:
        by_day["ibmn"] = np.nan
        by_day["ibmx"] = np.nan
    else:
        ibm = extremes.rolling(3, min_periods=3).mean()
        by_day["ibmn"] = ibm["tn"].reindex(by_day.index)
        by_day["ibmx"] = ibm["tx"].reindex(by_day.index)
    canicule = pd.Series(pd.NA, index=by_day.index, dtype="boolean")
    if town.thresholds is not None:
        known = by_day["ibmn"].notna() & by_day["ibmx"].notna()
        hit = (by_day["ibmn"] >= town.thresholds.ibmn) & (by_day["ibmx"] >= town.thresholds.ibmx)
        canicule = hit.astype("boolean").where(known, pd.NA)
    by_day["canicule"] = canicule

    out = by_day.reset_index()
    midnight = pd.to_datetime(out["date"]).dt.tz_localize(tz)
    out["time"] = midnight.dt.tz_convert("UTC")
    out["town"] = town.id
    if days is not None:
        out = out[out["date"].isin(set(days))]
    return out[TOWN_DAILY_COLUMNS].sort_values("time", ignore_index=True)
