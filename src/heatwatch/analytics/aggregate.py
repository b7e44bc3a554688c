"""Hourly, daily and town-daily aggregates of one town's readings, as pure pandas.

Input: raw readings of one town (columns town, sensor, time tz-aware, temperature, humidity),
as a job reads them from the ``reading`` measurement, plus optionally the stored hourly history
before them (for QC's drift and monthly checks) and an official station's hourly series
(:mod:`heatwatch.analytics.reference`). Output: frames whose columns are exactly the tags,
fields and ``time`` of the ``hourly``, ``daily`` and ``town_daily`` measurements, ready to be
written back. Same input, same output, row for row: results are sorted and nothing depends on
input order, wall-clock time or randomness, so a rerun overwrites the same points.

The definitions (windows, thresholds, sources) are in docs/science/indices.md, uhi.md and
canicule.md; in short:

* An hourly value is the mean of the readings in [h, h+1) UTC that pass the point checks; an
  hour with none keeps a row with ``n`` = 0 and the flags that emptied it, so the reason is stored.
* Daily values use the town's local calendar day, except ``tn`` and ``tx`` which use
  Météo-France's climatological windows (Tn of D: 18:00 UTC D−1 → 18:00 UTC D; Tx of D: 06:00
  UTC D → 06:00 UTC D+1), each needing 80 % of its 24 hours present; the tropical night is
  ``tn`` ≥ 20 °C under the same rule. ``uhi_night_max`` of D is the night 18:00 D−1 → 06:00 D
  local. Coverage counts hours with readings that passed the point checks: spatial flags remove
  values, never hours of presence.
* IBMn/IBMx of D are the means of the reference Tn/Tx over D−2…D, from the first source of the
  town's configured order (official station, rural reference sensors) that has all six values;
  the source is stored in ``ibm_source``. Without one the indices stay empty and ``ibm_reason``
  says why: there is no fallback to urban sensors. ``*_forward`` are the same over D…D+2, the
  window of Météo-France's vigilance forecasts, reconstructed from observations.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from heatwatch.core.measurements import DAILY, DAILY_BLOCKING, HOURLY, TOWN_DAILY, VALUE_FLAGS, QcFlag
from heatwatch.core.model import CaniculeThresholds, Sensor, SiteClass, Town
from heatwatch.core.privacy import PRIVATE_OWNERS
from heatwatch.core.trust import network_of, weight_of

from .indices import dew_point, heat_index, humidex
from .qc import POINT_FLAGS, QcConfig, Site, run_qc

# Frame columns are the stored measurements' tags, time and fields, in schema order.
HOURLY_COLUMNS = HOURLY.columns
DAILY_COLUMNS = DAILY.columns
TOWN_DAILY_COLUMNS = TOWN_DAILY.columns
TROPICAL_NIGHT_C = 20.0
HOT_HOUR_C = 30.0
#: Share of a 24-hour climatological window that must be present for its Tn or Tx.
WINDOW_COVERAGE = 0.8
#: Reference sources a town may list, in its order of preference.
STATION, SENSORS = "station", "sensors"
#: Crowd / citizen stations, by the registry's ``owner``: they get the CrowdQC+ town-wide test.
CROWD_OWNERS = PRIVATE_OWNERS
#: Weight of a confirmed citizen sensor in the town's indices (HEATWATCH_ANALYTICS_CITIZEN_WEIGHT).
DEFAULT_CITIZEN_WEIGHT = 0.5


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
    #: Class, LCZ, position and QC profile per sensor (docs/science/qc.md, "Peers").
    sites: Mapping[str, Site] = field(default_factory=dict)
    #: (latitude, longitude) of the town, where QC places the sun.
    position: tuple[float, float] | None = None
    #: Météo-France station (NUM_POSTE) imported with ``heatwatch reference import``.
    station: str | None = None
    ibm_sources: tuple[str, ...] = (STATION, SENSORS)
    uhi_sources: tuple[str, ...] = (SENSORS,)
    #: Weight of each sensor in the town's indices (core/trust.py): absent = 1 (the town's network); a
    #: confirmed citizen sensor the citizen weight; a provisional one 0 (computed and published, never counted).
    weights: Mapping[str, float] = field(default_factory=dict)
    #: Citizen and crowd sensors: left out of the town-network variant of the indices (``*_town`` fields).
    citizens: frozenset[str] = frozenset()
    #: Sensor → instants (epoch ms) its readings start a new series: a visit that replaced, moved or recalibrated
    #: it (core/maintenance.py); QC restarts its baselines there.
    breaks: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def from_registry(cls, town: Town, sensors: Iterable[Sensor], qc: QcConfig | None = None,
                      citizen_weight: float = DEFAULT_CITIZEN_WEIGHT) -> TownContext:
        """Build from the kernel's town config and the registry's sensors of that town."""
        mine = [s for s in sensors if s.town == town.id and not s.retired]
        refs = set(town.reference_sensors) | {s.id for s in mine if s.is_reference}
        sites = {s.id: Site(site_class=("rural_reference" if s.id in refs else s.site_class.value), lcz=s.lcz,
                            latitude=s.latitude, longitude=s.longitude, crowd=s.owner in CROWD_OWNERS)
                 for s in mine}
        ref = town.reference
        return cls(
            id=town.id,
            timezone=town.timezone,
            references=frozenset(refs),
            urban=frozenset(s.id for s in mine if s.site_class is SiteClass.urban),
            cool_sites=frozenset(s.id for s in mine if s.site_class in (SiteClass.park, SiteClass.water)),
            unplaced=frozenset(s.id for s in mine if not s.placed and s.id not in refs),
            thresholds=town.canicule,
            qc=town_qc(town, qc),
            sites=sites,
            position=(town.latitude, town.longitude),
            station=ref.station,
            ibm_sources=tuple(ref.ibm_sources),
            uhi_sources=tuple(ref.uhi_sources),
            weights={s.id: weight_of(s, citizen_weight) for s in mine if network_of(s) == "citizen"},
            citizens=frozenset(s.id for s in mine if network_of(s) == "citizen"),
        )

    def is_urban(self, sensors: pd.Series) -> pd.Series:
        if self.urban is not None:
            urban = sensors.isin(list(self.urban))
        else:
            urban = ~sensors.isin(list(self.references | self.cool_sites | self.unplaced))
        # A provisional citizen sensor (weight 0) is computed and published, never counted in the town's values.
        return urban & ~sensors.isin([s for s, w in self.weights.items() if w <= 0])

    def weight(self, sensors: pd.Series) -> pd.Series:
        return sensors.map(lambda s: self.weights.get(s, 1.0)).astype("float64")


def town_qc(town: Town, qc: QcConfig | None = None) -> QcConfig:
    """The QC parameters of a town: the given ones, with the town's seasonal range if it sets one."""
    base = qc or QcConfig()
    if town.qc_range_c is None:
        return base
    from dataclasses import replace

    return replace(base, monthly_range_c=tuple((float(lo), float(hi)) for lo, hi in town.qc_range_c))


@dataclass(frozen=True, slots=True)
class TownAggregates:
    hourly: pd.DataFrame
    daily: pd.DataFrame
    town_daily: pd.DataFrame


def aggregate_town(
    readings: pd.DataFrame, town: TownContext, days: Collection[date] | None = None, *,
    history: pd.DataFrame | None = None, station: pd.DataFrame | None = None,
) -> TownAggregates:
    """The three aggregate frames of one town from its raw readings.

    To recompute local days D1…D2 completely, pass readings from 18:00 UTC three days before D1
    (IBM of D1 starts with the Tn window of D1−2) to 06:00 UTC three days after D2 (Tx window of
    D2+2, for the forward IBM), and ``days`` = D1…D2 so that the edge days are not emitted.
    ``history`` is the stored ``hourly`` before the readings (QC's trailing checks); ``station``
    the official station's hourly rows (:func:`heatwatch.analytics.reference.read_station`).
    """
    hourly = hourly_aggregates(readings, town, history=history, station=station)
    daily = daily_aggregates(hourly, town, days)
    per_town = town_daily_aggregates(hourly, daily, town, days, station=station)
    # Edge hours outside ``days`` are only context: their local day is cut, so their
    # availability flag would be wrong, and writing them would overwrite good points.
    kept = _keep_days(hourly, days, town.timezone).reset_index(drop=True)
    return TownAggregates(kept, daily, per_town)


def _or_reduce(qc: pd.Series, keys: list[pd.Series]) -> pd.Series:
    """Bitwise OR of ``qc`` per group (groups in sorted key order, as ``groupby(sort=True)``)."""
    grouped = qc.groupby(keys, sort=True)
    codes = grouped.ngroup().to_numpy()
    index = grouped.size().index
    values = qc.to_numpy(dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_codes[1:] != sorted_codes[:-1])))
    out = np.zeros(len(index), dtype=np.int64)
    if len(starts):
        out[sorted_codes[starts]] = np.bitwise_or.reduceat(values[order], starts)
    return pd.Series(out, index=index, dtype="int64")


def _single_town(frame: pd.DataFrame, town: TownContext) -> None:
    towns = set(frame["town"].unique())
    if towns - {town.id}:
        raise ValueError(f"frame holds towns {sorted(towns)}, expected only {town.id!r}")


def hourly_aggregates(readings: pd.DataFrame, town: TownContext, *, history: pd.DataFrame | None = None,
                      station: pd.DataFrame | None = None) -> pd.DataFrame:
    """``hourly`` rows per sensor and UTC hour, with QC flags and UHI against the town's reference."""
    _single_town(readings, town)
    if readings.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in HOURLY_COLUMNS})
    sites = dict(town.sites)
    for ref in town.references:
        sites.setdefault(ref, Site(site_class="rural_reference"))
    q = run_qc(
        readings,
        town.qc,
        sites=sites,
        cool_sites=town.references | town.cool_sites,
        unplaced=town.unplaced,
        tz=town.timezone,
        position=town.position,
        history=history,
        breaks=town.breaks,
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
    ref = reference_per_hour(out, town, station)
    out["uhi"] = out["t_mean"] - ref["value"].reindex(out["time"]).to_numpy()
    return out[HOURLY_COLUMNS].sort_values(["sensor", "time"], ignore_index=True)


def _hour_ok(hourly: pd.DataFrame) -> pd.Series:
    """Hours whose value is usable: readings passed the point checks and no value flag is set."""
    return ((hourly["qc"].astype("int64") & int(VALUE_FLAGS)) == 0) & (hourly["n"] > 0)


def _hour_present(hourly: pd.DataFrame) -> pd.Series:
    """Hours with data that passed the point checks: what availability and window coverage count."""
    return (hourly["n"] > 0) & ((hourly["qc"].astype("int64") & int(QcFlag.UNPLACED)) == 0)


def reference_per_hour(hourly: pd.DataFrame, town: TownContext, station: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rural reference temperature per UTC hour and where it came from (docs/science/uhi.md).

    ``sensors``: the lowest usable hourly mean among the town's rural reference sensors (the
    Rennes Urban Network definition). ``station``: the official station's instantaneous T at
    the start and at the end of the hour, averaged. The first source of ``town.uhi_sources``
    with a value wins, hour by hour.
    """
    found: list[pd.DataFrame] = []
    for source in town.uhi_sources:
        if source == SENSORS:
            ref = hourly[hourly["sensor"].isin(list(town.references)) & _hour_ok(hourly)]
            v = ref.groupby("time", sort=True)["t_mean"].min()
            label = SENSORS
        elif source == STATION and station is not None and not station.empty and town.station:
            t = station.drop_duplicates("time").set_index("time")["t"].dropna()
            # The row stamped H holds T at the instant H: hour [h, h+1) has T(h) and T(h+1).
            hours = t.index.union(t.index - pd.Timedelta(hours=1)).rename("time")
            pair = np.vstack([t.reindex(hours).to_numpy(), t.reindex(hours + pd.Timedelta(hours=1)).to_numpy()])
            both = _nanmean2(pair)
            v = pd.Series(both, index=hours).dropna()
            label = f"{STATION}:{town.station}"
        else:
            continue
        found.append(pd.DataFrame({"value": v, "source": label}))
    if not found:
        return pd.DataFrame({"value": pd.Series(dtype="float64"), "source": pd.Series(dtype=object)},
                            index=pd.DatetimeIndex([], tz="UTC", name="time"))
    out = found[0]
    for more in found[1:]:
        out = pd.concat([out, more[~more.index.isin(out.index)]])
    return out.sort_index()


def _nanmean2(pair: np.ndarray) -> np.ndarray:
    """Column means of a 2-row array ignoring NaN, NaN where both are missing (no warning)."""
    ok = np.isfinite(pair)
    n = ok.sum(axis=0)
    total = np.where(ok, pair, 0.0).sum(axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


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


def window_extremes(hourly: pd.DataFrame) -> pd.DataFrame:
    """Tn and Tx per sensor and climatological day (Météo-France windows, in UTC).

    Tn of D: minimum over [18:00 UTC D−1, 18:00 UTC D); Tx of D: maximum over [06:00 UTC D,
    06:00 UTC D+1); each from usable hours, and only when 80 % of the window's 24 hours are
    present. A Tx window holding a RADIATION hour has no Tx: the maximum is exactly what sun on
    the sensor corrupts. Index (sensor, day), columns tn, tx.
    """
    if hourly.empty:
        return pd.DataFrame({"tn": pd.Series(dtype="float64"), "tx": pd.Series(dtype="float64")},
                            index=pd.MultiIndex.from_arrays([[], []], names=["sensor", "day"]))
    utc = hourly["time"].dt.tz_convert("UTC").dt.tz_localize(None)
    ok = _hour_ok(hourly)
    present = _hour_present(hourly)
    sun = (hourly["qc"].astype("int64") & int(QcFlag.RADIATION)) != 0
    out = {}
    for name, col, shift, how in (("tn", "t_min", 6, "min"), ("tx", "t_max", -6, "max")):
        key = [hourly["sensor"], (utc + pd.Timedelta(hours=shift)).dt.date.rename("day")]
        value = hourly[col].where(ok).groupby(key, sort=True).agg(how)
        enough = present.groupby(key, sort=True).sum() >= WINDOW_COVERAGE * 24
        value = value.where(enough)
        if name == "tx":
            value = value.where(~sun.groupby(key, sort=True).any())
        out[name] = value
    frame = pd.DataFrame(out)
    frame.index = frame.index.set_names(["sensor", "day"])
    return frame


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
        "t_mean": g["t_mean"].mean(),
        "rh_mean": g["rh_mean"].mean(),
        "heat_index_max": g["heat_index"].max(),
        "humidex_max": g["humidex"].max(),
        "uhi_mean": g["uhi"].mean(),
        "hours_ge_30": (v["t_mean"] >= HOT_HOUR_C).groupby(keys, sort=True).sum().astype("int64"),
        "present_hours": _hour_present(h).groupby(keys, sort=True).sum(),
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
    ext = window_extremes(hourly)
    at = pd.MultiIndex.from_arrays([out["sensor"], out["day"].dt.date])
    out["tn"] = ext["tn"].reindex(at).to_numpy()
    out["tx"] = ext["tx"].reindex(at).to_numpy()
    # Spatial flags remove values, never presence (docs/science/qc.md).
    out["coverage"] = out["present_hours"] / _day_hours(out["day"], tz)
    out["tropical_night"] = (out["tn"] >= TROPICAL_NIGHT_C).astype("boolean").mask(out["tn"].isna())

    short = out["coverage"] < town.qc.availability_min
    out["qc"] = (out["qc"] | np.where(short, int(QcFlag.AVAILABILITY), 0)).astype("int64")
    out["town"] = town.id
    out["time"] = out["day"].dt.tz_convert("UTC")
    out = _keep_days(out, days, tz)
    return out[DAILY_COLUMNS].sort_values(["sensor", "time"], ignore_index=True)


def daily_usable(daily: pd.DataFrame) -> pd.Series:
    """Sensor-days with enough hours from a placed sensor that no day-wide fault disqualifies."""
    return (daily["qc"].astype("int64") & int(DAILY_BLOCKING)) == 0


@dataclass(frozen=True, slots=True)
class _Source:
    label: str
    tn: pd.Series  # by climatological day (date)
    tx: pd.Series
    why_missing: str  # what the reason says when this source has nothing at all


def _sensor_source(hourly: pd.DataFrame, town: TownContext) -> _Source:
    refs = sorted(town.references)
    if not refs:
        return _Source(SENSORS, pd.Series(dtype="float64"), pd.Series(dtype="float64"),
                       "no rural reference sensor configured")
    ext = window_extremes(hourly[hourly["sensor"].isin(refs)])
    tn = ext["tn"].groupby(level="day").median()
    tx = ext["tx"].groupby(level="day").median()
    return _Source(f"{SENSORS}:{','.join(refs)}", tn, tx, f"no usable hours from {', '.join(refs)}")


def station_extremes(station: pd.DataFrame) -> pd.DataFrame:
    """Tn and Tx per climatological day from a station's hourly rows (docs/science/canicule.md).

    A row stamped HH (UTC) covers the hour ending at HH: its TN/TX are the extremes of
    (HH−1, HH]. Tn of D takes the rows stamped 19:00 UTC D−1 … 18:00 UTC D, Tx of D those stamped
    07:00 UTC D … 06:00 UTC D+1; each needs 80 % of its 24 rows. Where TN (TX) is missing the
    instantaneous T stands in for the row.
    """
    if station is None or station.empty:
        return pd.DataFrame({"tn": pd.Series(dtype="float64"), "tx": pd.Series(dtype="float64")})
    s = station.drop_duplicates("time").set_index("time").sort_index()
    utc = s.index.tz_convert("UTC").tz_localize(None)
    out = {}
    for name, col, shift, how in (("tn", "tn", 5, "min"), ("tx", "tx", -7, "max")):
        row = s[col].where(s[col].notna(), s["t"])
        day = pd.Index((utc + pd.Timedelta(hours=shift)).date, name="day")
        grouped = pd.Series(row.to_numpy(), index=day).groupby(level="day")
        value = grouped.agg(how)
        out[name] = value.where(grouped.count() >= WINDOW_COVERAGE * 24)
    return pd.DataFrame(out)


def _station_source(station: pd.DataFrame | None, town: TownContext) -> _Source:
    label = f"{STATION}:{town.station}"
    if not town.station:
        return _Source(STATION, pd.Series(dtype="float64"), pd.Series(dtype="float64"),
                       "no reference station configured")
    ext = station_extremes(station) if station is not None else pd.DataFrame()
    if ext.empty:
        return _Source(label, pd.Series(dtype="float64"), pd.Series(dtype="float64"),
                       f"no data imported for station {town.station}")
    return _Source(label, ext["tn"], ext["tx"], f"no data for station {town.station}")


def _pick(sources: list[_Source], window: list[date]) -> tuple[_Source | None, list[str]]:
    """The first source with Tn and Tx on every day of ``window``, and why the others failed."""
    reasons = []
    for src in sources:
        if src.tn.dropna().empty and src.tx.dropna().empty:
            reasons.append(f"{src.label}: {src.why_missing}")
            continue
        missing = [(var, d) for d in window for var, s in (("Tn", src.tn), ("Tx", src.tx))
                   if pd.isna(s.get(d, np.nan))]
        if not missing:
            return src, reasons
        var, d = missing[0]
        reasons.append(f"{src.label}: no {var} for {d.isoformat()} (less than 80 % of its window)")
    return None, reasons


def town_daily_aggregates(
    hourly: pd.DataFrame, daily: pd.DataFrame, town: TownContext, days: Collection[date] | None = None,
    *, station: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``town_daily`` rows per local day: IBM with its source, canicule, town UHI, hottest sensor."""
    _single_town(hourly, town)
    tz = town.timezone
    if daily.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in TOWN_DAILY_COLUMNS})
    d = daily.copy()
    d["date"] = d["time"].dt.tz_convert(tz).dt.date
    good = daily_usable(d)
    urban = town.is_urban(d["sensor"])

    by_day = pd.DataFrame(index=pd.Index(sorted(d["date"].unique()), name="date"))
    counted = d["sensor"].map(lambda s: town.weights.get(s, 1.0) > 0)
    own = ~d["sensor"].isin(list(town.citizens))
    by_day["sensors_ok"] = (good & counted).groupby(d["date"]).sum().astype("int64")
    by_day["sensors_ok_town"] = (good & own).groupby(d["date"]).sum().astype("int64")
    # Tropical nights of every sensor-day (QC-flagged days included, as daily.tropical_night publishes them) among
    # the sensors the town's values count, and among its own network: what /v1/indices shows for each day.
    tropical = d["tropical_night"].fillna(False).astype(bool)
    by_day["tropical_nights"] = (tropical & counted).groupby(d["date"]).sum().astype("int64")
    by_day["tropical_nights_town"] = (tropical & own).groupby(d["date"]).sum().astype("int64")
    # The town's UHI: every counted sensor, a confirmed citizen one with its weight (docs/citizens.md)...
    sel = good & urban & d["uhi_mean"].notna()
    w = town.weight(d["sensor"])[sel]
    wsum = w.groupby(d["date"][sel]).sum()
    by_day["uhi_mean"] = (d["uhi_mean"][sel] * w).groupby(d["date"][sel]).sum() / wsum.where(wsum > 0)
    # ...and the town network's own, without any citizen data (network=town in the api).
    sel_own = sel & own
    by_day["uhi_mean_town"] = d["uhi_mean"][sel_own].groupby(d["date"][sel_own]).mean()
    h = hourly[_hour_ok(hourly) & town.is_urban(hourly["sensor"])]
    h_date = h["time"].dt.tz_convert(tz).dt.date
    by_day["uhi_max"] = h["uhi"].groupby(h_date).max()
    h_own = h[~h["sensor"].isin(list(town.citizens))]
    by_day["uhi_max_town"] = h_own["uhi"].groupby(h_own["time"].dt.tz_convert(tz).dt.date).max()
    ref = reference_per_hour(hourly, town, station)
    if len(ref):
        ref_date = ref.index.tz_convert(tz).date
        used = ref.groupby(ref_date)["source"].agg(lambda s: "+".join(sorted(set(s))))
        by_day["uhi_source"] = used.reindex(by_day.index)
    else:
        by_day["uhi_source"] = None
    # Highest daily mean among usable sensor-days; sorting by sensor first breaks ties by id.
    ranked = d[good & counted & d["t_mean"].notna()].sort_values(["date", "t_mean", "sensor"],
                                                                 ascending=[True, False, True])
    by_day["hottest_sensor"] = ranked.groupby("date")["sensor"].first()
    ranked_own = ranked[~ranked["sensor"].isin(list(town.citizens))]
    by_day["hottest_sensor_town"] = ranked_own.groupby("date")["sensor"].first()

    makers = {STATION: lambda: _station_source(station, town), SENSORS: lambda: _sensor_source(hourly, town)}
    sources = [makers[s]() for s in town.ibm_sources if s in makers]
    rows = {}
    for day in by_day.index:
        trailing = [day - timedelta(days=k) for k in (2, 1, 0)]
        forward = [day + timedelta(days=k) for k in (0, 1, 2)]
        row: dict[str, object] = {}
        src, reasons = _pick(sources, trailing)
        if src is not None:
            row["ibmn"] = float(np.mean([src.tn[x] for x in trailing]))
            row["ibmx"] = float(np.mean([src.tx[x] for x in trailing]))
            row["ibm_source"] = src.label
        else:
            row["ibm_reason"] = "; ".join(reasons) if reasons else "no reference source configured"
        today, _ = _pick(sources, [day])
        if today is not None:
            row["tn_ref"], row["tx_ref"] = float(today.tn[day]), float(today.tx[day])
        fwd, _ = _pick(sources, forward)
        if fwd is not None:
            row["ibmn_forward"] = float(np.mean([fwd.tn[x] for x in forward]))
            row["ibmx_forward"] = float(np.mean([fwd.tx[x] for x in forward]))
        rows[day] = row
    ibm = pd.DataFrame.from_dict(rows, orient="index").reindex(by_day.index)
    for col in ("ibmn", "ibmx", "tn_ref", "tx_ref", "ibmn_forward", "ibmx_forward"):
        by_day[col] = ibm[col].astype("float64") if col in ibm.columns else np.nan
    for col in ("ibm_source", "ibm_reason"):
        by_day[col] = ibm[col] if col in ibm.columns else None
    for flag, n, x in (("canicule", "ibmn", "ibmx"), ("canicule_forward", "ibmn_forward", "ibmx_forward")):
        value = pd.Series(pd.NA, index=by_day.index, dtype="boolean")
        if town.thresholds is not None:
            known = by_day[n].notna() & by_day[x].notna()
            hit = (by_day[n] >= town.thresholds.ibmn) & (by_day[x] >= town.thresholds.ibmx)
            value = hit.astype("boolean").where(known, pd.NA)
        by_day[flag] = value

    out = by_day.reset_index()
    midnight = pd.to_datetime(out["date"]).dt.tz_localize(tz)
    out["time"] = midnight.dt.tz_convert("UTC")
    out["town"] = town.id
    if days is not None:
        out = out[out["date"].isin(set(days))]
    return out[TOWN_DAILY_COLUMNS].sort_values("time", ignore_index=True)
