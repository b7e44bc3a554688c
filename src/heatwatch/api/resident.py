"""Resident aggregates: the recent ``daily`` and ``town_daily`` rows and the last-value store, held in the api's
memory so that an answer the cache has never seen costs no database round trip.

Open-data consumers ask for what no cache has seen (another sensor, range or format); each such answer used to be
a statement for InfluxDB (~3.5 ms of its CPU) plus the api's own work. A year of a 200-sensor town's daily rows is
~73 000 rows and its indices 365: a few tens of MB, read once. :class:`~.store.Store` answers from here whenever
the request is inside the window held (the last ``HEATWATCH_API_RESIDENT_DAYS`` days, 400 by default: every
default range), and from InfluxDB otherwise — older ranges, other datasets, or while this is not :attr:`ready`.

Staying true to InfluxDB:

* every time analytics rewrites or deletes a range of a town's aggregates (a scheduled run, a recompute, a
  command-line backfill, an erasure) it records the range (``aggregate_change``, ``core/changes.py``); this polls
  those points every ``HEATWATCH_API_RESIDENT_CHECK_S`` (0.1 s) and reads each announced range again: an answer
  reflects what analytics wrote a tenth of a second before (the cache, when on, keeps answers far longer);
* the last ``RECENT_DAYS`` days are read again every ``HEATWATCH_API_RESIDENT_REFRESH_S`` (60 s, the aggregates'
  cache lifetime) and the whole window every ``HEATWATCH_API_RESIDENT_RELOAD_S`` (15 min): what another writer than
  analytics puts in the database shows up within that time at most;
* the last-value store behind ``/v1/latest`` is read again every ``HEATWATCH_API_RESIDENT_LATEST_S`` (5 s; analytics
  refreshes it every 30 s, and the live feed carries newer readings);
* if the database cannot be read for ``STALE_CHECKS`` checks in a row and longer than three refresh periods, the
  rows are no longer used (answers go to InfluxDB, and fail as they would): never an answer silently stuck in the
  past.

Rows are kept exactly as :meth:`Store.page` reads them (``[time, *tags, *fields]``, InfluxDB's values), sorted by
time then sensor; every answer gets copies, since the renderers add columns in place — except JSON pages, which
join each row's tags and fields written once as JSON when the row is read (:func:`.formats.stored_json`, ~0.3 KB a
row) and only add the time, date, network and trust per answer (:func:`.formats.held_json_rows`).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from heatwatch.core.datasets import DAILY, TOWN_DAILY, Dataset
from heatwatch.core.logging import get_logger

from .formats import stored_json, stored_names
from .store import stored_rows

if TYPE_CHECKING:
    from .store import Filter, Store

log = get_logger("heatwatch.api.resident")

#: The datasets held (their ``Dataset.id``).
HELD: tuple[Dataset, ...] = (DAILY, TOWN_DAILY)
#: Days read again at each refresh: the days analytics' scheduled runs rewrite (today, yesterday, and the IBM
#: windows of the two days before).
RECENT_DAYS = 5
#: Aggregates are stamped at a local midnight up to a day ahead of UTC; the window reaches that far ahead.
AHEAD_MS = 2 * 86_400_000
#: A town holding more rows than this in the window is not held (answers go to InfluxDB): memory stays bounded.
MAX_ROWS = 2_000_000
#: Failed checks in a row after which the rows are no longer trusted (and longer than three refresh periods).
STALE_CHECKS = 3
#: Change points read per check: more means a backlog, and the whole window is read again instead.
MAX_CHANGES = 1000
#: How far back a check looks again, for a change point stamped before one already seen (analytics' clock, and a
#: write that took a moment to land).
OVERLAP_MS = 120_000


@dataclass(slots=True)
class Table:
    """One town's rows of one dataset, sorted by (time, sensor), with a per-sensor index, and each row's tags and
    fields as JSON members (:func:`.formats.stored_json`): a JSON page joins them instead of writing every value
    again for every answer."""

    rows: list[list[Any]]
    texts: list[bytes]
    times: list[int] = field(default_factory=list)
    by_sensor: dict[str, tuple[list[int], list[list[Any]], list[bytes]]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: list[list[Any]], sensor_at: int | None, names: list[str]) -> Table:
        rows = _sorted(rows, sensor_at)
        return cls.indexed(rows, [stored_json(names, row) for row in rows], sensor_at)

    @classmethod
    def indexed(cls, rows: list[list[Any]], texts: list[bytes], sensor_at: int | None) -> Table:
        table = cls(rows, texts, [r[0] for r in rows])
        if sensor_at is not None:
            table.by_sensor = _groups(rows, texts, sensor_at)
        return table

    def replace(self, start_ms: int, end_ms: int, fresh: list[list[Any]], sensor_at: int | None,
                names: list[str]) -> None:
        """Replace this table's rows of [start_ms, end_ms) by ``fresh`` (the range as read again, every row inside
        it), in place: the range's rows are spliced into the lists, and into each sensor's. Building the lists anew
        touched every row held (copying a year of 200 sensors' lists, ~30 ms on the event loop, every minute for the
        recent days: a stall every answer in flight waited out); a splice costs what the range holds. Readers only
        take slices, on the event loop, between two awaits: none sees a table half replaced."""
        a, b = bisect_left(self.times, start_ms), bisect_left(self.times, end_ms)
        fresh = _sorted(fresh, sensor_at)
        texts = [stored_json(names, row) for row in fresh]
        self.rows[a:b] = fresh
        self.texts[a:b] = texts
        self.times[a:b] = [r[0] for r in fresh]
        if sensor_at is None:
            return
        new = _groups(fresh, texts, sensor_at)
        for sensor in self.by_sensor.keys() | new.keys():
            new_times, new_rows, new_texts = new.get(sensor, ([], [], []))
            group = self.by_sensor.get(sensor)
            if group is None:
                self.by_sensor[sensor] = (new_times, new_rows, new_texts)
                continue
            times, rows, group_texts = group
            i, j = bisect_left(times, start_ms), bisect_left(times, end_ms)
            if i == j and not new_times:
                continue
            times[i:j] = new_times
            rows[i:j] = new_rows
            group_texts[i:j] = new_texts
            if not times:  # a sensor left with no row (erased) has no entry, as indexing from scratch gives
                del self.by_sensor[sensor]


def _groups(rows: list[list[Any]], texts: list[bytes], sensor_at: int
            ) -> dict[str, tuple[list[int], list[list[Any]], list[bytes]]]:
    """Rows (sorted by time) and their texts by sensor: each sensor's times, rows and texts, in time order."""
    groups: dict[str, tuple[list[int], list[list[Any]], list[bytes]]] = {}
    for row, text in zip(rows, texts, strict=True):
        group = groups.get(row[sensor_at] or "")
        if group is None:
            group = groups[row[sensor_at] or ""] = ([], [], [])
        group[0].append(row[0])
        group[1].append(row)
        group[2].append(text)
    return groups


def _keep_out_of_gc() -> None:
    """The rows held are ~100 000 lists that live for minutes: out of the collector's passes, which otherwise walk
    them all again each time the answers' short-lived objects trigger a full collection (freed rows are still
    freed by their reference counts: rows hold no cycles)."""
    gc.freeze()


def _sorted(rows: list[list[Any]], sensor_at: int | None) -> list[list[Any]]:
    """Rows as InfluxDB answered them, normalised (int times, one string object per id) and sorted by (time,
    sensor): InfluxDB does not order rows sharing a timestamp the same way twice."""
    for row in rows:
        row[0] = int(row[0])
        if isinstance(row[1], str):
            row[1] = sys.intern(row[1])
        if sensor_at is not None and isinstance(row[sensor_at], str):
            row[sensor_at] = sys.intern(row[sensor_at])
    if sensor_at is not None:
        rows.sort(key=lambda r: (r[0], r[sensor_at] or ""))
    else:
        rows.sort(key=lambda r: r[0])
    return rows


class Resident:
    """The rows held and what keeps them true (module doc). ``start()`` loads in the background; until the first
    load is in, :meth:`rows` answers None and the store reads InfluxDB."""

    def __init__(self, store: Store, towns: Iterable[str], *, days: int, check_s: float = 0.1,
                 refresh_s: float = 60.0, reload_s: float = 900.0, latest_s: float = 5.0,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.towns = tuple(sorted(towns))
        self.days = days
        self.check_s = check_s
        self.refresh_s = refresh_s
        self.reload_s = reload_s
        self.latest_s = latest_s
        self.clock = clock
        self.monotonic = monotonic
        self.start_ms: int | None = None
        self._tables: dict[tuple[str, str], Table] = {}
        self._latest: dict[str, dict[tuple[str, str], dict[str, Any]]] | None = None
        self._since_ms = 0
        self._seen: set[tuple[Any, ...]] = set()
        self._failures = 0
        self._ok_at = -1e18
        self._loaded_at = -1e18
        self._refreshed_at = -1e18
        self._latest_at = -1e18
        self._task: asyncio.Task[None] | None = None
        self._sensor_at = {ds.id: (1 + ds.tag_keys.index("sensor") if "sensor" in ds.tag_keys else None)
                           for ds in HELD}
        self._held = {ds.id for ds in HELD}
        self._names = {ds.id: stored_names(ds) for ds in HELD}
        self._qc_at = {ds.id: (1 + len(ds.tag_keys) + ds.fields.index("qc") if "qc" in ds.fields else None)
                       for ds in HELD}
        self.stats = {"loads": 0, "ranges": 0, "failures": 0}

    # What the store asks -------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Loaded, and the database was read recently enough to trust the rows."""
        if self.start_ms is None:
            return False
        return self._failures < STALE_CHECKS or self.monotonic() - self._ok_at < 3 * self.refresh_s

    def rows(self, ds: Dataset, flt: Filter, after_ms: int | None = None) -> list[list[Any]] | None:
        """Copies of the rows of ``flt`` (those after ``after_ms`` if given), in time order; None when they are not
        all held (another dataset, a range starting before the window, a filter on a tag not held, not ready)."""
        picked = self.select(ds, flt, after_ms)
        return None if picked is None else [row.copy() for row in picked[0]]

    def select(self, ds: Dataset, flt: Filter, after_ms: int | None = None
               ) -> tuple[list[list[Any]], list[bytes], list[int]] | None:
        """The rows :meth:`rows` copies, their JSON members (:func:`.formats.stored_json`) and their times: the held
        objects themselves, to be read and never changed."""
        if ds.id not in self._held or flt.town is None or flt.kind is not None or not self.ready:
            return None
        start = flt.start_ms if after_ms is None else max(flt.start_ms, after_ms + 1)
        if self.start_ms is None or flt.start_ms < self.start_ms:
            return None
        table = self._tables.get((flt.town, ds.id))
        if table is None:
            return None
        if flt.sensor is not None:
            times, rows, texts = table.by_sensor.get(flt.sensor, ([], [], []))
        else:
            times, rows, texts = table.times, table.rows, table.texts
        a, b = bisect_left(times, start), bisect_left(times, flt.end_ms)
        if not flt.selects_rows:
            return rows[a:b], texts[a:b], list(times[a:b])
        qc_at, sensor_at = self._qc_at[ds.id], self._sensor_at[ds.id]
        keeps = flt.keeps
        kept = [k for k in range(a, b) if keeps(rows[k][qc_at] if qc_at is not None else None,
                                                rows[k][sensor_at] if sensor_at is not None else None)]
        return [rows[k] for k in kept], [texts[k] for k in kept], [times[k] for k in kept]

    def newest(self, ds: Dataset, town: str | None) -> int | None:
        """Time of ``town``'s newest row of ``ds`` with its first field set, when held (None: ask InfluxDB)."""
        if ds.id not in self._held or town is None or not self.ready:
            return None
        table = self._tables.get((town, ds.id))
        if table is None:
            return None
        at = 1 + len(ds.tag_keys)
        return next((row[0] for row in reversed(table.rows) if row[at] is not None), None)

    def latest(self, town: str | None) -> dict[tuple[str, str], dict[str, Any]] | None:
        """The last-value store's rows (of one town, or all) by (town, sensor), as :func:`.store.stored_rows` makes
        them; None when not held. A new mapping each time; the rows are shared: read them, never change them."""
        if self._latest is None or not self.ready:
            return None
        if town is None:
            return {k: r for t in self.towns for k, r in self._latest.get(t, {}).items()}
        return dict(self._latest.get(town, {}))

    # Keeping the rows true ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # InfluxDB down or slow: the rows stay, then stop being trusted (ready)
                self._failures += 1
                self.stats["failures"] += 1
                if self._failures == 1 or self._failures % 600 == 0:  # the first, then about once a minute
                    log.warning("api.resident_refresh_failed", error=repr(exc), failures=self._failures)
            await asyncio.sleep(self.check_s)

    async def tick(self) -> None:
        """One check: the whole window when due, else the announced changes (and the recent days when due); the
        last-value store when due."""
        now = self.monotonic()
        if self.start_ms is None or now - self._loaded_at >= self.reload_s:
            await self.load()
        else:
            await self.apply_changes()
            if now - self._refreshed_at >= self.refresh_s:
                wall = int(self.clock() * 1000)
                for town in self.towns:
                    await self.read_range(town, wall - RECENT_DAYS * 86_400_000, wall + AHEAD_MS)
                self._refreshed_at = now
        if now - self._latest_at >= self.latest_s:
            await self.read_latest()
            self._latest_at = now
        self._failures = 0
        self._ok_at = self.monotonic()

    async def load(self) -> None:
        """Read the whole window of every town. Changes announced from a little before the read on are applied
        after it (a range read twice costs nothing but time)."""
        wall = int(self.clock() * 1000)
        since = wall - OVERLAP_MS
        start = wall - self.days * 86_400_000
        tables: dict[tuple[str, str], Table] = {}
        for town in self.towns:
            for ds in HELD:
                rows = await self.store.window_rows(ds, town, start, wall + AHEAD_MS, MAX_ROWS)
                if len(rows) > MAX_ROWS:
                    log.warning("api.resident_town_too_large", town=town, dataset=ds.id, cap=MAX_ROWS)
                    continue
                # Sorting, indexing and writing ~100 000 rows' JSON takes a few hundred ms: in a thread, so that
                # the event loop goes on answering meanwhile (the interpreter switches between them every 5 ms).
                tables[(town, ds.id)] = await asyncio.to_thread(Table.of, rows, self._sensor_at[ds.id],
                                                                self._names[ds.id])
        self._tables = tables
        _keep_out_of_gc()
        self.start_ms = start
        self._since_ms = since
        self._seen.clear()
        now = self.monotonic()
        self._loaded_at = self._refreshed_at = now
        self.stats["loads"] += 1
        log.info("api.resident_loaded", towns=len(self.towns), rows=sum(len(t.rows) for t in tables.values()),
                 days=self.days)
        await self.apply_changes()

    async def apply_changes(self) -> None:
        """Read again every range analytics announced since the last check."""
        changes = await self.store.aggregate_changes(self._since_ms, MAX_CHANGES)
        if len(changes) > MAX_CHANGES:
            self._loaded_at = -1e18  # a backlog: the whole window at the next check
            return
        fresh = []
        newest = self._since_ms
        for c in changes:
            key = (c.get("time"), c.get("town"), c.get("range_start"), c.get("range_end"))
            newest = max(newest, int(c["time"]))
            if key not in self._seen:
                fresh.append(c)
                self._seen.add(key)
        for c in fresh:
            town = c.get("town")
            if town in self.towns and c.get("range_start") is not None and c.get("range_end") is not None:
                await self.read_range(town, int(c["range_start"]), int(c["range_end"]))
        # Look again a little before the newest change seen; forget what that no longer reaches.
        self._since_ms = max(self._since_ms, newest - OVERLAP_MS)
        self._seen = {k for k in self._seen if k[0] is not None and int(k[0]) > self._since_ms}

    async def read_range(self, town: str, start_ms: int, end_ms: int) -> None:
        """Replace ``town``'s rows of [start_ms, end_ms) (clipped to the window) with what InfluxDB holds now."""
        if self.start_ms is None:
            return
        wall = int(self.clock() * 1000)
        a, b = max(start_ms, self.start_ms), min(end_ms, wall + AHEAD_MS)
        if a >= b:
            return
        for ds in HELD:
            table = self._tables.get((town, ds.id))
            if table is None:
                continue
            rows = await self.store.window_rows(ds, town, a, b, MAX_ROWS)
            table.replace(a, b, rows, self._sensor_at[ds.id], self._names[ds.id])
        _keep_out_of_gc()
        self.stats["ranges"] += 1

    async def read_latest(self) -> None:
        held: dict[str, dict[tuple[str, str], dict[str, Any]]] = {t: {} for t in self.towns}
        for key, row in stored_rows(await self.store.stored_latest(None)).items():
            held.setdefault(key[0], {})[key] = row
        self._latest = held
