"""Output formats: JSON with the licence envelope, CSV (RFC 4180), GeoJSON and Parquet.

Large exports are async generators of bytes fed one InfluxDB page at a time, so memory is
bounded by a page whatever the time range. Parquet streams too: each page becomes a row
group and the bytes the writer produced so far are sent before the next page is read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Request

from .datasets import Dataset
from .errors import ApiError
from .responses import GeoJSONBytes, JSONBytes, dumps
from .timeutil import iso_z

__all__ = ["GeoJSONBytes", "JSONBytes", "dumps"]

Format = Literal["json", "csv", "geojson", "parquet"]

LICENCE = {
    "id": "Etalab-2.0",
    "spdx": "etalab-2.0",
    "title": "Licence Ouverte / Open Licence version 2.0",
    "url": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
}

MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8; header=present",
    "geojson": "application/geo+json",
    "parquet": "application/vnd.apache.parquet",
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
}
EXTENSIONS = {"json": "json", "csv": "csv", "geojson": "geojson", "parquet": "parquet"}

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


def envelope(meta: dict[str, Any], data: Any) -> dict[str, Any]:
    return {"meta": meta, "data": data}


# Row rendering ---------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def json_rows(ds: Dataset, rows: Iterable[list[Any]]) -> list[dict[str, Any]]:
    names = ds.names
    out = []
    for row in rows:
        d = dict(zip(names, row, strict=True))
        d["time"] = iso_z(d["time"])
        out.append(d)
    return out


async def csv_stream(header: Sequence[str], batches: AsyncIterator[list[list[Any]]], sep: str,
                     time_cols: Sequence[int] = (0,), bool_cols: Sequence[int] | None = None
                     ) -> AsyncIterator[bytes]:
    """RFC 4180: CRLF line ends, fields quoted when they hold the separator, a quote or a line break.
    A UTF-8 byte-order mark only with ``;`` so Excel (the reason for ``;``) reads accents right.

    Hot loop of every export: the csv module already writes None as an empty field and numbers with
    str(), so only time columns and booleans (``true``/``false``, not Python's ``True``) are touched,
    in place. ``bool_cols=None`` checks every cell for booleans (callers that know the types pass them).
    """
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    prefix = "\ufeff" if sep == ";" else ""
    yield (prefix + buf.getvalue()).encode("utf-8")
    async for batch in batches:
        buf.seek(0)
        buf.truncate()
        times: dict[int, str] = {}  # a batch repeats each timestamp once per sensor: format it once
        for row in batch:
            for i in time_cols:
                t = row[i]
                text = times.get(t)
                if text is None:
                    text = times[t] = iso_z(t) or ""
                row[i] = text
            if bool_cols is None:
                for i, v in enumerate(row):
                    if v is True or v is False:
                        row[i] = _cell(v)
            else:
                for i in bool_cols:
                    v = row[i]
                    if v is not None:
                        row[i] = "true" if v else "false"
        writer.writerows(batch)
        yield buf.getvalue().encode("utf-8")


def bool_columns(ds: Dataset) -> list[int]:
    return [i for i, c in enumerate(ds.columns) if c.type == "boolean"]


async def json_stream(meta: dict[str, Any], ds: Dataset, batches: AsyncIterator[list[list[Any]]]
                      ) -> AsyncIterator[bytes]:
    head = dumps({"meta": meta})
    yield head[:-1] + b',"data":['
    first = True
    async for batch in batches:
        chunk = b",".join(dumps(r) for r in json_rows(ds, batch))
        if chunk:
            yield chunk if first else b"," + chunk
            first = False
    yield b"]}"


def arrow_schema(ds: Dataset) -> pa.Schema:
    types = {"datetime": pa.timestamp("ms", tz="UTC"), "date": pa.string(), "string": pa.string(),
             "number": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_()}
    fields = []
    for c in ds.columns:
        meta = {"description": c.description}
        if c.unit:
            meta["unit"] = c.unit
        fields.append(pa.field(c.name, types[c.type], metadata=meta))
    return pa.schema(fields, metadata={"licence": LICENCE["url"], "dataset": ds.id})


class _Sink(io.RawIOBase):
    """A write-only file that keeps what it is given until drained: the Parquet writer's output."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._chunks.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _coerce(ds: Dataset, batch: list[list[Any]]) -> pa.Table:
    cols = list(zip(*batch, strict=True)) if batch else [() for _ in ds.columns]
    schema = arrow_schema(ds)
    arrays = []
    for c, values, f in zip(ds.columns, cols, schema, strict=True):
        if c.type == "number":
            values = [None if v is None else float(v) for v in values]
        elif c.type == "integer":
            values = [None if v is None else int(v) for v in values]
        elif c.type == "boolean":
            values = [None if v is None else bool(v) for v in values]
        elif c.type == "string":
            values = [None if v is None else str(v) for v in values]
        arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


async def parquet_stream(ds: Dataset, batches: AsyncIterator[list[list[Any]]]) -> AsyncIterator[bytes]:
    sink = _Sink()
    writer = pq.ParquetWriter(sink, arrow_schema(ds), compression="zstd")
    try:
        async for batch in batches:
            writer.write_table(_coerce(ds, batch))
            chunk = sink.drain()
            if chunk:
                yield chunk
    finally:
        writer.close()
    yield sink.drain()


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
