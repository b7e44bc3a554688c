"""Monthly archives (the contract is :mod:`heatwatch.core.archives`): a town's closed month of each dataset as
CSV.gz and Parquet, with size, SHA-256 and row count, re-issued as a new version when late data changed it.

A month closes ``HEATWATCH_ANALYTICS_ARCHIVE_DELAY_DAYS`` (3) days after its last local day: by then the daily job
has redone its last days, the last day's Tx window (06:00 UTC the next day) has closed and the D…D+2 forward
fields are known. The daily run (06:40 UTC, after the daily job) archives every closed month not archived yet and
re-checks the last ``HEATWATCH_ANALYTICS_ARCHIVE_RECHECK_MONTHS`` (3): when the database's counts of a month differ
from what its current version recorded, the month is rebuilt. A recompute request (``heatwatch backfill``, the
api's admin recompute, a contributor's withdrawal) rebuilds the archived months it touched. A rebuild whose files
are byte for byte the current version's issues nothing; otherwise it becomes version N+1 with a note saying, per
dataset, what changed. Files are never rewritten: a version's bytes stay what their checksum says.

Two exceptions to "nothing is removed": a dataset whose rebuild has *fewer* rows than the current version (raw
readings past ``HEATWATCH_RAW_RETENTION``) keeps the current version's file, so an archive outlives the raw
retention; and a contributor's withdrawal deletes the files of the superseded versions that held the erased sensor
(the manifest keeps their entry, marked withdrawn), since erasure must reach the archives too.

Rows are written in (time, tags) order, gzip without a timestamp: the same data gives the same bytes, which is
what makes the checksum comparison mean "the data changed".
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from heatwatch.core import archives as A
from heatwatch.core.datasets import ARCHIVED, DAILY, TOWN_DAILY, Dataset
from heatwatch.core.influx import InfluxClient, ident
from heatwatch.core.logging import get_logger
from heatwatch.core.measurements import MEASUREMENTS, READING
from heatwatch.core.model import Sensor, Town
from heatwatch.core.provenance import ETALAB, combined_licence, licence_of, sources
from heatwatch.core.public import append_network_trust
from heatwatch.core.registry import Registry
from heatwatch.core.tabular import UTC_STYLE, ParquetRenderer, dataset_csv_renderer
from heatwatch.core.trust import counts_in_town

log = get_logger("heatwatch.analytics.archives")

#: Rows one statement may return; a window holding more is split in two (readings of a dense network).
WINDOW_CAP = 500_000
DAY_MS = 86_400_000


@dataclass(slots=True)
class Outcome:
    town: str
    month: str
    action: str  # issued, unchanged, skipped
    version: int | None = None
    note: str = ""
    rows: dict[str, int] = field(default_factory=dict)


def _ns(ms: int) -> int:
    return ms * 1_000_000


class Archiver:
    def __init__(self, client: InfluxClient, towns: Mapping[str, Town], data_dir: Path, *, delay_days: int = 3,
                 recheck_months: int = 3, clock: Callable[[], datetime] | None = None,
                 registry: Registry | None = None) -> None:
        self.client = client
        #: the sensors' network and trust in per-sensor files, and which count in the town's tropical nights
        self.registry = registry
        self.towns = towns
        self.data_dir = data_dir
        self.delay_days = delay_days
        self.recheck_months = recheck_months
        self.clock = clock or (lambda: datetime.now(UTC))

    # which months -------------------------------------------------------------------------------------------

    def last_closed(self, town: Town, now: datetime) -> str:
        """The newest month of ``town`` that has closed at ``now``."""
        local = (now.astimezone(ZoneInfo(town.timezone)) - timedelta(days=self.delay_days)).date()
        first_of_month = local.replace(day=1)
        return A.month_name(first_of_month - timedelta(days=1))

    async def first_month(self, town: Town) -> str | None:
        """The month of the town's oldest stored row (readings or hourly, whichever is older)."""
        oldest: int | None = None
        for m, f in ((READING, "temperature"), (MEASUREMENTS["hourly"], "t_mean")):
            rows = await self.client.query_records(
                f"SELECT {ident(f)} FROM {self.client.table(m)} WHERE time >= $since AND {ident('town')} = $town "
                "ORDER BY time ASC LIMIT 1", {"since": 0, "town": town.id})
            if rows:
                t = int(rows[0]["time"])
                oldest = t if oldest is None else min(oldest, t)
        if oldest is None:
            return None
        return A.month_name(datetime.fromtimestamp(oldest / 1000, ZoneInfo(town.timezone)).date())

    async def run(self) -> list[Outcome]:
        """The scheduled run: archive every closed month not archived yet, re-check the recent ones."""
        now = self.clock()
        out: list[Outcome] = []
        for town in self.towns.values():
            first = await self.first_month(town)
            if first is None:
                continue
            last = self.last_closed(town, now)
            recent = self._months_back(last, self.recheck_months)
            month = first
            while month <= last:
                manifest = A.read_manifest(self.data_dir, town.id, month)
                if manifest is None:
                    out.append(await self.build(town.id, month, reason="first issue"))
                elif month in recent:
                    current = manifest.current
                    counts = await self.fingerprint(town, month)
                    if current is None or counts != current.rows_fingerprint():
                        out.append(await self.build(town.id, month, reason="late data"))
                month = A.next_month(month)
        return out

    @staticmethod
    def _months_back(last: str, n: int) -> set[str]:
        months, y, m = set(), *A.parse_month(last)
        for _ in range(n):
            months.add(f"{y:04d}-{m:02d}")
            y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        return months

    def months_of(self, first: date, last: date) -> list[str]:
        out, month = [], A.month_name(first)
        while month <= A.month_name(last):
            out.append(month)
            month = A.next_month(month)
        return out

    async def recheck(self, towns: list[str], first: date, last: date, *, erased: list[str] | None = None
                      ) -> list[Outcome]:
        """After a recompute of [first, last] (or an erasure): rebuild the archived months it touched."""
        out = []
        for town in towns:
            for month in self.months_of(first, last):
                if A.read_manifest(self.data_dir, town, month) is None:
                    continue
                reason = f"erasure of {', '.join(erased)}" if erased else f"recomputed {first}…{last}"
                out.append(await self.build(town, month, reason=reason, erase=bool(erased)))
        return out

    async def fingerprint(self, town: Town, month: str) -> dict[str, int]:
        """Stored values per dataset of the month (COUNT of every field, summed): what a re-check compares."""
        start, end = A.month_bounds(month, town.timezone)
        out: dict[str, int] = {}
        for ds in ARCHIVED:
            m = MEASUREMENTS[ds.measurement]
            rows = await self.client.query_records(
                f"SELECT COUNT(*) FROM {self.client.table(m)} WHERE time >= $start AND time < $end AND "
                f"{ident('town')} = $town LIMIT 1", {"start": _ns(start), "end": _ns(end), "town": town.id})
            out[ds.id] = sum(int(v) for r in rows for k, v in r.items() if k.startswith("count_") and v)
        return out

    # reading -------------------------------------------------------------------------------------------------

    async def _rows(self, ds: Dataset, town: str, start: int, end: int) -> list[list[Any]]:
        """Rows ``[time, *tags, *fields]`` in [start, end), in (time, tags) order; split while above the cap."""
        cols = [ident(k) for k in ds.tag_keys] + [ident(f) for f in ds.fields]
        q = (f"SELECT {', '.join(cols)} FROM {self.client.qualified(ds.measurement, ds.rp)} WHERE time >= $start "
             f"AND time < $end AND {ident('town')} = $town ORDER BY time ASC LIMIT {WINDOW_CAP + 1}")
        series = await self.client.query_series(q, {"start": _ns(start), "end": _ns(end), "town": town})
        values = series[0].values if series else []
        if len(values) > WINDOW_CAP and end - start > 1:
            mid = start + (end - start) // 2
            return await self._rows(ds, town, start, mid) + await self._rows(ds, town, mid, end)
        if not series:
            return []
        wanted = ["time", *ds.tag_keys, *ds.fields]
        idx = [series[0].columns.index(c) if c in series[0].columns else None for c in wanted]
        rows = [[r[i] if i is not None else None for i in idx] for r in values]
        ntags = len(ds.tag_keys)
        rows.sort(key=lambda r: (r[0], *("" if v is None else str(v) for v in r[1:1 + ntags])))
        return rows

    async def _batches(self, ds: Dataset, town: Town, start: int, end: int) -> AsyncIterator[list[list[Any]]]:
        """The month's rows of ``ds`` in the exports' column order, a day (readings) or the month at a time."""
        step = DAY_MS if ds.measurement == READING.name else end - start
        tz = ZoneInfo(town.timezone)
        sensors: dict[str, Sensor] = ({s.id: s for s in self.registry.list(town=town.id)}
                                      if self.registry is not None else {})
        a = start
        while a < end:
            b = min(end, a + step)
            rows = await self._rows(ds, town.id, a, b)
            if ds.per_sensor:
                append_network_trust(rows, 1 + ds.tag_keys.index("sensor"), sensors)
            if ds.has_date:
                for r in rows:
                    r.insert(1, _local_date(r[0], tz))
            if ds.id == TOWN_DAILY.id:
                await self._older_nights(town.id, rows, a, b, tz, sensors)
            yield rows
            a = b

    async def _older_nights(self, town: str, rows: list[list[Any]], start: int, end: int, tz: ZoneInfo,
                            sensors: Mapping[str, Sensor]) -> None:
        """Days stored before ``town_daily`` held its tropical-night counts get ``tropical_nights`` counted from
        ``daily`` (the sensors the town's values count, by the registry's current trust, as /v1/indices does for
        them); days stored since carry their own."""
        at = TOWN_DAILY.names.index("tropical_nights")
        older = [r for r in rows if r[at] is None]
        if not older:
            return
        tropical: Counter[str] = Counter()
        flag = 1 + len(DAILY.tag_keys) + DAILY.fields.index("tropical_night")  # rows have no date column yet
        who = 1 + DAILY.tag_keys.index("sensor")
        for r in await self._rows(DAILY, town, start, end):
            if r[flag] is True and counts_in_town(sensors.get(r[who])):
                tropical[_local_date(r[0], tz)] += 1
        for r in older:
            r[at] = tropical.get(r[1], 0)

    async def licence(self, ds: Dataset, town: Town, start: int, end: int) -> dict[str, str]:
        """The licence the month's rows of ``ds`` are offered under, known before the Parquet file's schema is
        written: per-sensor rows, the combined licence of the sensors that have rows in the month (the ODbL when
        one is an ODbL source: share-alike); computed datasets, the instance's (produced works, docs/citizens.md)."""
        if not ds.per_sensor or self.registry is None:
            return ETALAB
        odbl = {s.id: s for s in self.registry.list(town=town.id, include_retired=True)
                if licence_of(s)["id"] != ETALAB["id"]}
        if not odbl:  # no other licence in the town: no need to ask which sensors have rows
            return ETALAB
        series = await self.client.query_series(
            f"SELECT COUNT(*) FROM {self.client.qualified(ds.measurement, ds.rp)} WHERE time >= $start AND "
            f"time < $end AND {ident('town')} = $town GROUP BY {ident('sensor')}",
            {"start": _ns(start), "end": _ns(end), "town": town.id})
        present = {s.tags.get("sensor") for s in series}
        return combined_licence(sources(odbl[i] for i in sorted(present & odbl.keys())))

    # writing -------------------------------------------------------------------------------------------------

    async def _write(self, ds: Dataset, town: Town, start: int, end: int, folder: Path,
                     licence: dict[str, str]) -> tuple[int, Path, Path]:
        csv_path, pq_path = folder / f"{ds.id}.csv.gz", folder / f"{ds.id}.parquet"
        rows = 0
        csv_r = dataset_csv_renderer(ds, UTC_STYLE)
        pq_r = ParquetRenderer(ds, licence=licence)  # the schema's licence: the rows' (core/provenance.py)
        # Local disk, written a day of rows at a time between awaits: no thread needed for these writes.
        with open(csv_path, "wb") as raw_csv, open(pq_path, "wb") as pq_file:  # noqa: ASYNC230
            # mtime=0 and no file name: the same rows always give the same bytes (and checksum).
            with gzip.GzipFile(filename="", fileobj=raw_csv, mode="wb", mtime=0, compresslevel=6) as gz:
                gz.write(csv_r.head())
                async for batch in self._batches(ds, town, start, end):
                    if not batch:
                        continue
                    rows += len(batch)
                    pq_file.write(pq_r.batch(batch))  # before the CSV renderer rewrites the rows in place
                    gz.write(csv_r.batch(batch))
            pq_file.write(pq_r.close())
        return rows, csv_path, pq_path

    async def build(self, town_id: str, month: str, *, reason: str, erase: bool = False) -> Outcome:
        """Write the month's files; issue them as a new version unless they equal the current one."""
        town = self.towns[town_id]
        start, end = A.month_bounds(month, town.timezone)
        manifest = A.read_manifest(self.data_dir, town_id, month) or A.Manifest(
            town_id, month, town.timezone, A.iso(start), A.iso(end))
        current = manifest.current
        folder = A.month_dir(self.data_dir, town_id, month)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".building"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        number = max((v.version for v in manifest.versions), default=0) + 1
        files: list[A.ArchiveFile] = []
        rows: dict[str, int] = {}
        changes: list[str] = []
        try:
            for ds in ARCHIVED:
                lic = await self.licence(ds, town, start, end)
                n, csv_path, pq_path = await self._write(ds, town, start, end, tmp, lic)
                old = {f.format: f for f in (current.files if current else []) if f.dataset == ds.id}
                old_rows = current.rows.get(ds.id) if current else None
                if current is not None and old_rows is not None and n < old_rows and not erase:
                    # Fewer rows than issued: the raw retention took them. Keep the issued file.
                    files += list(old.values())
                    rows[ds.id] = old_rows
                    changes.append(f"{ds.id}: kept v{current.version} ({old_rows} rows; {n} left in the database)")
                    continue
                rows[ds.id] = n
                for fmt, path in (("csv.gz", csv_path), ("parquet", pq_path)):
                    files.append(A.ArchiveFile(ds.id, fmt, f"v{number}/{path.name}", path.stat().st_size,
                                               _sha256(path), n, A.FORMATS[fmt],
                                               "gzip" if fmt == "csv.gz" else None, lic["id"]))
                if current is not None and old.get("csv.gz") and old["csv.gz"].sha256 != files[-2].sha256:
                    changes.append(f"{ds.id}: {old_rows} → {n} rows" if old_rows != n else f"{ds.id}: values changed")
                elif (current is not None and old.get("parquet") and old["parquet"].sha256 != files[-1].sha256
                      and old["parquet"].licence != lic["id"]):
                    changes.append(f"{ds.id}: under {lic['title']}")
            fresh = [f for f in files if f.path.startswith(f"v{number}/")]
            if current is not None and all(
                    any(o.dataset == f.dataset and o.format == f.format and o.sha256 == f.sha256
                        for o in current.files) for f in fresh):
                shutil.rmtree(tmp)
                # Same bytes, so the same licence: recorded where the entry predates licences being recorded.
                licences = {(f.dataset, f.format, f.sha256): f.licence for f in fresh}
                unrecorded = [o for o in current.files if o.licence is None
                              and (o.dataset, o.format, o.sha256) in licences]
                for o in unrecorded:
                    o.licence = licences[(o.dataset, o.format, o.sha256)]
                if unrecorded:
                    A.write_manifest(self.data_dir, manifest)
                return Outcome(town_id, month, "unchanged", current.version, rows=rows)
            # The new version's folder holds only its own files; carried-over ones stay where they were issued.
            for f in files:
                if f.path.startswith(f"v{number}/"):
                    continue
                stale = tmp / Path(f.path).name
                stale.unlink(missing_ok=True)
            final = folder / f"v{number}"
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        note = ("first issue" if current is None else
                f"re-issued ({reason}); replaces v{current.version}: " + ("; ".join(changes) or "files changed"))
        fp = await self.fingerprint(town, month)
        manifest.versions.append(A.Version(number, A.iso(int(self.clock().timestamp() * 1000)), note, files, rows,
                                           fingerprint=fp))
        if erase:
            self._withdraw_older(manifest, number)
        A.write_manifest(self.data_dir, manifest)
        log.info("archives.issued", town=town_id, month=month, version=number, note=note, rows=rows)
        return Outcome(town_id, month, "issued", number, note, rows)

    def _withdraw_older(self, manifest: A.Manifest, keep: int) -> None:
        """Erasure: the files of every version before ``keep`` are deleted; their entries stay, marked withdrawn."""
        folder = A.month_dir(self.data_dir, manifest.town, manifest.month)
        kept = {f.path for v in manifest.versions if v.version == keep for f in v.files}
        for v in manifest.versions:
            if v.version >= keep:
                continue
            for f in v.files:
                if f.path not in kept:
                    (folder / f.path).unlink(missing_ok=True)
            v.withdrawn = True
            v.note += " — withdrawn: a contributor's data was erased"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _local_date(ms: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).date().isoformat()


async def archive_months(archiver: Archiver, towns: list[str], first: str, last: str, *, force: bool
                         ) -> list[Outcome]:
    """``heatwatch archives build``: every month of [first, last] of ``towns``, rebuilt (``force``) or only when
    not archived yet."""
    out = []
    for town in towns:
        month = first
        while month <= last:
            if force or A.read_manifest(archiver.data_dir, town, month) is None:
                out.append(await archiver.build(town, month, reason="rebuilt on request"))
            month = A.next_month(month)
        await asyncio.sleep(0)
    return out
