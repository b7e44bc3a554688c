"""Reads of the analytics aggregates (:mod:`heatwatch.core.measurements`) for maps, rankings,
intervention effects and the seasonal report.

Conventions of the stored schema this relies on: a ``daily`` point of local day D is stamped
at local midnight of D (in UTC), and its ``uhi_night_max`` is the night that *ends* on the
morning of D (18:00 D−1 to 06:00 D local). Quality flags are the kernel's :class:`QcFlag`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from heatwatch.core.influx import InfluxClient, ident
from heatwatch.core.measurements import DAILY, DAILY_BLOCKING, HOURLY, MEASUREMENTS, TOWN_DAILY, VALUE_FLAGS

from ..store import MAX_SERIES, ROW_CAP, newest_point_ms


def usable_hour(qc: Any) -> bool:
    """An hour's value is usable unless a value flag is set (day-level flags such as AVAILABILITY, and
    any flag quality control adds as information only, do not make it unusable)."""
    return qc is None or (int(qc) & int(VALUE_FLAGS)) == 0

DAILY_FIELDS = ("tn", "tx", "t_mean", "uhi_mean", "uhi_night_max", "hours_ge_30", "tropical_night", "coverage", "qc")
TOWN_FIELDS = TOWN_DAILY.field_names


def ns(ms: int) -> int:
    return ms * 1_000_000


def local_midnight_ms(day: date, tz: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


def local_day(ms: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, tz).date()


def day_range_ms(first: date, last: date, tz: ZoneInfo) -> tuple[int, int]:
    """[local midnight of ``first``, local midnight after ``last``): the daily points of those days."""
    return local_midnight_ms(first, tz), local_midnight_ms(last + timedelta(days=1), tz)


@dataclass(slots=True)
class DailyRow:
    sensor: str
    day: date
    values: dict[str, Any]

    def get(self, name: str) -> Any:
        return self.values.get(name)


def usable_daily(qc: Any) -> bool:
    return qc is None or (int(qc) & int(DAILY_BLOCKING)) == 0


async def daily_rows(client: InfluxClient, town: str, first: date, last: date, tz: ZoneInfo,
                     fields: Sequence[str] = DAILY_FIELDS, sensors: Iterable[str] | None = None,
                     keep_flagged: bool = False) -> list[DailyRow]:
    """Per-sensor daily aggregates of local days ``first``..``last`` (inclusive), QC-blocked
    sensor-days left out unless ``keep_flagged``."""
    start, end = day_range_ms(first, last, tz)
    wanted = list(dict.fromkeys([*fields, "qc"]))
    cols = ", ".join(ident(f) for f in wanted)
    q = (f"SELECT {cols} FROM {client.table(DAILY)} WHERE {ident('town')} = $town "
         f"AND time >= $start AND time < $end GROUP BY {ident('sensor')} LIMIT {ROW_CAP} SLIMIT {MAX_SERIES}")
    records = await client.query_records(q, {"town": town, "start": ns(start), "end": ns(end)})
    only = set(sensors) if sensors is not None else None
    out = []
    for r in records:
        sensor = r.get("sensor") or ""
        if only is not None and sensor not in only:
            continue
        if not keep_flagged and not usable_daily(r.get("qc")):
            continue
        out.append(DailyRow(sensor, local_day(int(r["time"]), tz), {f: r.get(f) for f in wanted}))
    out.sort(key=lambda row: (row.day, row.sensor))
    return out


async def newest_daily_day(client: InfluxClient, town: str, tz: ZoneInfo) -> date | None:
    ms = await newest_point_ms(client, DAILY, "uhi_mean", town)
    return local_day(ms, tz) if ms is not None else None


async def hourly_uhi(client: InfluxClient, town: str, hour_ms: int) -> dict[str, float]:
    """Hourly UHI per sensor for the UTC hour starting at ``hour_ms``, flagged hours left out."""
    q = (f"SELECT {ident('uhi')}, {ident('qc')} FROM {client.table(HOURLY)} "
         f"WHERE {ident('town')} = $town AND time >= $start AND time < $end GROUP BY {ident('sensor')} "
         f"LIMIT 1 SLIMIT {MAX_SERIES}")
    records = await client.query_records(q, {"town": town, "start": ns(hour_ms), "end": ns(hour_ms + 3600_000)})
    out: dict[str, float] = {}
    for r in records:
        if r.get("uhi") is not None and usable_hour(r.get("qc")):
            out[r["sensor"]] = float(r["uhi"])
    return out


async def newest_hour(client: InfluxClient, town: str) -> int | None:
    return await newest_point_ms(client, HOURLY, "uhi", town)


async def hours_at_or_above(client: InfluxClient, town: str, first: date, last: date, tz: ZoneInfo,
                            thresholds: Sequence[float]) -> dict[str, dict[date, dict[float, int]]]:
    """Per sensor and local day, the number of usable hours whose mean temperature reached each
    threshold (days without such an hour are absent).

    Per day, so that rankings count hours over the days they compare sites on. Only the hours at
    or above the lowest threshold are fetched (hot hours are few: a few hundred per sensor and
    summer); an hourly point is stamped at the start of its UTC hour, which lies in one local day.
    Usable hours carry no value flag (:func:`usable_hour`).
    """
    out: dict[str, dict[date, dict[float, int]]] = defaultdict(dict)
    if not thresholds:
        return {}
    start, end = day_range_ms(first, last, tz)
    q = (f"SELECT {ident('t_mean')}, {ident('qc')} FROM {client.table(HOURLY)} WHERE {ident('town')} = $town "
         f"AND time >= $start AND time < $end AND {ident('t_mean')} >= $thr GROUP BY {ident('sensor')} "
         f"LIMIT {ROW_CAP} SLIMIT {MAX_SERIES}")
    params = {"town": town, "start": ns(start), "end": ns(end), "thr": float(min(thresholds))}
    for r in await client.query_records(q, params):
        t = r.get("t_mean")
        if t is None or not usable_hour(r.get("qc")):
            continue
        day = out[r["sensor"]].setdefault(local_day(int(r["time"]), tz), {})
        for thr in thresholds:
            if float(t) >= thr:
                day[thr] = day.get(thr, 0) + 1
    return dict(out)


@dataclass(slots=True)
class Weather:
    """Daily reference Tn/Tx for the intervention effect, from one source only."""

    days: dict[date, dict[str, float]]
    #: what the values are, for the answer (None: no source had any)
    source: str | None
    #: why there is none, when there is none
    missing: str | None = None


async def reference_weather(client: InfluxClient, town: str, references: Iterable[str], first: date, last: date,
                            tz: ZoneInfo, min_share: float = 0.8) -> Weather:
    """The weather covariates of the intervention effect (docs/science/interventions.md): daily Tn and Tx
    of the town's reference, from a single source over the whole window — mixing sources would put their
    offset (a station 30 km away against a sensor in the fields) into the comparison.

    First choice: the town's reference as analytics publishes it (``town_daily`` ``tn_ref``/``tx_ref``, from
    the configured source order, the source of each day in ``ibm_source``), restricted to its most frequent
    source, when that covers ``min_share`` of the days having any reference value. Else: the rural
    reference sensors' own daily rows (the median when several have a usable day).
    """
    refs = list(dict.fromkeys(references))
    start, end = day_range_ms(first, last, tz)
    q = (f"SELECT {ident('tn_ref')}, {ident('tx_ref')}, {ident('ibm_source')} FROM {client.table(TOWN_DAILY)} "
         f"WHERE {ident('town')} = $town AND time >= $start AND time < $end LIMIT {ROW_CAP}")
    town_rows = await client.query_records(q, {"town": town, "start": ns(start), "end": ns(end)})
    by_source: dict[str, dict[date, dict[str, float]]] = defaultdict(dict)
    for r in town_rows:
        vals = {f: float(r[f + "_ref"]) for f in ("tn", "tx") if r.get(f + "_ref") is not None}
        if vals:
            by_source[str(r.get("ibm_source") or "reference")][local_day(int(r["time"]), tz)] = vals
    sensors: dict[date, dict[str, float]] = {}
    if refs:
        rows = await daily_rows(client, town, first, last, tz, fields=("tn", "tx"), sensors=refs)
        acc: dict[date, dict[str, list[float]]] = defaultdict(lambda: {"tn": [], "tx": []})
        for row in rows:
            for f in ("tn", "tx"):
                if row.get(f) is not None:
                    acc[row.day][f].append(float(row.get(f)))
        sensors = {d: {f: float(median(v)) for f, v in fs.items() if v} for d, fs in acc.items()}
    if by_source:
        name, best = max(by_source.items(), key=lambda kv: (len(kv[1]), kv[0]))
        known = len(set().union(*(v.keys() for v in by_source.values())))
        if len(best) >= min_share * known and len(best) >= len(sensors):
            return Weather(best, f"the town's reference Tn/Tx as published in town_daily (tn_ref, tx_ref), source "
                                 f"{name} only, {len(best)} days")
    if sensors:
        return Weather(sensors, f"rural reference sensor(s) {', '.join(refs)}: daily Tn and Tx (median when "
                                f"several), {len(sensors)} days")
    return Weather({}, None, "no reference Tn/Tx for the window (neither the town's published reference nor a "
                             "rural reference sensor)" if refs or by_source else "the town has no reference")


async def town_daily_rows(client: InfluxClient, town: str, first: date, last: date, tz: ZoneInfo
                          ) -> list[dict[str, Any]]:
    start, end = day_range_ms(first, last, tz)
    cols = ", ".join(ident(f) for f in TOWN_FIELDS)
    q = (f"SELECT {cols} FROM {client.table(TOWN_DAILY)} WHERE {ident('town')} = $town "
         f"AND time >= $start AND time < $end LIMIT {ROW_CAP}")
    records = await client.query_records(q, {"town": town, "start": ns(start), "end": ns(end)})
    rows = [{"date": local_day(int(r["time"]), tz), **{f: r.get(f) for f in TOWN_FIELDS}} for r in records]
    rows.sort(key=lambda r: r["date"])
    return rows


async def last_update_ms(client: InfluxClient, town: str, measurement: str = "daily") -> int | None:
    m = MEASUREMENTS[measurement]
    field = "uhi_mean" if "uhi_mean" in m.field_names else "uhi"
    return await newest_point_ms(client, m, field, town)
