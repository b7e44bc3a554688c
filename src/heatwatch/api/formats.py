"""Output formats: JSON with the licence envelope, CSV (RFC 4180), GeoJSON, Parquet and XLSX.

How values are written is a :class:`Style`: the CSV separator, the decimal mark (``,`` with ``sep=;``, so a
French spreadsheet reads ``23,4`` as a number, not a date) and the zone output times are written in (UTC with
``Z`` by default; ``times=local`` writes them in the request's ``tz`` with their offset).

The renderers themselves are in :mod:`heatwatch.core.tabular` (analytics' monthly archives write the same
files). Large exports are async generators of bytes fed one InfluxDB page at a time, so memory is
bounded by a page whatever the time range. Parquet streams too: each page becomes a row
group and the bytes the writer produced so far are sent before the next page is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from itertools import chain, repeat
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import Request

from heatwatch.core.datasets import Dataset
from heatwatch.core.tabular import (
    LICENCE,
    UTC_STYLE,
    XLSX_MAX_ROWS,
    Style,
    arrow_schema,
    auto_decimal,
    bool_columns,
    csv_stream,
    dataset_csv,
    local_date,
    number_columns,
    parquet_stream,
    xlsx_bytes,
)

from .errors import ApiError
from .responses import GeoJSONBytes, JSONBytes, dumps

__all__ = ["LICENCE", "XLSX_MAX_ROWS", "GeoJSONBytes", "JSONBytes", "Style", "arrow_schema", "bool_columns",
           "csv_stream", "dataset_csv", "dumps", "number_columns", "parquet_stream", "xlsx_bytes"]

Format = Literal["json", "csv", "geojson", "parquet", "xlsx"]
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8; header=present",
    "geojson": "application/geo+json",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": XLSX_MEDIA,
}
_ACCEPT = {
    "application/json": "json",
    "text/csv": "csv",
    "application/geo+json": "geojson",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
    "image/png": "png",
    "application/ld+json": "jsonld",
    XLSX_MEDIA: "xlsx",
}
EXTENSIONS = {"json": "json", "csv": "csv", "geojson": "geojson", "parquet": "parquet", "xlsx": "xlsx"}


def ranked_formats(accept: str) -> list[str]:
    """The formats an ``Accept`` header asks for, most wanted first (q, then order), media types heatwatch does
    not serve left out. Every choice of format depends on the header only through this list, which is why
    it, not the header, is part of cache keys: a made-up ``Accept`` cannot make an entry of its own."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")[:32]):
        bits = [b.strip() for b in part.split(";")]
        q = 1.0
        for b in bits[1:]:
            if b.startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        ranked.append((-q, i, bits[0].lower()))
    out: list[str] = []
    for negq, _, media in sorted(ranked):
        fmt = _ACCEPT.get(media)
        if negq < 0 and fmt is not None and fmt not in out:
            out.append(fmt)
    return out


def accept_key(accept: str) -> str:
    return ",".join(ranked_formats(accept))


def choose_format(request: Request, param: str | None, allowed: Sequence[str]) -> str:
    """``format=`` wins; else the first acceptable type of ``Accept`` in the client's order; else the first allowed."""
    if param:
        fmt = param.lower()
        if fmt not in allowed:
            raise ApiError(400, "unsupported_format",
                           f"format={param!r} is not available here; choose one of {', '.join(allowed)}")
        return fmt
    for fmt in ranked_formats(request.headers.get("accept", "")):
        if fmt in allowed:
            return fmt
    return allowed[0]


def style_of(sep: str, decimal: str | None, tz: ZoneInfo | None) -> Style:
    """A request's output style; a comma decimal with comma-separated values is a 400."""
    try:
        return Style(sep, auto_decimal(sep, decimal), tz)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None


def envelope(meta: dict[str, Any], data: Any) -> dict[str, Any]:
    return {"meta": meta, "data": data}


# Row rendering ---------------------------------------------------------------------------------


def json_rows(ds: Dataset, rows: Iterable[list[Any]], style: Style = UTC_STYLE) -> list[dict[str, Any]]:
    """Rows (lists in ``ds.names`` order, ``time`` first as epoch ms) as JSON objects, times written in ``style``.
    The rows are not changed.

    The per-row work of every JSON page, so it is done by C loops: ``map(dict, map(zip, …))`` builds the objects
    and the memoised formatter (:meth:`Style.time_of`) writes the times."""
    rows = rows if isinstance(rows, list) else list(rows)
    names = ds.names
    if rows and set(map(len, rows)) != {len(names)}:
        raise ValueError(f"a row of {ds.id} does not have its {len(names)} columns")
    out = list(map(dict, map(zip, repeat(names), rows)))
    fmt = style.time_of()
    for d in out:
        t = d["time"]
        if t is not None:
            d["time"] = fmt(t)
    return out


def stored_names(ds: Dataset) -> list[str]:
    """The names of a stored row's columns after its time (``[time, *tags, *fields]``, as :meth:`.store.Store.page`
    reads them)."""
    return [*ds.tag_keys, *ds.fields]


def held_layout(ds: Dataset) -> bool:
    """Whether :func:`held_json_rows` can write ``ds``: its columns are the time, [the local date], the stored tags and
    fields, [the sensor's network and trust] — what :func:`.respond.series_response` makes of a stored row."""
    names = ds.names
    head = ["time", "date"] if ds.has_date else ["time"]
    tail = ["network", "trust"] if ds.per_sensor else []
    return names == [*head, *stored_names(ds), *tail]


def stored_json(names: Sequence[str], row: Sequence[Any]) -> bytes:
    """A stored row's tags and fields (``row[1:]``) as the members :func:`json_rows` + :func:`dumps` write for them,
    without the braces: written once per row the api holds (``api/resident.py``), not per answer."""
    return dumps(dict(zip(names, row[1:], strict=True)))[1:-1]


#: ``,{"time":…,`` (and ``"date":…,``) per instant, by (zone of the times, zone of the dates): one per day of daily
#: rows, not one per row and answer. Emptied when it grows past the cap (times of finer datasets would be endless).
_PREFIXES: dict[tuple[ZoneInfo | None, ZoneInfo | None], dict[int, bytes]] = {}
_PREFIXES_CAP = 200_000


def held_json_rows(ds: Dataset, rows: Sequence[Sequence[Any]], texts: Sequence[bytes], times: Sequence[int],
                   style: Style, date_tz: ZoneInfo | None, tails: Mapping[Any, bytes] | None,
                   sensor: str | None = None) -> orjson.Fragment:
    """The JSON array :func:`json_rows` + :func:`dumps` write for ``rows`` once finished (local date in ``date_tz``
    after the time, the sensor's network and trust at the end), byte for byte, from the members written beforehand
    (``texts[i]`` is :func:`stored_json` of ``rows[i]``, ``times[i]`` its time): one join of pieces kept per instant
    and per row, as an orjson fragment, written as is where the answer's envelope holds it.

    ``tails[sensor]`` is a row's end, ``,"network":…,"trust":…}`` (per-sensor datasets; ``sensor``: the one sensor
    of every row, when known); ``ds`` must pass :func:`held_layout`. The rows are read only for their sensor when it
    is not given: the resident rows lie all over the heap, and touching each costs a cache miss, where the times and
    texts are read in order."""
    if not texts:
        return orjson.Fragment(b"[]")
    date_tz = date_tz if ds.has_date else None
    memo = _PREFIXES.get((style.tz, date_tz))
    if memo is None or len(memo) > _PREFIXES_CAP:
        memo = _PREFIXES[(style.tz, date_tz)] = {}
    heads = list(map(memo.get, times))
    if None in heads:
        fmt = style.time_of()
        for i, t in enumerate(times):
            if heads[i] is None:
                head = b',{"time":' + dumps(fmt(t)) + b","
                if date_tz is not None:
                    head += b'"date":' + dumps(local_date(t, date_tz)) + b","
                heads[i] = memo[t] = head
    # Every row's head starts with the comma that separates it from the one before: but the first's.
    heads[0] = heads[0][1:]
    if tails is None:
        ends: Iterable[bytes] = repeat(b"}", len(texts))
    elif sensor is not None:
        ends = repeat(tails[sensor], len(texts))
    else:
        sensor_at = 1 + ds.tag_keys.index("sensor")
        ends = [tails[row[sensor_at]] for row in rows]
    return orjson.Fragment(b"".join(chain((b"[",), chain.from_iterable(zip(heads, texts, ends, strict=True)),
                                          (b"]",))))


async def json_stream(meta: dict[str, Any], ds: Dataset, batches: AsyncIterator[list[list[Any]]],
                      style: Style = UTC_STYLE) -> AsyncIterator[bytes]:
    head = dumps({"meta": meta})
    yield head[:-1] + b',"data":['
    first = True
    async for batch in batches:
        chunk = dumps(json_rows(ds, batch, style))[1:-1]  # the objects, comma-separated: one orjson call a batch
        if chunk:
            yield chunk if first else b"," + chunk
            first = False
    yield b"]}"


def feature_collection(features: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    # RFC 7946 allows foreign members: the licence envelope rides along as "meta".
    return {"type": "FeatureCollection", "meta": meta, "features": features}


def point_feature(lon: float | None, lat: float | None, props: dict[str, Any], fid: str) -> dict[str, Any]:
    geometry = {"type": "Point", "coordinates": [lon, lat]} if lon is not None and lat is not None else None
    return {"type": "Feature", "id": fid, "geometry": geometry, "properties": props}


def add_dates(batches: AsyncIterator[list[list[Any]]], to_date: Callable[[int], str], pos: int = 1
              ) -> AsyncIterator[list[list[Any]]]:
    """Insert the local date computed from the time column at ``pos`` (daily datasets)."""

    async def gen() -> AsyncIterator[list[list[Any]]]:
        async for batch in batches:
            for row in batch:
                row.insert(pos, to_date(row[0]))
            yield batch

    return gen()
