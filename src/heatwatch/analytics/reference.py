"""Official reference stations: Météo-France's open hourly climatological files, into InfluxDB.

The files ("données climatologiques de base horaires", one per département and period, e.g.
``H_35_previous-2020-2024.csv.gz``, Licence Ouverte 2.0) are ``;``-separated with one row per
station and hour; their fields are described in Météo-France's ``H_descriptif_champs.csv``
(docs/science/canicule.md quotes the ones used here):

* ``NUM_POSTE`` the 8-digit station number, ``NOM_USUEL`` its name, ``AAAAMMJJHH`` the hour in UTC;
* ``T`` instantaneous temperature under shelter, ``TN``/``TX`` its minimum/maximum within the
  hour (the hour ending at HH: a row stamped 00 carries HTN 2310 for a minimum at 23:10), °C;
  ``U`` relative humidity, %;
* each value followed by its quality code ``Q<name>``: 0 protected (validated for good by a
  climatologist), 1 validated, 9 filtered (passed first-level checks), 2 doubtful (put in doubt
  by an automatic check, being verified).

They are stored as measurement ``station_hourly`` (tag ``station``; fields ``t``, ``tn``, ``tx``,
``u`` and their quality codes ``qt``, ``qtn``, ``qtx``, ``qu``) in the aggregates' retention
policy, kept forever, at the row's hour. Values are stored as published, doubtful ones included;
:func:`read_station` leaves out code 2 when analytics reads them back.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from heatwatch.core.influx import InfluxClient
from heatwatch.core.measurements import STATION_HOURLY

from .reader import query_csv, to_ns

MEASUREMENT = STATION_HOURLY.name
#: Columns read from a file: station, time, the four values and their quality codes.
VALUE_COLUMNS = {"T": "t", "TN": "tn", "TX": "tx", "U": "u"}
REQUIRED = ["NUM_POSTE", "AAAAMMJJHH", "T", "QT"]
#: Quality codes whose values analytics uses (Météo-France: 0 protected, 1 validated, 9 filtered).
ACCEPTED_QUALITY = (0, 1, 9)
DOUBTFUL = 2
CHUNK_ROWS = 200_000
BATCH_LINES = 5000


class ReferenceFileError(ValueError):
    """The file is not a Météo-France hourly climatological file heatwatch can read."""


@dataclass
class StationSummary:
    station: str
    name: str = ""
    latitude: float | None = None
    longitude: float | None = None
    altitude_m: float | None = None
    rows: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    doubtful: int = 0


@dataclass
class ImportResult:
    stations: dict[str, StationSummary] = field(default_factory=dict)
    skipped_stations: set[str] = field(default_factory=set)
    rows_read: int = 0
    points: int = 0


def _open(path: Path) -> io.TextIOBase:
    raw = path.read_bytes()[:2]
    opener = gzip.open if raw == b"\x1f\x8b" else open
    handle = opener(path, "rb")  # type: ignore[operator]
    head = handle.read(4096)
    handle.seek(0)
    # Météo-France writes UTF-8; older extracts and spreadsheets re-saved by hand come in Latin-1.
    try:
        head.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "latin-1"
    return io.TextIOWrapper(handle, encoding=encoding, newline="")


def read_file(path: Path | str, stations: Iterable[str] | None = None) -> Iterator[pd.DataFrame]:
    """Rows of a Météo-France hourly file, in chunks: station, name, lat, lon, alt, time, values, codes.

    ``stations`` keeps only those NUM_POSTE (all when None). Raises :class:`ReferenceFileError`
    when the header lacks the fields heatwatch needs.
    """
    path = Path(path)
    wanted = {s.strip() for s in stations} if stations is not None else None
    with _open(path) as text:
        header = text.readline().strip().lstrip("\ufeff")
        names = [c.strip() for c in header.split(";")]
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise ReferenceFileError(
                f"{path.name}: not a Météo-France hourly climatological file (missing {', '.join(missing)}; "
                f"expected a ';'-separated header starting NUM_POSTE;NOM_USUEL;LAT;LON;ALTI;AAAAMMJJHH)")
        keep = [c for c in ("NUM_POSTE", "NOM_USUEL", "LAT", "LON", "ALTI", "AAAAMMJJHH") if c in names]
        for col in VALUE_COLUMNS:
            if col in names:
                keep.append(col)
            if f"Q{col}" in names:
                keep.append(f"Q{col}")
        reader = pd.read_csv(text, sep=";", names=names, usecols=keep, dtype=str, chunksize=CHUNK_ROWS,
                             keep_default_na=False, na_values=[""], skipinitialspace=True)
        for chunk in reader:
            chunk["NUM_POSTE"] = chunk["NUM_POSTE"].str.strip()
            if wanted is not None:
                chunk = chunk[chunk["NUM_POSTE"].isin(wanted)]
            if chunk.empty:
                continue
            yield _tidy(chunk, path)


def _tidy(chunk: pd.DataFrame, path: Path) -> pd.DataFrame:
    stamp = chunk["AAAAMMJJHH"].str.strip()
    time = pd.to_datetime(stamp, format="%Y%m%d%H", utc=True, errors="coerce")
    if time.isna().any():
        bad = stamp[time.isna()].iloc[0]
        raise ReferenceFileError(f"{path.name}: AAAAMMJJHH {bad!r} is not a date and hour (YYYYMMDDHH, UTC)")
    name = (chunk["NOM_USUEL"].fillna("").str.strip().to_numpy(dtype=object) if "NOM_USUEL" in chunk
            else np.full(len(chunk), "", dtype=object))
    out = pd.DataFrame({"station": chunk["NUM_POSTE"].to_numpy(dtype=object), "name": name,
                        "time": time.to_numpy()})
    for meta in ("LAT", "LON", "ALTI"):
        out[meta.lower()] = (pd.to_numeric(chunk[meta], errors="coerce").to_numpy(dtype=np.float64)
                             if meta in chunk else np.nan)
    for col, name in VALUE_COLUMNS.items():
        out[name] = (pd.to_numeric(chunk[col], errors="coerce").to_numpy(dtype=np.float64) if col in chunk
                     else np.full(len(chunk), np.nan))
        q = f"Q{col}"
        out[f"q{name}"] = (pd.to_numeric(chunk[q], errors="coerce").to_numpy(dtype=np.float64) if q in chunk
                           else np.full(len(chunk), np.nan))
    out["time"] = pd.to_datetime(out["time"], utc=True)
    return out


def station_lines(rows: pd.DataFrame) -> list[str]:
    """Line protocol for ``station_hourly`` (ms precision); rows with no value are skipped."""
    lines = []
    cols = list(VALUE_COLUMNS.values())
    ms = (rows["time"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    for station, when, *values in zip(rows["station"], ms, *(rows[c] for c in cols),
                                      *(rows[f"q{c}"] for c in cols), strict=True):
        v, q = values[:len(cols)], values[len(cols):]
        fields = [f"{c}={float(x)!r}" for c, x in zip(cols, v, strict=True) if np.isfinite(x)]
        fields += [f"q{c}={int(code)}i" for c, x, code in zip(cols, v, q, strict=True)
                   if np.isfinite(x) and np.isfinite(code)]
        if fields and str(station).isdigit():
            lines.append(f"{MEASUREMENT},station={station} {','.join(fields)} {int(when)}")
    return lines


async def import_file(client: InfluxClient, path: Path | str, stations: Iterable[str] | None = None
                      ) -> ImportResult:
    """Write the rows of ``stations`` (all when None) of a file into ``station_hourly``."""
    result = ImportResult()
    for chunk in read_file(path, None):
        result.rows_read += len(chunk)
        if stations is not None:
            wanted = set(stations)
            result.skipped_stations |= set(chunk["station"]) - wanted
            chunk = chunk[chunk["station"].isin(wanted)]
        for sid, part in chunk.groupby("station", sort=True):
            s = result.stations.setdefault(str(sid), StationSummary(str(sid)))
            first = part.iloc[0]
            s.name = s.name or str(first["name"] or "")
            s.latitude = s.latitude if s.latitude is not None else _num(first["lat"])
            s.longitude = s.longitude if s.longitude is not None else _num(first["lon"])
            s.altitude_m = s.altitude_m if s.altitude_m is not None else _num(first["alti"])
            s.rows += len(part)
            s.first = min(filter(None, [s.first, part["time"].min()]))
            s.last = max(filter(None, [s.last, part["time"].max()]))
            s.doubtful += int((part[[f"q{c}" for c in VALUE_COLUMNS.values()]] == DOUBTFUL).any(axis=1).sum())
        lines = station_lines(chunk)
        for i in range(0, len(lines), BATCH_LINES):
            await client.write_lines(lines[i:i + BATCH_LINES], rp=STATION_HOURLY.rp)
        result.points += len(lines)
    return result


def _num(x: object) -> float | None:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


async def read_station(client: InfluxClient, station: str, start: datetime | pd.Timestamp,
                       end: datetime | pd.Timestamp) -> pd.DataFrame:
    """A station's hourly rows in [start, end): time (UTC, the row's stamp), t, tn, tx, u.

    Values whose quality code is 2 (doubtful) come back as NaN; the others are used as published.
    """
    cols = list(VALUE_COLUMNS.values())
    c = STATION_HOURLY.col
    q = (f"SELECT {', '.join(c(x) for x in cols + ['q' + x for x in cols])} "
         f"FROM {client.table(STATION_HOURLY)} WHERE {c('station')} = $station "
         f"AND time >= $start AND time < $end")
    raw = await query_csv(client, q, {"station": station, "start": to_ns(start), "end": to_ns(end)})
    if raw.empty:
        return pd.DataFrame({"time": pd.Series(dtype="datetime64[ms, UTC]"),
                             **{c: pd.Series(dtype="float64") for c in cols}})
    out = pd.DataFrame({"time": pd.to_datetime(raw["time"].to_numpy(dtype=np.int64), unit="ms", utc=True)})
    for x in cols:
        v = pd.to_numeric(raw[x], errors="coerce") if x in raw else pd.Series(np.nan, index=raw.index)
        code = pd.to_numeric(raw[f"q{x}"], errors="coerce") if f"q{x}" in raw else pd.Series(np.nan, index=raw.index)
        out[x] = v.where(code != DOUBTFUL).to_numpy(dtype=np.float64)
    return out.sort_values("time", ignore_index=True)


async def station_coverage(client: InfluxClient) -> list[dict[str, object]]:
    """Per stored station: first and last hour and number of rows (``heatwatch reference list``)."""
    c = STATION_HOURLY.col
    q = f"SELECT COUNT({c('t')}) AS n FROM {client.table(STATION_HOURLY)} GROUP BY {c('station')}"
    series = await client.query_series(q, {})
    out = []
    for s in series:
        if not s.values:
            continue
        n = int(s.values[0][s.columns.index("n")])
        first_q = f"SELECT FIRST({c('t')}) FROM {client.table(STATION_HOURLY)} WHERE {c('station')} = $s"
        last_q = first_q.replace("FIRST(", "LAST(")
        first = await client.query_records(first_q, {"s": s.tags.get("station", "")})
        last = await client.query_records(last_q, {"s": s.tags.get("station", "")})
        out.append({"station": s.tags.get("station", ""), "rows": n,
                    "first": pd.Timestamp(int(first[0]["time"]), unit="ms", tz="UTC") if first else None,
                    "last": pd.Timestamp(int(last[0]["time"]), unit="ms", tz="UTC") if last else None})
    return out
