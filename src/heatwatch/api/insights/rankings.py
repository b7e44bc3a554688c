"""Seasonal rankings of sites, season summaries and canicule episodes, from daily aggregates.

Science and choices: ``docs/science/rankings-maps.md``. In short:

* Season: the Météo-France heat-wave vigilance season, 1 June – 15 September, in local days.
* Sites are compared **on common days**: the days on which every ranked site has a usable
  nightly UHI (QC-blocked sensor-days are left out). A mean over a site's own days would compare
  a sensor seen only in August with others seen all summer, or a sensor that missed the heat
  wave with those that measured it. Sites join the ranking greedily, the one that costs the
  fewest common days first, as long as the common days stay at least ``MIN_COMMON_SHARE`` of the
  days with data; a site that would shrink them further, or that was measured on less than
  ``MIN_SHARE`` of the days, is listed unranked with its own-days figures, ``basis = "own_days"``
  and the reason in ``note``.
* Column names say what they are: ``<daily field>_<statistic over the days>`` —
  ``uhi_night_max_mean`` is the mean of the nightly maxima of UHI, not a "night mean".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import fmean
from typing import Any

from heatwatch.core.model import Sensor
from heatwatch.core.public import public_fields
from heatwatch.core.thresholds import VIGILANCE_SEASON_FIRST, VIGILANCE_SEASON_LAST
from heatwatch.core.trust import counts_in_town

from .queries import DailyRow

SEASON_START = VIGILANCE_SEASON_FIRST
SEASON_END = VIGILANCE_SEASON_LAST
#: a site needs a usable nightly UHI on this share of the days with data to be ranked at all
MIN_SHARE = 0.5
#: the common days of the ranked sites never fall below this share of the days with data
MIN_COMMON_SHARE = 0.5
DEFAULT_THRESHOLDS = (30.0, 35.0)
#: the daily field the ranking (and the night maps) compare
RANK_FIELD = "uhi_night_max"
RANKED_BY = "uhi_night_max_mean"

BASIS_COMMON = "common_days"
BASIS_OWN = "own_days"
BASIS_REFERENCE = "reference"

RANKING_COLUMNS = [
    "rank", "sensor", "name", "site_class", "lcz", "latitude", "longitude", "position_blurred", "network", "trust",
    "basis", "days_measured", "coverage",
    "days_compared", "uhi_night_max_mean", "uhi_night_max_max", "uhi_mean_mean", "tropical_nights", "tn_mean",
    "tx_max",
]
#: what each column is, for the API description, the report and the docs
COLUMN_DOC = {
    "rank": "1 = highest uhi_night_max_mean among the sites compared on the common days; null when not ranked",
    "basis": "days the row's statistics are computed on: common_days (ranked sites), own_days (a site not "
             "comparable on the common days: see note), reference (a rural reference: UHI is measured against it)",
    "days_measured": "days of the season with a usable nightly UHI for this site",
    "coverage": "days_measured / days with data in the town (any site)",
    "days_compared": "days the statistics of this row are computed on",
    "uhi_night_max_mean": "mean over days_compared of the nightly maximum UHI (°C; night 18:00–06:00 local)",
    "uhi_night_max_max": "highest nightly maximum UHI over days_compared (°C)",
    "uhi_mean_mean": "mean over days_compared of the daily (24 h) mean UHI (°C)",
    "tropical_nights": "days_compared with Tn ≥ 20 °C",
    "tn_mean": "mean daily minimum temperature over days_compared (°C)",
    "tx_max": "highest daily maximum temperature over days_compared (°C)",
    "hours_ge_T": "hours of days_compared whose mean temperature reached T °C (QC-passed hourly aggregates)",
    "note": "why a site is not ranked",
    "position_blurred": "true for a resident's or crowd site: latitude/longitude are the centre of its privacy-grid "
                        "cell, name a neutral label (docs/privacy.md)",
    "network": "town (the town's own network) or citizen (residents' and crowd sensors)",
    "trust": "official (town network), provisional or confirmed (citizen sensors, docs/citizens.md)",
}


def season_window(year: int) -> tuple[date, date]:
    return date(year, *SEASON_START), date(year, *SEASON_END)


def season_days(year: int, until: date | None = None) -> list[date]:
    """The season's days, cut at ``until`` (inclusive) while the season is still running."""
    first, last = season_window(year)
    if until is not None:
        last = min(last, until)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _mean(values: Iterable[Any]) -> float | None:
    v = [float(x) for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return round(fmean(v), 3) if v else None


def _max(values: Iterable[Any]) -> float | None:
    v = [float(x) for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return round(max(v), 3) if v else None


def threshold_column(thr: float) -> str:
    return f"hours_ge_{thr:g}".replace(".", "_").replace("-", "m")


@dataclass(slots=True)
class CommonDays:
    """Which sites are compared, and on which days (docs/science/rankings-maps.md, "Common days")."""

    days_with_data: list[date]
    common: list[date]
    #: compared sites, in the order they joined (best covered first)
    sites: list[str]
    #: site -> why it is not compared on the common days
    left_out: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"days_with_data": len(self.days_with_data), "common_days": len(self.common),
                "first": self.common[0].isoformat() if self.common else None,
                "last": self.common[-1].isoformat() if self.common else None,
                "sites_compared": len(self.sites), "sites_left_out": len(self.left_out),
                "rule": (f"sites compared on the days all of them were measured; a site needs data on "
                         f"{MIN_SHARE:.0%} of the days with data and may not cut the common days below "
                         f"{MIN_COMMON_SHARE:.0%} of them")}


def common_days(days_by_site: Mapping[str, Iterable[date]], min_share: float = MIN_SHARE,
                min_common_share: float = MIN_COMMON_SHARE) -> CommonDays:
    """The sites to compare and their common days.

    A site measured on less than ``min_share`` of the days with data is not compared. The others join
    greedily, the cheapest first: at each step the site that keeps the most common days (ties: the
    better covered, then by id, so the answer is deterministic) joins if the days shared by all joined
    sites stay at least ``min_common_share`` of the days with data. Sites measured every day cost
    nothing and come first; then sites missing the same few days share their cost; a site whose gaps
    would cut everyone's sample further is left out.
    """
    sets = {s: set(d) for s, d in days_by_site.items()}
    all_days = sorted(set().union(*sets.values())) if sets else []
    n = len(all_days)
    out = CommonDays(all_days, [], [])
    if not n:
        for s in sorted(sets):
            out.left_out[s] = "no usable value in the period"
        return out
    need = max(1, math.ceil(min_common_share * n))
    common = set(all_days)
    candidates = []
    for s in sorted(sets):
        if len(sets[s]) < min_share * n:
            out.left_out[s] = (f"measured on {len(sets[s])} of the {n} days with data (less than {min_share:.0%}): "
                               "not compared")
        else:
            candidates.append(s)
    while candidates:
        best = min(candidates, key=lambda k: (-len(common & sets[k]), -len(sets[k]), k))
        shared = common & sets[best]
        if len(shared) < need:
            break
        common = shared
        out.sites.append(best)
        candidates.remove(best)
    for s in candidates:
        out.left_out[s] = (f"measured on {len(sets[s])} of the {n} days with data, but only {len(common & sets[s])} "
                           f"of them are days the compared sites share (at least {need} needed): not compared, "
                           "figures over its own days")
    out.common = sorted(common) if out.sites else []
    return out


def _stats(rows: Sequence[DailyRow], hours: Mapping[date, Mapping[float, int]],
           thresholds: Sequence[float]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "days_compared": sum(1 for r in rows if r.get(RANK_FIELD) is not None),
        "uhi_night_max_mean": _mean(r.get(RANK_FIELD) for r in rows),
        "uhi_night_max_max": _max(r.get(RANK_FIELD) for r in rows),
        "uhi_mean_mean": _mean(r.get("uhi_mean") for r in rows),
        "tropical_nights": sum(1 for r in rows if r.get("tropical_night") is True),
        "tn_mean": _mean(r.get("tn") for r in rows),
        "tx_max": _max(r.get("tx") for r in rows),
    }
    days = {r.day for r in rows}
    for thr in thresholds:
        row[threshold_column(thr)] = int(sum(h.get(thr, 0) for d, h in hours.items() if d in days))
    return row


def rank_sites(rows: Sequence[DailyRow], sensors: Mapping[str, Any],
               hours: Mapping[str, Mapping[date, Mapping[float, int]]] | None = None,
               thresholds: Sequence[float] = DEFAULT_THRESHOLDS, references: Iterable[str] = ()
               ) -> tuple[list[dict[str, Any]], CommonDays]:
    """One row per site, hottest first by ``uhi_night_max_mean`` over the common days (the heat-island
    signature: the urban fabric releasing the day's heat at night); then the sites not compared,
    by id. ``hours``: per site, per local day, the hours at or above each threshold."""
    by_sensor: dict[str, list[DailyRow]] = defaultdict(list)
    for r in rows:
        by_sensor[r.sensor].append(r)
    hours = hours or {}
    refs = set(references) | {s for s, m in sensors.items() if getattr(m, "is_reference", False)}
    # Registered, active sensors without a single usable day are listed too: a site that vanished from
    # the ranking (no data, or every day blocked by quality control) must be seen to be missing. Not in a
    # season without any data: there, nothing is ranked and the empty answer says so.
    silent = {s for s, m in sensors.items() if not getattr(m, "retired", False) and s not in refs} if rows else set()
    sites = sorted(set(by_sensor) | set(hours) | silent)
    nights = {s: {r.day for r in by_sensor.get(s, []) if r.get(RANK_FIELD) is not None}
              for s in sites if s not in refs}
    cd = common_days(nights)
    shared = set(cd.common)
    n_days = len(cd.days_with_data)
    out = []
    for sensor in sites:
        meta = sensors.get(sensor)
        own = by_sensor.get(sensor, [])
        if sensor in refs:
            basis, used, note = BASIS_REFERENCE, own, "rural reference: UHI is measured against it"
        elif sensor in cd.sites:
            basis, used, note = BASIS_COMMON, [r for r in own if r.day in shared], None
        else:
            basis, used, note = BASIS_OWN, own, cd.left_out.get(sensor)
            if not nights.get(sensor):
                note = ("no usable nightly UHI this season: no data, or every day left out by quality control "
                        "(see /v1/daily with its qc flags)")
        measured = len(nights.get(sensor, ())) if sensor not in refs else sum(
            1 for r in own if r.get(RANK_FIELD) is not None)
        row: dict[str, Any] = {
            "rank": None,
            "sensor": sensor,
            # Name and position as the public may see them (a private site blurred: core/privacy.py).
            **public_fields(meta),
            "site_class": str(meta.site_class) if meta is not None else None,
            "lcz": getattr(meta, "lcz", None),
            "basis": basis,
            "days_measured": measured,
            "coverage": round(measured / n_days, 3) if n_days else None,
            **_stats(used, hours.get(sensor, {}), thresholds),
            "note": note,
        }
        out.append(row)
    ranked = [r for r in out if r["basis"] == BASIS_COMMON and r[RANKED_BY] is not None]
    ranked.sort(key=lambda r: (-r[RANKED_BY], r["sensor"]))
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    rest = sorted((r for r in out if r["rank"] is None), key=lambda r: r["sensor"])
    return ranked + rest, cd


def ranking_columns(thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> list[str]:
    return [*RANKING_COLUMNS, *(threshold_column(t) for t in thresholds), "note"]


def canicule_episodes(town_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs of consecutive canicule days (Météo-France: IBMn and IBMx at or above the thresholds)."""
    out: list[dict[str, Any]] = []
    prev: date | None = None
    for r in town_rows:
        day = r["date"]
        if r.get("canicule") is not True:
            prev = None
            continue
        if out and prev is not None and day - prev == timedelta(days=1):
            ep = out[-1]
            ep["end"], ep["days"] = day, ep["days"] + 1
            ep["ibmn_max"] = _max([ep["ibmn_max"], r.get("ibmn")])
            ep["ibmx_max"] = _max([ep["ibmx_max"], r.get("ibmx")])
            ep["uhi_max"] = _max([ep["uhi_max"], r.get("uhi_max")])
        else:
            out.append({"start": day, "end": day, "days": 1, "ibmn_max": r.get("ibmn"), "ibmx_max": r.get("ibmx"),
                        "uhi_max": r.get("uhi_max")})
        prev = day
    return out


def season_summary(town_rows: Sequence[Mapping[str, Any]], rows: Sequence[DailyRow],
                   sensors: Mapping[str, Sensor] | None = None) -> dict[str, Any]:
    """The summer in a few figures, for the report and the rankings' metadata. ``sensors``: the registry's, by id;
    the tropical nights are those of the sensors the town's values count (a provisional citizen sensor's are not
    the town's, as in /v1/indices)."""
    hottest = max((r for r in town_rows if r.get("uhi_max") is not None), key=lambda r: r["uhi_max"], default=None)
    known = sensors or {}
    tropical = sum(1 for r in rows if r.get("tropical_night") is True and counts_in_town(known.get(r.sensor)))
    return {
        "days_with_indices": len(town_rows),
        "canicule_days": sum(1 for r in town_rows if r.get("canicule") is True),
        "ibmn_max": _max(r.get("ibmn") for r in town_rows),
        "ibmx_max": _max(r.get("ibmx") for r in town_rows),
        "town_uhi_mean": _mean(r.get("uhi_mean") for r in town_rows),
        "town_uhi_max": _max(r.get("uhi_max") for r in town_rows),
        "town_uhi_max_date": hottest["date"] if hottest else None,
        "sensor_tropical_nights": tropical,
        "sensors_reporting": len({r.sensor for r in rows}),
    }


def common_day_means(rows: Sequence[DailyRow], field: str, sites: Iterable[str] | None = None
                     ) -> tuple[dict[str, float], CommonDays]:
    """Per site, the mean of ``field`` over the days common to the compared sites (the rule of
    :func:`common_days`); sites not comparable get no value and are in ``left_out`` with the reason.
    ``sites``: the sites to consider (e.g. the mapped ones), default every site in ``rows``."""
    only = set(sites) if sites is not None else None
    values: dict[str, dict[date, float]] = defaultdict(dict)
    for r in rows:
        v = r.get(field)
        if v is not None and (only is None or r.sensor in only):
            values[r.sensor][r.day] = float(v)
    cd = common_days({s: v.keys() for s, v in values.items()})
    shared = cd.common
    return {s: fmean(values[s][d] for d in shared) for s in cd.sites}, cd
