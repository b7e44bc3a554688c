"""What the analytics jobs read from InfluxDB, as DataFrames.

Raw readings are read whole, not pre-aggregated: the point checks of QC (step, spike,
persistence) need each reading and its neighbours, and the hourly min/max must come from clean
readings only, so a ``GROUP BY time(1h)`` in the database would aggregate values QC has not seen
yet. Aggregation is pushed down where nothing downstream needs the readings themselves: the live
alert snapshot (median of the last minutes, last reading, last battery voltage per sensor) and
the "where did we stop" look-ups (last stored hour, first reading), which return one row per
sensor instead of thousands.

Every value goes through bind parameters; times are bound as epoch nanoseconds.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from heatwatch.core.influx import InfluxClient, Series
from heatwatch.core.measurements import HOURLY, READING, TOWN_DAILY, Measurement

READING_COLUMNS = ["town", "sensor", "time", "temperature", "humidity"]
EPOCH = pd.Timestamp(0, tz="UTC")


def to_ns(when: datetime | pd.Timestamp) -> int:
    """Epoch nanoseconds, the unit InfluxQL compares ``time`` with; naive values are UTC."""
    ts = pd.Timestamp(when)
    return int((ts if ts.tzinfo else ts.tz_localize("UTC")).value)


def to_ms(times: pd.Series) -> np.ndarray:
    """UTC epoch milliseconds of a tz-aware series, whatever resolution pandas picked."""
    return ((times - EPOCH) // pd.Timedelta(milliseconds=1)).to_numpy(dtype=np.int64)


def series_frame(series: Sequence[Series], columns: Sequence[str], tag: str = "sensor") -> pd.DataFrame:
    """One frame from per-tag series of numeric columns; ``time`` (epoch ms) becomes tz-aware UTC.

    ``np.array(..., dtype=float)`` turns InfluxDB's nulls into NaN in one C loop, which is far
    faster than letting pandas infer object columns row by row.
    """
    parts: list[pd.DataFrame] = []
    for s in series:
        if not s.values:
            continue
        a = np.array(s.values, dtype=np.float64)
        idx = {c: i for i, c in enumerate(s.columns)}
        part = pd.DataFrame({tag: s.tags.get(tag, ""),
                             "time": pd.to_datetime(a[:, idx["time"]].astype(np.int64), unit="ms", utc=True)})
        for c in columns:
            part[c] = a[:, idx[c]] if c in idx else np.nan
        parts.append(part)
    if not parts:
        return pd.DataFrame({tag: pd.Series(dtype=object), "time": pd.Series(dtype="datetime64[ms, UTC]"),
                             **{c: pd.Series(dtype=np.float64) for c in columns}})
    return pd.concat(parts, ignore_index=True)


async def query_csv(client: InfluxClient, q: str, params: Mapping[str, Any]) -> pd.DataFrame:
    """One statement's rows as a frame, through InfluxDB's CSV output (``Accept: application/csv``).

    For bulk reads only: on a 14-day chunk of 100 sensors InfluxDB answers about as fast in CSV
    as in JSON, but ``pandas.read_csv`` parses it ~15 times faster than ``json`` plus building
    the arrays, which made JSON decoding a third of a backfill. Columns: ``name``, ``tags``
    (``k=v`` pairs), ``time`` and the selected fields; an empty body means no rows.
    """
    body = await client.query_csv(q, params)
    if not body:
        return pd.DataFrame()
    return pd.read_csv(io.BytesIO(body), dtype={"name": str, "tags": str})


async def read_readings(client: InfluxClient, town: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Raw readings of one town in [start, end), columns :data:`READING_COLUMNS`."""
    r = READING.col
    q = (f"SELECT {r('temperature')}, {r('humidity')} FROM {client.table(READING)} "
         f"WHERE {r('town')} = $town AND time >= $start AND time < $end GROUP BY {r('sensor')}")
    raw = await query_csv(client, q, {"town": town, "start": to_ns(start), "end": to_ns(end)})
    if raw.empty:
        return pd.DataFrame({"town": pd.Series(dtype=object), "sensor": pd.Series(dtype=object),
                             "time": pd.Series(dtype="datetime64[ms, UTC]"),
                             "temperature": pd.Series(dtype=np.float64), "humidity": pd.Series(dtype=np.float64)})
    # Tags come as "sensor=<id>"; sensor ids cannot hold "," or "=" (README, "MQTT contract"), so no
    # unescaping.
    sensor = raw["tags"].str.removeprefix("sensor=")
    return pd.DataFrame({
        "town": town,
        "sensor": sensor.to_numpy(dtype=object),
        "time": pd.to_datetime(raw["time"].to_numpy(dtype=np.int64), unit="ms", utc=True),
        "temperature": raw["temperature"].to_numpy(dtype=np.float64) if "temperature" in raw else np.nan,
        "humidity": raw["humidity"].to_numpy(dtype=np.float64) if "humidity" in raw else np.nan,
    })


async def last_time(client: InfluxClient, measurement: Measurement, field: str, town: str,
                    since: datetime | None = None, *, first: bool = False) -> pd.Timestamp | None:
    """Time of the newest (or oldest) point of a town in a measurement, or None."""
    fn = "FIRST" if first else "LAST"
    q = (f"SELECT {fn}({measurement.col(field)}) FROM {client.table(measurement)} "
         f"WHERE {measurement.col('town')} = $town")
    params: dict[str, object] = {"town": town}
    if since is not None:
        q += " AND time >= $since"
        params["since"] = to_ns(since)
    rows = await client.query_records(q, params)
    if not rows:
        return None
    return pd.Timestamp(int(rows[0]["time"]), unit="ms", tz="UTC")


async def last_hourly(client: InfluxClient, town: str, since: datetime) -> pd.Timestamp | None:
    return await last_time(client, HOURLY, "n", town, since)


async def first_reading(client: InfluxClient, town: str, since: datetime) -> pd.Timestamp | None:
    return await last_time(client, READING, "temperature", town, since, first=True)


async def read_live(client: InfluxClient, town: str, since: datetime, now: datetime, seen_since: datetime,
                    t_range: tuple[float, float]) -> pd.DataFrame:
    """Per sensor: median temperature and humidity since ``since``, last reading and battery (volts, percent).

    Medians resist the spikes a faulty sensor emits; implausible values are left out in the
    database. One request, four statements, one row per sensor each.
    """
    raw = client.table(READING)
    c = READING.col
    town_is = f"{c('town')} = $town"
    stmts = [
        f"SELECT MEDIAN({c('temperature')}) AS t, MEDIAN({c('humidity')}) AS rh, "
        f"COUNT({c('temperature')}) AS n FROM {raw} WHERE {town_is} AND time >= $since AND time <= $now "
        f"AND {c('temperature')} >= $tmin AND {c('temperature')} <= $tmax GROUP BY {c('sensor')}",
        f"SELECT LAST({c('temperature')}) AS last_t FROM {raw} WHERE {town_is} AND time >= $seen "
        f"AND time <= $now GROUP BY {c('sensor')}",
        f"SELECT LAST({c('battery_v')}) AS battery_v FROM {raw} WHERE {town_is} AND time >= $seen "
        f"AND time <= $now GROUP BY {c('sensor')}",
        f"SELECT LAST({c('battery_pct')}) AS battery_pct FROM {raw} WHERE {town_is} AND time >= $seen "
        f"AND time <= $now GROUP BY {c('sensor')}",
    ]
    params = {"town": town, "since": to_ns(since), "now": to_ns(now), "seen": to_ns(seen_since),
              "tmin": t_range[0], "tmax": t_range[1]}
    med, last, batt, pct = await client.query(";".join(stmts), params)
    m = series_frame(med, ["t", "rh", "n"]).set_index("sensor")
    la = series_frame(last, ["last_t"]).set_index("sensor")
    b = series_frame(batt, ["battery_v"]).set_index("sensor")
    bp = series_frame(pct, ["battery_pct"]).set_index("sensor")
    out = m[["t", "rh", "n"]].join(la.rename(columns={"time": "last_seen"})[["last_seen"]], how="outer")
    out = out.join(b[["battery_v"]], how="outer").join(bp[["battery_pct"]], how="outer")
    out.index.name = "sensor"
    return out


async def read_hourly_qc(client: InfluxClient, town: str, since: datetime, now: datetime) -> pd.DataFrame:
    """Stored hourly ``qc`` and ``n`` of a town since ``since``: what the QC alert rule looks at."""
    c = HOURLY.col
    q = (f"SELECT {c('qc')}, {c('n')} FROM {client.table(HOURLY)} "
         f"WHERE {c('town')} = $town AND time >= $since AND time <= $now GROUP BY {c('sensor')}")
    series = await client.query_series(q, {"town": town, "since": to_ns(since), "now": to_ns(now)})
    return series_frame(series, ["qc", "n"])


async def read_hourly_history(client: InfluxClient, town: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Stored hourly ``t_mean``, ``n`` and ``qc`` of a town in [start, end): QC's trailing context.

    Drift and the monthly checks look back weeks; reading the stored hourly rows for that costs a
    few hundred thousand rows at most, where re-reading the raw readings would cost millions.
    """
    c = HOURLY.col
    q = (f"SELECT {c('t_mean')}, {c('n')}, {c('qc')} FROM {client.table(HOURLY)} "
         f"WHERE {c('town')} = $town AND time >= $start AND time < $end GROUP BY {c('sensor')}")
    raw = await query_csv(client, q, {"town": town, "start": to_ns(start), "end": to_ns(end)})
    if raw.empty:
        return pd.DataFrame({"sensor": pd.Series(dtype=object), "time": pd.Series(dtype="datetime64[ms, UTC]"),
                             "t_mean": pd.Series(dtype=np.float64), "n": pd.Series(dtype=np.float64),
                             "qc": pd.Series(dtype=np.int64)})
    return pd.DataFrame({
        "sensor": raw["tags"].str.removeprefix("sensor=").to_numpy(dtype=object),
        "time": pd.to_datetime(raw["time"].to_numpy(dtype=np.int64), unit="ms", utc=True),
        "t_mean": pd.to_numeric(raw["t_mean"], errors="coerce").to_numpy(dtype=np.float64)
        if "t_mean" in raw else np.nan,
        "n": pd.to_numeric(raw["n"], errors="coerce").fillna(0).to_numpy(dtype=np.float64) if "n" in raw else 0.0,
        "qc": pd.to_numeric(raw["qc"], errors="coerce").fillna(0).to_numpy(dtype=np.int64) if "qc" in raw else 0,
    })


async def read_town_daily(client: InfluxClient, town: str, since: datetime, now: datetime) -> pd.DataFrame:
    c = TOWN_DAILY.col
    q = (f"SELECT {c('ibmn')}, {c('ibmx')}, {c('canicule')} FROM {client.table(TOWN_DAILY)} "
         f"WHERE {c('town')} = $town AND time >= $since AND time <= $now")
    rows = await client.query_records(q, {"town": town, "since": to_ns(since), "now": to_ns(now)})
    frame = pd.DataFrame(rows, columns=["time", "ibmn", "ibmx", "canicule"])
    frame["time"] = pd.to_datetime(frame["time"].astype("int64"), unit="ms", utc=True)
    return frame
