"""Writing a dataset's rows as files: CSV (RFC 4180, French variant), Parquet and XLSX.

The api's exports and analytics' monthly archives write the same bytes for the same rows, because both go
through here; a dataset's Table Schema (:func:`heatwatch.core.datasets.table_schema`) describes both. Rows are
lists in ``Dataset.names`` order with ``time`` as epoch ms; they arrive as async batches, so memory stays bounded
by a batch whatever the number of rows.

How values are written is a :class:`Style`: the CSV separator, the decimal mark (``,`` with ``;``, so a French
spreadsheet reads ``23,4`` as a number, not as a date or text) and the zone output times are written in (UTC with
``Z`` by default; a zone writes local times with their offset).
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache, partial
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from .datasets import Dataset

LICENCE = {
    "id": "Etalab-2.0",
    "spdx": "etalab-2.0",
    "title": "Licence Ouverte / Open Licence version 2.0",
    "url": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
}


#: Entries of each time-formatting memo: an answer's timestamps repeat from one request to the next (a day's or an
#: hour's start, the same for every sensor), so a bounded memo answers most of them; ~200 bytes an entry.
TIME_MEMO_ENTRIES = 32_768
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_S = 86_400


@lru_cache(maxsize=4096)
def _utc_day(days: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + days).isoformat()


@lru_cache(maxsize=TIME_MEMO_ENTRIES)
def iso_z(ms: int | float | None) -> str | None:
    """Epoch ms to ISO 8601 UTC with ``Z``; milliseconds only when there are some. Memoised: called per row, it is
    one C call when the instant was written before."""
    if ms is None:
        return None
    ms = int(ms)
    s, frac = divmod(ms, 1000)
    if not 0 <= s < 253_402_300_800:  # outside 1970-01-01 … 9999-12-31: time.strftime writes those years
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
        return f"{base}.{frac:03d}Z" if frac else f"{base}Z"
    days, sec = divmod(s, _DAY_S)
    h, sec = divmod(sec, 3600)
    m, sec = divmod(sec, 60)
    if frac:
        return f"{_utc_day(days)}T{h:02d}:{m:02d}:{sec:02d}.{frac:03d}Z"
    return f"{_utc_day(days)}T{h:02d}:{m:02d}:{sec:02d}Z"


def _iso_local(tz: ZoneInfo, ms: int | float) -> str:
    dt = datetime.fromtimestamp(int(ms) / 1000, tz)
    return dt.isoformat(timespec="milliseconds" if int(ms) % 1000 else "seconds")


# Keyed (zone, ms): a zone's offset at an instant never changes (the tz database of a running process is fixed).
_iso_local_memo = lru_cache(maxsize=TIME_MEMO_ENTRIES)(_iso_local)


def iso_local(ms: int | float | None, tz: ZoneInfo) -> str | None:
    """Epoch ms to ISO 8601 in ``tz`` with its UTC offset (``2024-07-20T02:00:00+02:00``)."""
    if ms is None:
        return None
    return _iso_local_memo(tz, ms)


@lru_cache(maxsize=TIME_MEMO_ENTRIES)
def local_date(ms: int | float, tz: ZoneInfo) -> str:
    """The calendar day (ISO date) of an instant in ``tz``. Memoised (called per row)."""
    return datetime.fromtimestamp(ms / 1000, tz).date().isoformat()


@dataclass(frozen=True, slots=True)
class Style:
    """How an answer writes its values: CSV separator and decimal mark, and the zone of output times."""

    sep: str = ","
    decimal: str = "."
    tz: ZoneInfo | None = None  # None: UTC with Z (the default); else local time with its offset

    def time(self, ms: int | float | None) -> str | None:
        return iso_z(ms) if self.tz is None else iso_local(ms, self.tz)

    def time_of(self) -> Callable[[int | float], str]:
        """:meth:`time` for times that are never None, as one call with no Python frame on a memo hit (the row
        loops of every answer call it per row)."""
        return iso_z if self.tz is None else partial(_iso_local_memo, self.tz)


def auto_decimal(sep: str, decimal: str | None) -> str:
    """The decimal mark: as asked, else ``,`` with ``;`` (what the ``;`` is for: French spreadsheets), else ``.``.
    A comma mark with comma-separated values would need every number quoted: refused (ValueError)."""
    if decimal is None:
        return "," if sep == ";" else "."
    if decimal == "," and sep == ",":
        raise ValueError("decimal=, needs sep=; (a comma cannot separate both the fields and the decimals)")
    return decimal


UTC_STYLE = Style()
#: A French spreadsheet's CSV: semicolons, decimal commas, UTF-8 with a byte-order mark.
FRENCH_STYLE = Style(";", ",")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


# Writing CSV a column at a time ----------------------------------------------------------------------------
#
# csv.writer spends a few hundred ns per cell; an answer has thousands. The same bytes are built here with C loops
# over whole columns (map, join, one regex search per column): a cell's text is str(value) (csv.writer's too; for
# a float, str is repr, which csv.writer uses), None is empty, and a field is quoted (QUOTE_MINIMAL: quotes
# doubled) when it holds the separator, a quote or a line break. Anything else falls back to csv.writer: a type
# whose str csv.writer would not use (a float subclass), rows of uneven length, rows of one field (csv.writer
# quotes an empty one).

#: Types whose CSV text is str(value): csv.writer writes exactly that for them.
_PLAIN = frozenset({str, int, float, bool, type(None)})
_NONE_EMPTY: dict[Any, str] = {None: ""}
_NONE_ZERO: dict[Any, float] = {None: 0.0}
_QUOTE_TRIGGERS = {sep: re.compile(f'[{re.escape(sep)}"\r\n]') for sep in (",", ";", "\t", "|")}


def _quote_trigger(sep: str) -> re.Pattern[str]:
    pat = _QUOTE_TRIGGERS.get(sep)
    return pat if pat is not None else re.compile(f'[{re.escape(sep)}"\r\n]')


#: Texts of numbers already written, keyed by (type, value): a float's repr costs ~150 ns, a lookup half that, and
#: measured values repeat (a temperature has a few hundred values a year). Only floats and ints (not NaN, whose
#: objects are all different keys; not 0.0, an equal key to -0.0); emptied when full.
_FLOAT_TEXT: dict[tuple[type, Any], str] = {(type(None), None): ""}
_COMMA_TEXT: dict[tuple[type, Any], str] = {(type(None), None): ""}
_NUMBER_MEMO_ENTRIES = 50_000


def _memo_texts(col: Sequence[Any], memo: dict[tuple[type, Any], str], render: Callable[[Any], str]) -> list[str]:
    """``render(v)`` of each cell ('' for None), from ``memo`` where it was written before."""
    keys = list(zip(map(type, col), col, strict=True))
    texts = list(map(memo.get, keys))
    if None in texts:
        if len(memo) > _NUMBER_MEMO_ENTRIES:
            memo.clear()
            memo[(type(None), None)] = ""
        for i, t in enumerate(texts):
            if t is None:
                v = col[i]
                t = texts[i] = "" if v is None else render(v)
                if v and v == v and (type(v) is float or type(v) is int):
                    memo[keys[i]] = t
    return texts


def _column_texts(col: Sequence[Any], pat: re.Pattern[str]) -> Sequence[str] | None:
    """A column's cells as CSV fields; None when a cell is of a type :data:`_PLAIN` does not hold."""
    types = set(map(type, col))
    if not types <= _PLAIN:
        return None
    if float in types:
        texts: Sequence[str] = _memo_texts(col, _FLOAT_TEXT, str)
        types.discard(type(None))
    else:
        texts = col if types == {str} else list(map(str, col))
    if type(None) in types:
        texts = list(map(_NONE_EMPTY.get, col, texts))
    if str in types and pat.search("".join(texts)):
        texts = [f'"{t.replace(chr(34), chr(34) * 2)}"' if pat.search(t) else t for t in texts]
    return texts


def csv_rows_text(columns: Sequence[Sequence[Any]], sep: str) -> str | None:
    """Rows given as columns (equal lengths, at least two) as CSV text with CRLF line ends, what csv.writer
    (QUOTE_MINIMAL) writes for them; None when a column holds a value it must write itself."""
    pat = _quote_trigger(sep)
    texts = []
    for col in columns:
        t = _column_texts(col, pat)
        if t is None:
            return None
        texts.append(t)
    if not texts or not texts[0]:
        return ""
    return "\r\n".join(map(sep.join, zip(*texts, strict=True))) + "\r\n"


def _comma(v: Any) -> str:
    return repr(float(v)).replace(".", ",")


def _comma_numbers(col: Sequence[Any]) -> list[Any]:
    """A number column with a decimal comma: repr(float(v)) with ',' for '.', None empty."""
    if not set(map(type, col)) <= _PLAIN:  # what float() makes of it is not what its type says: not memoised
        return [None if v is None else _comma(v) for v in col]
    return _memo_texts(col, _COMMA_TEXT, _comma)


class CsvRenderer:
    """RFC 4180: CRLF line ends, fields quoted when they hold the separator, a quote or a line break.
    A UTF-8 byte-order mark only with ``;`` so Excel (the reason for ``;``) reads accents right.

    Hot loop of every export: only time columns, booleans (``true``/``false``, not Python's ``True``) and, with a
    decimal comma, numbers need more than str(); with the column types known (``bool_cols``, ``number_cols``) a
    batch is rendered a column at a time (:func:`csv_rows_text`). ``bool_cols=None`` checks every cell for
    booleans and floats, row by row, and rewrites the rows in place.
    """

    def __init__(self, header: Sequence[str], sep: str, time_cols: Sequence[int] = (0,),
                 bool_cols: Sequence[int] | None = None, style: Style | None = None,
                 number_cols: Sequence[int] | None = None) -> None:
        self.header = header
        self.sep = sep
        self.time_cols = time_cols
        self.bool_cols = bool_cols
        self.style = style or Style(sep, auto_decimal(sep, None))
        self.number_cols = number_cols
        self.buf = io.StringIO()
        self.writer = csv.writer(self.buf, delimiter=sep, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)

    def head(self) -> bytes:
        self.buf.seek(0)
        self.buf.truncate()
        self.writer.writerow(self.header)
        prefix = "\ufeff" if self.sep == ";" else ""
        return (prefix + self.buf.getvalue()).encode("utf-8")

    def batch(self, batch: list[list[Any]]) -> bytes:
        """The rows as CSV bytes."""
        if not batch:
            return b""
        width = len(batch[0])
        if self.bool_cols is None or width < 2 or set(map(len, batch)) != {width}:
            return self._rows(batch)
        cols: list[Sequence[Any]] = list(zip(*batch, strict=True))
        fmt = self.style.time_of()
        for i in self.time_cols:
            col = cols[i]
            cols[i] = list(map(_NONE_EMPTY.get, col, map(fmt, map(_NONE_ZERO.get, col, col))))
        for i in self.bool_cols:
            cols[i] = [v if v is None else ("true" if v else "false") for v in cols[i]]
        if self.style.decimal == "," and self.number_cols:
            for i in self.number_cols:
                cols[i] = _comma_numbers(cols[i])
        text = csv_rows_text(cols, self.sep)
        if text is None:
            return self._write(list(map(list, zip(*cols, strict=True))))
        return text.encode("utf-8")

    def _rows(self, batch: list[list[Any]]) -> bytes:
        """Row by row, in place (types unknown, or rows csv.writer must write)."""
        render, comma = self.style.time, self.style.decimal == ","
        bool_cols, number_cols = self.bool_cols, self.number_cols
        for row in batch:
            for i in self.time_cols:
                row[i] = render(row[i]) or ""
            if bool_cols is None:
                for i, v in enumerate(row):
                    if v is True or v is False:
                        row[i] = _cell(v)
                    elif comma and type(v) is float:
                        row[i] = repr(v).replace(".", ",")
            else:
                for i in bool_cols:
                    v = row[i]
                    if v is not None:
                        row[i] = "true" if v else "false"
                if comma and number_cols:
                    for i in number_cols:
                        v = row[i]
                        if v is not None:
                            row[i] = repr(float(v)).replace(".", ",")
        return self._write(batch)

    def _write(self, rows: list[list[Any]]) -> bytes:
        self.buf.seek(0)
        self.buf.truncate()
        self.writer.writerows(rows)
        return self.buf.getvalue().encode("utf-8")


async def csv_stream(header: Sequence[str], batches: AsyncIterator[list[list[Any]]], sep: str,
                     time_cols: Sequence[int] = (0,), bool_cols: Sequence[int] | None = None,
                     style: Style | None = None, number_cols: Sequence[int] | None = None
                     ) -> AsyncIterator[bytes]:
    """CSV bytes of async batches of rows (:class:`CsvRenderer`)."""
    r = CsvRenderer(header, sep, time_cols, bool_cols, style, number_cols)
    yield r.head()
    async for batch in batches:
        yield r.batch(batch)


def bool_columns(ds: Dataset) -> list[int]:
    return [i for i, c in enumerate(ds.columns) if c.type == "boolean"]


def number_columns(ds: Dataset) -> list[int]:
    return [i for i, c in enumerate(ds.columns) if c.type == "number"]


def dataset_csv_renderer(ds: Dataset, style: Style) -> CsvRenderer:
    return CsvRenderer(ds.names, style.sep, bool_cols=bool_columns(ds), style=style, number_cols=number_columns(ds))


def dataset_csv(ds: Dataset, batches: AsyncIterator[list[list[Any]]], style: Style) -> AsyncIterator[bytes]:
    """A dataset's rows (in ``ds.names`` order) as CSV in ``style``: what exports and archives write."""
    return csv_stream(ds.names, batches, style.sep, bool_cols=bool_columns(ds), style=style,
                      number_cols=number_columns(ds))


def arrow_schema(ds: Dataset, tz: ZoneInfo | None = None, licence: Mapping[str, str] | None = None) -> pa.Schema:
    """``tz``: the zone the time column is labelled with (the instants are the same; readers show local times);
    ``licence``: the licence of the rows written (``core/provenance.py`` combined_licence), the instance's when
    absent."""
    types = {"datetime": pa.timestamp("ms", tz=str(tz) if tz is not None else "UTC"), "date": pa.string(),
             "string": pa.string(), "number": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_()}
    fields = []
    for c in ds.columns:
        meta = {"description": c.description}
        if c.unit:
            meta["unit"] = c.unit
        fields.append(pa.field(c.name, types[c.type], metadata=meta))
    return pa.schema(fields, metadata={"licence": (licence or LICENCE)["url"], "dataset": ds.id})


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


def _coerce(ds: Dataset, batch: list[list[Any]], tz: ZoneInfo | None = None, schema: pa.Schema | None = None
            ) -> pa.Table:
    cols = list(zip(*batch, strict=True)) if batch else [() for _ in ds.columns]
    schema = schema if schema is not None else arrow_schema(ds, tz)
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


class ParquetRenderer:
    """Parquet (zstd) written a row group per batch; :meth:`batch` returns the bytes written so far."""

    def __init__(self, ds: Dataset, tz: ZoneInfo | None = None, licence: Mapping[str, str] | None = None) -> None:
        self.ds, self.tz = ds, tz
        self.sink = _Sink()
        self.schema = arrow_schema(ds, tz, licence)
        self.writer = pq.ParquetWriter(self.sink, self.schema, compression="zstd")

    def batch(self, batch: list[list[Any]]) -> bytes:
        self.writer.write_table(_coerce(self.ds, batch, self.tz, self.schema))
        return self.sink.drain()

    def close(self) -> bytes:
        self.writer.close()
        return self.sink.drain()


async def parquet_stream(ds: Dataset, batches: AsyncIterator[list[list[Any]]], tz: ZoneInfo | None = None,
                         licence: Mapping[str, str] | None = None) -> AsyncIterator[bytes]:
    r = ParquetRenderer(ds, tz, licence)
    try:
        async for batch in batches:
            chunk = r.batch(batch)
            if chunk:
                yield chunk
    finally:
        tail = r.close()
    yield tail


#: Rows an XLSX answer may hold: a spreadsheet is for small tables (Excel stops at 1,048,576 rows and slows long
#: before); bulk data is CSV or Parquet.
XLSX_MAX_ROWS = 100_000


def xlsx_bytes(ds_names: Sequence[str], rows: Iterable[Sequence[Any]], *, time_cols: Sequence[int] = (0,),
               style: Style = UTC_STYLE, about: Sequence[tuple[str, str]] = (),
               columns: Sequence[tuple[str, str, str]] = (), number_cols: Sequence[int] = ()) -> bytes:
    """An XLSX workbook: the rows on a first sheet (times as spreadsheet date-times, in UTC or the style's zone:
    spreadsheets have no time zones), and an "about" sheet with the attribution and what each column means.

    ``about``: (label, value) lines (licence, producer, source); ``columns``: (name, description, unit)."""
    from openpyxl import Workbook  # imported here: only XLSX answers need it

    wb = Workbook(write_only=True)
    data = wb.create_sheet("data")
    data.append(list(ds_names))
    zone = style.tz
    for row in rows:
        out = list(row)
        for i in time_cols:
            t = out[i]
            if t is not None:
                dt = datetime.fromtimestamp(int(t) / 1000, zone or ZoneInfo("UTC"))
                out[i] = dt.replace(tzinfo=None)
        for i in number_cols:  # the database's JSON writes 24.0 as 24: a number column holds floats
            if out[i] is not None:
                out[i] = float(out[i])
        data.append(out)
    meta = wb.create_sheet("about")
    for label, value in about:
        meta.append([label, value])
    meta.append(["times", f"in {zone.key if zone else 'UTC'}"])
    if columns:
        meta.append([])
        meta.append(["column", "description", "unit"])
        for name, description, unit in columns:
            meta.append([name, description, unit])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
