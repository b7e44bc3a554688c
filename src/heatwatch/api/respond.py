"""Building answers: cached JSON with ETag, and streamed exports in any format."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from email.utils import formatdate
from functools import lru_cache
from typing import Any

from starlette.responses import Response, StreamingResponse

from heatwatch.core.datasets import Dataset
from heatwatch.core.model import Sensor
from heatwatch.core.provenance import combined_licence, sources
from heatwatch.core.public import append_network_trust
from heatwatch.core.tabular import csv_rows_text
from heatwatch.core.trust import network_of, trust_of

from .cache import TTL_HEADER, Cached, build_entry, conditional
from .deps import Ctx
from .errors import ApiError, bad_request
from .formats import (
    EXTENSIONS,
    LICENCE,
    MEDIA_TYPES,
    XLSX_MAX_ROWS,
    Style,
    auto_decimal,
    dataset_csv,
    dumps,
    envelope,
    held_json_rows,
    held_layout,
    json_rows,
    json_stream,
    number_columns,
    parquet_stream,
    xlsx_bytes,
)
from .licence import LICENCE_HEADER
from .limits import HeldStreamingResponse, Ticket
from .sensorinfo import sensor_index
from .store import Cursor
from .timeutil import local_date


@lru_cache(maxsize=1024)
def http_date(ms: int | None) -> str | None:
    """An HTTP date (Last-Modified). Memoised: answers mostly carry one of a few last-update times, and
    ``formatdate`` costs ~15 µs."""
    return formatdate(ms / 1000, usegmt=True) if ms is not None else None


async def cached_json(ctx: Ctx, ttl: float, max_age: int, build: Callable[[], Awaitable[tuple[Any, ...]]],
                      version: str = "") -> Response:
    """``build`` returns (payload, last update ms, media type[, extra headers]); the rendered bytes are cached, and
    the ETag lets clients revalidate with If-None-Match for a 304. A payload already rendered (bytes) is sent as
    it is. ``version``: a state the answer depends on besides the request (a new value is a new entry at once,
    whatever the TTL; such answers skip HotCache)."""

    async def make() -> Cached:
        payload, last_ms, media_type, *more = await build()
        headers = {"Last-Modified": lm} if (lm := http_date(last_ms)) else {}
        if more:
            headers.update(more[0])
        return build_entry(payload if isinstance(payload, bytes) else dumps(payload), media_type, headers)

    entry = await ctx.cache.get_or_build(_key(ctx, version), ttl, make)
    return _versioned(conditional(ctx.request, entry, max_age, ctx.cache.clock()), version)


def _key(ctx: Ctx, version: str) -> str:
    return f"{ctx.cache_key}#{version}" if version else ctx.cache_key


def _versioned(response: Response, version: str) -> Response:
    if version and TTL_HEADER in response.headers:
        del response.headers[TTL_HEADER]  # HotCache answers before the route: it would not see a new version
    return response


def stream_export(ctx: Ctx, ds: Dataset, fmt: str, style: Style, meta: dict[str, Any],
                  batches: AsyncIterator[list[list[Any]]], filename: str, last_ms: int | None,
                  max_age: int = 60, ticket: Ticket | None = None, licence: dict[str, str] | None = None
                  ) -> StreamingResponse:
    if fmt == "csv":
        body = dataset_csv(ds, batches, style)
    elif fmt == "parquet":
        body = parquet_stream(ds, batches, style.tz, licence)
    else:
        body = json_stream(meta, ds, batches, style)
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}.{EXTENSIONS[fmt]}"',
        "Cache-Control": f"public, max-age={max_age}",
    }
    if (lm := http_date(last_ms)) is not None:
        headers["Last-Modified"] = lm
    if licence is not None:  # the licence middleware links it (api/licence.py)
        headers[LICENCE_HEADER] = licence["id"]
    media = MEDIA_TYPES[fmt]
    if ticket is not None:  # the export's slot is given back when the stream ends, however it ends
        return HeldStreamingResponse(body, ticket, media_type=media, headers=headers)
    return StreamingResponse(body, media_type=media, headers=headers)


def _csv_cell(v: Any, comma: bool) -> Any:
    if v is None:
        return ""
    if v is True or v is False:
        return "true" if v else "false"
    if comma and type(v) is float:
        return repr(v).replace(".", ",")
    return v


def _csv_column(col: Sequence[Any], comma: bool) -> Sequence[Any]:
    """A column's booleans as ``true``/``false`` and, with a decimal comma, its floats with ``,`` (None stays None:
    an empty field)."""
    types = set(map(type, col))
    if bool in types:
        col = [("true" if v else "false") if type(v) is bool else v for v in col]
    if comma and float in types:
        col = [repr(v).replace(".", ",") if type(v) is float else v for v in col]
    return col


def csv_bytes(columns: list[str], rows: list[dict[str, Any]], sep: str, decimal: str | None = None) -> bytes:
    """A small CSV answer in one piece (RFC 4180, CRLF); BOM and decimal commas with ';' as in streamed exports.
    Rendered a column at a time (:func:`heatwatch.core.tabular.csv_rows_text`), as csv.writer would."""
    comma = auto_decimal(sep, decimal) == ","
    buf = io.StringIO()
    if sep == ";":
        buf.write("\ufeff")
    writer = csv.writer(buf, delimiter=sep, lineterminator="\r\n")
    writer.writerow(columns)
    if rows and len(columns) > 1:
        cols = [_csv_column(col, comma) for col in zip(*(list(map(r.get, columns)) for r in rows), strict=True)]
        text = csv_rows_text(cols, sep)
        if text is not None:
            buf.write(text)
        else:
            writer.writerows(zip(*cols, strict=True))
    else:  # csv.writer's own ways with rows of one field or none
        for r in rows:
            writer.writerow([_csv_cell(r.get(c), comma) for c in columns])
    return buf.getvalue().encode("utf-8")


async def cached_csv(ctx: Ctx, build: Callable[[], Awaitable[tuple[Any, int | None, str]]], columns: list[str],
                     sep: str | Style, ttl: float | None = None, max_age: int = 30, version: str = "") -> Response:
    style = sep if isinstance(sep, Style) else Style(sep, auto_decimal(sep, None))

    async def make() -> Cached:
        rows, last_ms, _ = await build()
        headers = {"Last-Modified": lm} if (lm := http_date(last_ms)) else {}
        return build_entry(csv_bytes(columns, rows, style.sep, style.decimal), MEDIA_TYPES["csv"], headers)

    entry = await ctx.cache.get_or_build(_key(ctx, version), ctx.config.cache_ttl_latest_s if ttl is None else ttl,
                                         make)
    return _versioned(conditional(ctx.request, entry, max_age, ctx.cache.clock()), version)


def about_rows(ctx: Ctx, ds: Dataset, last_ms: int | None, licence: dict[str, str] | None = None
               ) -> list[tuple[str, str]]:
    """The attribution an XLSX file carries on its "about" sheet (it has no headers once saved)."""
    lic = licence or LICENCE
    return [("dataset", f"{ds.title} ({ds.id})"), ("licence", f"{lic['title']} — {lic['url']}"),
            ("producer", ctx.config.producer), ("source", ctx.url_with()),
            ("last update", http_date(last_ms) or ""), ("qc flags", f"{ctx.base_url}/v1/qc-flags")]


def xlsx_entry(ctx: Ctx, ds: Dataset, rows: list[list[Any]], last_ms: int | None, style: Style,
               filename: str, licence: dict[str, str] | None = None) -> Cached:
    if len(rows) > XLSX_MAX_ROWS:
        raise ApiError(400, "too_many_rows", f"{len(rows)} rows are too many for a spreadsheet (at most "
                                             f"{XLSX_MAX_ROWS}); narrow from/to, or export as CSV or Parquet")
    body = xlsx_bytes(ds.names, rows, style=style, about=about_rows(ctx, ds, last_ms, licence),
                      columns=[(c.name, c.description, c.unit or "") for c in ds.columns],
                      number_cols=number_columns(ds))
    headers = {"Content-Disposition": f'attachment; filename="{filename}.xlsx"'}
    if licence is not None:
        headers[LICENCE_HEADER] = licence["id"]
    if (lm := http_date(last_ms)) is not None:
        headers["Last-Modified"] = lm
    return build_entry(body, MEDIA_TYPES["xlsx"], headers)


def answer_licence(flt: Any, sensors: dict[str, Sensor] | None) -> tuple[dict[str, str] | None, dict[str, Any]]:
    """The licence of a per-sensor answer when it is not the instance's (None otherwise), and what the JSON
    envelope says about it: the sensors the filter lets through, by source and licence."""
    if not sensors:
        return None, {}
    only = set(flt.only) if getattr(flt, "only", None) is not None else None
    excluded = set(flt.exclude)
    # One sensor asked (the usual per-sensor request): looked up, not searched for among all of them.
    candidates = sensors.values() if flt.sensor is None else [s for s in (sensors.get(flt.sensor),) if s is not None]
    chosen = [s for s in candidates if s.id not in excluded and (only is None or s.id in only)]
    srcs = sources(chosen)
    lic = combined_licence(srcs)
    if lic["id"] == LICENCE["id"]:
        return None, {}
    return lic, {"licence": lic, "sources": [src.as_dict() for src in srcs],
                 "licence_note": "each row is under its source's licence (the town's network: Licence Ouverte 2.0); "
                                 "rows under the ODbL make the answer ODbL as a whole (share-alike); network=town "
                                 "gives the town network's rows alone"}


async def series_response(
    ctx: Ctx, ds: Dataset, flt: Any, *, fmt: str, style: Style, limit: int | None, cursor: str | None,
    count: bool, tz: Any, ttl: float, max_age: int, filename: str,
) -> Response:
    """A time series dataset as a JSON page (with a next link), a streamed CSV/Parquet export of the whole
    (capped) range, or a spreadsheet of it when it is small enough."""
    town = getattr(flt, "town", None)
    sensors = sensor_index(ctx.registry, town) if ds.per_sensor else None
    # Rows of an ODbL source (a resident's choice, sensor.community) make the answer ODbL as a whole
    # (core/provenance.py): said in the envelope, the headers and the spreadsheet's about sheet.
    licence, licence_meta = answer_licence(flt, sensors)

    def finish(rows: list[list[Any]]) -> list[list[Any]]:
        """Rows as stored ``[time, *tags, *fields]`` → the dataset's columns: the sensor's network and trust at
        the end (every per-sensor output shows them), the local date after the time."""
        if sensors is not None:
            append_network_trust(rows, 1 + ds.tag_keys.index("sensor"), sensors)
        if ds.has_date:
            for row in rows:
                row.insert(1, local_date(row[0], tz))
        return rows

    async def finished(batches: AsyncIterator[list[list[Any]]]) -> AsyncIterator[list[list[Any]]]:
        async for batch in batches:
            yield finish(batch)
    if fmt == "xlsx":
        if cursor is not None or limit is not None:
            raise bad_request("limit and cursor page JSON answers; a spreadsheet holds the whole range",
                              "not_paginated")

        async def make_xlsx() -> Cached:
            async with ctx.slots.hold(ctx.client):
                rows: list[list[Any]] = []
                async for batch in ctx.store.iter_pages(ds, flt, ctx.config.stream_page_rows):
                    rows.extend(batch)
                    if len(rows) > XLSX_MAX_ROWS:
                        break
                finish(rows)
                last = await ctx.store.last_update(ds, town)
                return xlsx_entry(ctx, ds, rows, last, style, filename, licence)

        entry = await ctx.cache.get_or_build(ctx.cache_key, ttl, make_xlsx)
        return conditional(ctx.request, entry, max_age, ctx.cache.clock())
    if fmt in ("csv", "parquet"):
        if cursor is not None or limit is not None:
            raise bad_request("limit and cursor page JSON answers; CSV and Parquet export the whole range "
                              "(narrow it with from/to)", "not_paginated")
        # A whole-range export is the costliest answer: it takes one of the shared expensive slots for as
        # long as it streams (503 when they and their queue are taken, 429 past the client's share).
        ticket = await ctx.slots.acquire(ctx.client)
        try:
            last = await ctx.store.last_update(ds, town)
            batches = finished(ctx.store.iter_pages(ds, flt, ctx.config.stream_page_rows))
            return stream_export(ctx, ds, fmt, style, {}, batches, filename, last, max_age, ticket, licence)
        except BaseException:
            ticket.release()
            raise

    size = ctx.config.default_page_size if limit is None else limit
    if size > ctx.config.max_page_size:
        raise bad_request(f"limit={size} is above the page-size cap of {ctx.config.max_page_size}; follow the "
                          "'next' links, or export as CSV or Parquet for bulk", "page_too_large")
    cur = Cursor.parse(cursor) if cursor else None

    async def build() -> tuple[Any, int | None, str]:
        held = ctx.store.held_page(ds, flt, size, cur) if _held_layout(ds) else None
        data: Any
        if held is not None:
            # Held rows come with their tags and fields already written as JSON: only the time, date, network
            # and trust are written per answer (formats.held_json_rows; the same bytes as below).
            rows, texts, times, nxt = held
            data = held_json_rows(ds, rows, texts, times, style, tz,
                                  _Tails(sensors) if sensors is not None else None, flt.sensor)
        else:
            rows, nxt = await ctx.store.page(ds, flt, size, cur)
            data = json_rows(ds, finish(rows), style)
        last = await ctx.store.last_update(ds, town)
        next_url = ctx.url_with(cursor=nxt.encode()) if nxt else None
        extra: dict[str, Any] = {"returned": len(rows), "next": next_url}
        if count:
            extra["count"] = await ctx.store.count(ds, flt)
        meta = ctx.meta(last, **extra, **licence_meta)
        # RFC 8288: the next page in a header too, for clients that page without reading the body.
        links = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
        if licence is not None:
            links[LICENCE_HEADER] = licence["id"]
        return envelope(meta, data), last, "application/json", links

    return await cached_json(ctx, ttl, max_age, build)


_HELD_LAYOUT: dict[str, bool] = {}


def _held_layout(ds: Dataset) -> bool:
    """:func:`.formats.held_layout`, once per dataset (its columns are fixed)."""
    ok = _HELD_LAYOUT.get(ds.id)
    if ok is None:
        ok = _HELD_LAYOUT[ds.id] = held_layout(ds)
    return ok


class _Tails(dict[Any, bytes]):
    """A row's JSON end per sensor id: its network and trust, as :func:`append_network_trust` adds them (an
    unregistered sensor is the town's), written at the first row of each sensor (a lookup for the others)."""

    def __init__(self, sensors: dict[str, Sensor]) -> None:
        super().__init__()
        self.sensors = sensors

    def __missing__(self, sensor: Any) -> bytes:
        s = self.sensors.get(sensor)
        text = self[sensor] = b',"network":' + dumps(network_of(s)) + b',"trust":' + dumps(trust_of(s)) + b"}"
        return text


async def _one(rows: list[list[Any]]) -> AsyncIterator[list[list[Any]]]:
    if rows:
        yield rows


async def table_response(ctx: Ctx, ds: Dataset, fmt: str, style: Style, build: Callable[[], Awaitable[
        tuple[Any, ...]]], *, ttl: float, max_age: int, filename: str) -> Response:
    """A small dataset computed in full (rows in ``ds.names`` order), cached and served with an ETag in
    JSON, CSV, Parquet or XLSX. ``build`` may add a fourth element: the JSON array of the rows already written
    (:func:`.formats.held_json_rows`), which a JSON answer then holds as it is."""

    async def make() -> Cached:
        rows, last_ms, extra, *written = await build()
        if fmt == "xlsx":
            return xlsx_entry(ctx, ds, rows, last_ms, style, filename)
        if fmt == "csv":
            body = b"".join([chunk async for chunk in dataset_csv(ds, _one(rows), style)])
        elif fmt == "parquet":
            body = b"".join([chunk async for chunk in parquet_stream(ds, _one(rows), style.tz)])
        else:
            data = written[0] if written else json_rows(ds, rows, style)
            body = dumps(envelope(ctx.meta(last_ms, returned=len(rows), **extra), data))
        headers = {"Last-Modified": lm} if (lm := http_date(last_ms)) else {}
        if fmt != "json":
            headers["Content-Disposition"] = f'attachment; filename="{filename}.{EXTENSIONS[fmt]}"'
        return build_entry(body, MEDIA_TYPES[fmt], headers)

    entry = await ctx.cache.get_or_build(ctx.cache_key, ttl, make)
    return conditional(ctx.request, entry, max_age, ctx.cache.clock())
