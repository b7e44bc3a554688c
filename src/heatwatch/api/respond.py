"""Building answers: cached JSON with ETag, and streamed exports in any format."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from typing import Any

from starlette.responses import Response, StreamingResponse

from .cache import Cached, build_entry, conditional
from .datasets import Dataset
from .deps import Ctx
from .formats import EXTENSIONS, MEDIA_TYPES, csv_stream, dumps, json_stream, parquet_stream


def http_date(ms: int | None) -> str | None:
    return formatdate(ms / 1000, usegmt=True) if ms is not None else None


async def cached_json(ctx: Ctx, ttl: float, max_age: int,
                      build: Callable[[], Awaitable[tuple[Any, int | None, str]]]) -> Response:
    """``build`` returns (payload, last update ms, media type); the rendered bytes are cached, and the
    ETag lets clients revalidate with If-None-Match for a 304."""

    async def make() -> Cached:
        payload, last_ms, media_type = await build()
        headers = {"Last-Modified": lm} if (lm := http_date(last_ms)) else {}
        return build_entry(dumps(payload), media_type, headers)

    entry = await ctx.cache.get_or_build(ctx.cache_key, ttl, make)
    return conditional(ctx.request, entry, max_age)


def stream_export(ctx: Ctx, ds: Dataset, fmt: str, sep: str, meta: dict[str, Any],
                  batches: AsyncIterator[list[list[Any]]], filename: str, last_ms: int | None,
                  max_age: int = 60) -> StreamingResponse:
    if fmt == "csv":
        body = csv_stream(ds.names, batches, sep)
    elif fmt == "parquet":
        body = parquet_stream(ds, batches)
    else:
        body = json_stream(meta, ds, batches)
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}.{EXTENSIONS[fmt]}"',
        "Cache-Control": f"public, max-age={max_age}",
    }
    if (lm := http_date(last_ms)) is not None:
        headers["Last-Modified"] = lm
    media = MEDIA_TYPES[fmt]
    if fmt == "csv" and sep == ";":
        media = "text/csv; charset=utf-8; header=present"
    return StreamingResponse(body, media_type=media, headers=headers)


def csv_bytes(columns: list[str], rows: list[dict[str, Any]], sep: str) -> bytes:
    """A small CSV answer in one piece (RFC 4180, CRLF); BOM with ';' as in streamed exports."""
    import csv
    import io

    buf = io.StringIO()
    if sep == ";":
        buf.write("\ufeff")
    writer = csv.writer(buf, delimiter=sep, lineterminator="\r\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if (v := r.get(c)) is None else ("true" if v is True else "false" if v is False else v)
                         for c in columns])
    return buf.getvalue().encode("utf-8")


async def cached_csv(ctx: Ctx, build: Callable[[], Awaitable[tuple[Any, int | None, str]]], columns: list[str],
                     sep: str, ttl: float | None = None, max_age: int = 30) -> Response:
    async def make() -> Cached:
        rows, last_ms, _ = await build()
        headers = {"Last-Modified": lm} if (lm := http_date(last_ms)) else {}
        return build_entry(csv_bytes(columns, rows, sep), MEDIA_TYPES["csv"], headers)

    entry = await ctx.cache.get_or_build(ctx.cache_key, ctx.config.cache_ttl_latest_s if ttl is None else ttl, make)
    return conditional(ctx.request, entry, max_age)
