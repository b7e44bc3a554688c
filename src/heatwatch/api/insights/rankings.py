"""Seasonal rankings of sites, season summaries and canicule episodes, from daily aggregates.

Season: the Météo-France heat-wave vigilance season, 1 June – 15 September (DESIGN.md §5), in
local days. A site's statistics use only its QC-usable sensor-days; ``days`` says how many, and
a site seen on less than ``MIN_SHARE`` of the season's days is listed but not ranked (a sensor
installed in August would otherwise be compared on its hottest weeks only).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from statistics import fmean
from typing import Any

from .queries import DailyRow

SEASON_START = (6, 1)
SEASON_END = (9, 15)
MIN_SHARE = 0.5
DEFAULT_THRESHOLDS = (30.0, 35.0)

RANKING_COLUMNS = [
    "rank", "sensor", "name", "site_class", "latitude", "longitude", "days", "coverage",
    "uhi_night_mean", "uhi_night_max", "uhi_day_mean", "tropical_nights", "tn_mean", "tx_max",
]


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
    v = [float(x) for x in values if x is not None]
    return round(max(v), 3) if v else None


def threshold_column(thr: float) -> str:
    return f"hours_ge_{thr:g}".replace(".", "_").replace("-", "m")


def rank_sites(rows: Sequence[DailyRow], sensors: Mapping[str, Any], n_days: int,
               hours: Mapping[str, Mapping[float, int]] | None = None,
               thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> list[dict[str, Any]]:
    """One row per site, hottest first by mean nocturnal UHI (the heat-island signature: the
    urban fabric releasing the day's heat at night). Ties and unranked sites sort by sensor id."""
    by_sensor: dict[str, list[DailyRow]] = defaultdict(list)
    for r in rows:
        by_sensor[r.sensor].append(r)
    hours = hours or {}
    out = []
    for sensor in sorted(set(by_sensor) | set(hours)):
        rs = by_sensor.get(sensor, [])
        meta = sensors.get(sensor)
        nights = [r.get("uhi_night_max") for r in rs]
        row: dict[str, Any] = {
            "rank": None,
            "sensor": sensor,
            "name": getattr(meta, "name", None),
            "site_class": str(meta.site_class) if meta is not None else None,
            "latitude": getattr(meta, "latitude", None),
            "longitude": getattr(meta, "longitude", None),
            "days": len(rs),
            "coverage": round(len(rs) / n_days, 3) if n_days else None,
            "uhi_night_mean": _mean(nights),
            "uhi_night_max": _max(nights),
            "uhi_day_mean": _mean(r.get("uhi_mean") for r in rs),
            "tropical_nights": sum(1 for r in rs if r.get("tropical_night") is True),
            "tn_mean": _mean(r.get("tn") for r in rs),
            "tx_max": _max(r.get("tx") for r in rs),
        }
        for thr in thresholds:
            row[threshold_column(thr)] = int(hours.get(sensor, {}).get(thr, 0))
        out.append(row)
    rankable = [r for r in out if r["uhi_night_mean"] is not None and (r["coverage"] or 0) >= MIN_SHARE]
    rankable.sort(key=lambda r: (-r["uhi_night_mean"], r["sensor"]))
    for i, r in enumerate(rankable, 1):
        r["rank"] = i
    rest = sorted((r for r in out if r["rank"] is None), key=lambda r: r["sensor"])
    return rankable + rest


def ranking_columns(thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> list[str]:
    return [*RANKING_COLUMNS, *(threshold_column(t) for t in thresholds)]


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


def season_summary(town_rows: Sequence[Mapping[str, Any]], rows: Sequence[DailyRow]) -> dict[str, Any]:
    """The summer in a few figures, for the report and the rankings' metadata."""
    hottest = max((r for r in town_rows if r.get("uhi_max") is not None), key=lambda r: r["uhi_max"], default=None)
    tropical = sum(1 for r in rows if r.get("tropical_night") is True)
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


def period_means(rows: Sequence[DailyRow], field: str, days: int, min_share: float = MIN_SHARE
                 ) -> dict[str, float]:
    """Per sensor, the mean of ``field`` over the period, for sensors with a value on at least
    ``min_share`` of its ``days`` (a sensor present only on the hottest nights would look hotter)."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        v = r.get(field)
        if v is not None:
            acc[r.sensor].append(float(v))
    need = max(1, math.ceil(min_share * days))
    return {s: fmean(v) for s, v in acc.items() if len(v) >= need}
