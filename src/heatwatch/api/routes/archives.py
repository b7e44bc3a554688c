"""Monthly archives (written by analytics: ``core/archives.py``): listed at ``/v1/archives``, each file served at a
stable URL (the month's current version) and at a versioned one (immutable), with ``Range`` support."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import FileResponse, Response

from heatwatch.core import archives as A
from heatwatch.core.provenance import LICENCES

from ..deps import TOWN_PATTERN, CtxDep, FormatParam, StyleDep, known_town
from ..errors import ApiError, not_found
from ..formats import JSONBytes, choose_format, envelope
from ..respond import cached_csv, cached_json

router = APIRouter(prefix="/v1", tags=["archives"])

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
FILE_PATTERN = r"^[a-z_]{1,40}\.(csv\.gz|parquet)$"
ARCHIVES_TTL_S = 60.0
LIST_COLUMNS = ["town", "month", "dataset", "format", "version", "issued", "bytes", "sha256", "rows", "licence",
                "url", "version_url", "note"]

TownPath = Annotated[str, Path(pattern=TOWN_PATTERN, max_length=64)]
MonthPath = Annotated[str, Path(pattern=MONTH_PATTERN, description="local calendar month, YYYY-MM")]
FilePath = Annotated[str, Path(pattern=FILE_PATTERN, description="<dataset>.csv.gz or <dataset>.parquet")]


def stable_url(base: str, town: str, month: str, name: str) -> str:
    return f"{base}/v1/archives/{town}/{month}/{name}"


def version_url(base: str, town: str, month: str, f: A.ArchiveFile) -> str:
    return f"{base}/v1/archives/{town}/{month}/{f.path}"


def archives_version(ctx: Any) -> str:
    """Changes whenever a month is issued, re-issued or withdrawn (its manifest is replaced: a new modification
    time), so a cached listing or catalogue never gives a checksum a stable URL no longer serves."""
    stamps = [p.stat().st_mtime_ns for p in A.root(ctx.settings.data_dir).glob(f"*/*/{A.MANIFEST}")]
    return f"{len(stamps)}.{max(stamps, default=0)}"


def file_licence(f: A.ArchiveFile) -> dict[str, str] | None:
    """The licence the manifest records for the file's rows (None: issued before licences were recorded)."""
    if f.licence is None:
        return None
    return LICENCES.get(f.licence) or {"id": f.licence, "spdx": f.licence, "title": f.licence, "url": ""}


def describe(base: str, m: A.Manifest) -> dict[str, Any]:
    """A month as the listing and the catalogue show it."""
    current = m.current
    files = []
    for f in current.files if current else []:
        name = f"{f.dataset}.{f.format}"
        files.append({"dataset": f.dataset, "format": f.format, "media_type": f.media_type,
                      "compression": f.compression, "bytes": f.bytes, "sha256": f.sha256, "rows": f.rows,
                      "licence": file_licence(f),
                      "url": stable_url(base, m.town, m.month, name), "version_url": version_url(base, m.town,
                                                                                                  m.month, f)})
    return {"town": m.town, "month": m.month, "start": m.start, "end": m.end, "timezone": m.timezone,
            "version": current.version if current else None, "issued": current.issued if current else None,
            "note": current.note if current else None, "files": files,
            "versions": [{"version": v.version, "issued": v.issued, "note": v.note, "withdrawn": v.withdrawn}
                         for v in m.versions]}


def manifests(ctx: Any, town: str | None) -> list[A.Manifest]:
    return [m for m in A.list_manifests(ctx.settings.data_dir, town) if m.town in ctx.settings.towns]


@router.get("/archives", summary="Monthly archives",
            description="Every archived month of each town: per dataset (readings, hourly, daily, indices, alerts) "
                        "and format (CSV.gz, Parquet), the byte size, SHA-256 and row count of the current version, "
                        "its stable URL and its versioned (immutable) URL, and the version history with the note of "
                        "each re-issue. Files are written by analytics when a month closes (docs/interop.md).")
async def list_archives(ctx: CtxDep, style: StyleDep, town: Annotated[str | None, Query(
        pattern=TOWN_PATTERN, max_length=64, description="town id; all towns when absent")] = None,
                        format: FormatParam = None) -> Response:
    if town is not None:
        known_town(ctx.settings, town)
    fmt = choose_format(ctx.request, format, ["json", "csv"])

    async def build() -> tuple[Any, int | None, str]:
        months = [describe(ctx.base_url, m) for m in manifests(ctx, town)]
        if fmt == "csv":
            rows = [{"town": m["town"], "month": m["month"], "version": m["version"], "issued": m["issued"],
                     "note": m["note"], **f, "licence": (f["licence"] or {}).get("id")}
                    for m in months for f in m["files"]]
            return rows, None, "text/csv"
        return envelope(ctx.meta(None, returned=len(months)), months), None, JSONBytes.media_type

    version = archives_version(ctx)
    if fmt == "csv":
        return await cached_csv(ctx, build, LIST_COLUMNS, style, ttl=ARCHIVES_TTL_S, max_age=60, version=version)
    return await cached_json(ctx, ARCHIVES_TTL_S, 60, build, version=version)


def _file_response(ctx: Any, m: A.Manifest, f: A.ArchiveFile, immutable: bool) -> Response:
    path = A.file_path(ctx.settings.data_dir, m.town, m.month, f.path)
    if not path.is_file():
        raise ApiError(410, "gone", "this archive file was removed (a contributor's data was erased)")
    digest = base64.b64encode(bytes.fromhex(f.sha256)).decode()
    headers = {
        "ETag": f'"{f.sha256}"',
        # RFC 9530: the checksum the catalogue publishes, on the wire too.
        "Repr-Digest": f"sha-256=:{digest}:",
        "Cache-Control": "public, max-age=31536000, immutable" if immutable else "public, max-age=3600",
        "Content-Disposition": f'attachment; filename="heatwatch-{m.town}-{m.month}-{f.dataset}.{f.format}"',
    }
    media = "application/gzip" if f.format == "csv.gz" else f.media_type
    # Starlette's FileResponse answers Range (206, multipart for several ranges, 416) and If-Range itself.
    return FileResponse(path, media_type=media, headers=headers)


def _find(ctx: Any, town: str, month: str) -> A.Manifest:
    known_town(ctx.settings, town)
    m = A.read_manifest(ctx.settings.data_dir, town, month)
    if m is None:
        raise not_found(f"no archive of {town} for {month}: see /v1/archives")
    return m


@router.get("/archives/{town}/{month}/{file}", summary="An archive file (current version)",
            responses={200: {"content": {"application/gzip": {}, "application/vnd.apache.parquet": {}}},
                       206: {"description": "the requested Range"}, 404: {"description": "no such archive"},
                       416: {"description": "a Range outside the file"}},
            response_class=Response,
            description="The month's current version of a dataset's file; the URL stays the same when late data "
                        "re-issues the month (the ETag is the SHA-256). Byte ranges with `Range`.")
async def archive_file(ctx: CtxDep, town: TownPath, month: MonthPath, file: FilePath) -> Response:
    m = _find(ctx, town, month)
    current = m.current
    found = [f for f in (current.files if current else []) if f"{f.dataset}.{f.format}" == file]
    if not found:
        raise not_found(f"no {file} in the archive of {town} {month}")
    return _file_response(ctx, m, found[0], immutable=False)


@router.get("/archives/{town}/{month}/v{version}/{file}", summary="An archive file (one version, immutable)",
            responses={200: {"content": {"application/gzip": {}, "application/vnd.apache.parquet": {}}},
                       206: {"description": "the requested Range"}, 404: {"description": "no such archive"},
                       410: {"description": "withdrawn"}, 416: {"description": "a Range outside the file"}},
            response_class=Response,
            description="One version's file: its bytes never change (cached for a year).")
async def archive_version_file(ctx: CtxDep, town: TownPath, month: MonthPath,
                               version: Annotated[int, Path(ge=1, le=100_000)], file: FilePath) -> Response:
    m = _find(ctx, town, month)
    for v in m.versions:
        if v.version != version:
            continue
        for f in v.files:
            if f"{f.dataset}.{f.format}" == file:
                if v.withdrawn:
                    raise ApiError(410, "gone", f"v{version} of {town} {month} was withdrawn: {v.note}")
                return _file_response(ctx, m, f, immutable=True)
    raise not_found(f"no {file} in v{version} of the archive of {town} {month}")
