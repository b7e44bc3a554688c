"""Monthly archives: the contract between analytics, which writes them, and the api, which serves them.

When a town's month closes, analytics writes one file per dataset (readings, hourly, daily, indices, alerts) and
format (CSV.gz, Parquet) — the same columns, types and rendering as the api's exports and Table Schemas
(:mod:`.datasets`, :mod:`.tabular`) — and a manifest with each file's byte size, SHA-256, row count and licence.
Files are immutable: late data re-issues the month as a new version beside the old one, with a note saying what
changed.

Layout under ``$HEATWATCH_DATA_DIR/archives``::

    <town>/<YYYY-MM>/manifest.json          every version of the month, newest last
    <town>/<YYYY-MM>/v<N>/<dataset>.csv.gz  version N's files
    <town>/<YYYY-MM>/v<N>/<dataset>.parquet

The manifest is replaced atomically (write, fsync, rename), after the version's files are in place, so a reader
never sees a version whose files are missing. Months are the town's local calendar months.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .datasets import ARCHIVED

DIRNAME = "archives"
MANIFEST = "manifest.json"
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
#: Formats each dataset is archived in: (extension, media type).
FORMATS: dict[str, str] = {"csv.gz": "text/csv", "parquet": "application/vnd.apache.parquet"}
#: The datasets archived, by id, in the order they are listed.
DATASET_IDS: tuple[str, ...] = tuple(ds.id for ds in ARCHIVED)


@dataclass(slots=True)
class ArchiveFile:
    dataset: str
    format: str  # csv.gz or parquet
    path: str  # relative to the month's folder: v<N>/<dataset>.<format>
    bytes: int
    sha256: str
    rows: int
    media_type: str
    compression: str | None = None  # gzip for csv.gz (the CSV inside is the media type)
    #: the licence id the file's rows are offered under (``core/provenance.py`` combined_licence over the sensors
    #: whose rows it holds; computed datasets: the instance's); None in files issued before it was recorded
    licence: str | None = None


@dataclass(slots=True)
class Version:
    version: int
    issued: str  # ISO 8601 UTC
    note: str
    files: list[ArchiveFile]
    #: rows per dataset when issued (what a later check compares with the database's counts)
    rows: dict[str, int] = field(default_factory=dict)
    #: stored values per dataset when issued (COUNT of every field, summed): what a re-check compares
    fingerprint: dict[str, int] = field(default_factory=dict)
    withdrawn: bool = False  # files removed (a contributor's erasure): listed for the record only

    def rows_fingerprint(self) -> dict[str, int]:
        return self.fingerprint


@dataclass(slots=True)
class Manifest:
    town: str
    month: str
    timezone: str
    start: str  # first instant of the month, UTC
    end: str  # first instant of the next month, UTC (exclusive)
    versions: list[Version] = field(default_factory=list)

    @property
    def current(self) -> Version | None:
        live = [v for v in self.versions if not v.withdrawn]
        return live[-1] if live else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        versions = [Version(**{**v, "files": [ArchiveFile(**f) for f in v["files"]]}) for v in raw.get("versions", [])]
        return cls(raw["town"], raw["month"], raw["timezone"], raw["start"], raw["end"], versions)


def root(data_dir: Path) -> Path:
    return data_dir / DIRNAME


def month_dir(data_dir: Path, town: str, month: str) -> Path:
    return root(data_dir) / town / month


def parse_month(text: str) -> tuple[int, int]:
    m = MONTH_RE.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a month (YYYY-MM)")
    return int(m.group(1)), int(m.group(2))


def month_name(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def next_month(month: str) -> str:
    y, m = parse_month(month)
    return f"{y + (m == 12):04d}-{(m % 12) + 1:02d}"


def month_bounds(month: str, tz: str) -> tuple[int, int]:
    """[start, end) of a local calendar month, epoch ms."""
    y, m = parse_month(month)
    zone = ZoneInfo(tz)
    ny, nm = parse_month(next_month(month))
    start = datetime(y, m, 1, tzinfo=zone)
    end = datetime(ny, nm, 1, tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_manifest(data_dir: Path, town: str, month: str) -> Manifest | None:
    path = month_dir(data_dir, town, month) / MANIFEST
    try:
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


def write_manifest(data_dir: Path, manifest: Manifest) -> None:
    folder = month_dir(data_dir, manifest.town, manifest.month)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MANIFEST}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(manifest.to_json(), f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MANIFEST)


def list_manifests(data_dir: Path, town: str | None = None) -> list[Manifest]:
    """Every month archived (of one town), oldest first."""
    base = root(data_dir)
    out: list[Manifest] = []
    if not base.is_dir():
        return out
    for town_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        if town is not None and town_dir.name != town:
            continue
        for mdir in sorted(p for p in town_dir.iterdir() if p.is_dir() and MONTH_RE.match(p.name)):
            m = read_manifest(data_dir, town_dir.name, mdir.name)
            if m is not None:
                out.append(m)
    return out


def file_path(data_dir: Path, town: str, month: str, relative: str) -> Path:
    return month_dir(data_dir, town, month) / relative
