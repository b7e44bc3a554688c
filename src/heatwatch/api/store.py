"""Every InfluxQL statement the api sends, in one place (the decision-support reads of the aggregates
— maps, rankings, intervention effects, the report — are in ``insights/queries.py``). Routes build no
statement: they ask this module.

Values always travel as bind parameters; identifiers (measurement, retention policy, tag and
field names) come from :mod:`.datasets` and go through :func:`ident`, so nothing a client
sends can change the shape of a statement.

Large reads are paged by time (keyset pagination): ``time > t ORDER BY time LIMIT n``, with
``t`` the last timestamp of the previous page. Each page is one bounded round trip however far
an export has gone (no growing OFFSET), and rows sharing a timestamp (all sensors of a town at
the top of the hour) are never split across pages, so none is lost or repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from heatwatch.core.datasets import ALERT, READING, Dataset
from heatwatch.core.influx import InfluxClient, ident
from heatwatch.core.logging import get_logger
from heatwatch.core.measurements import (
    AGGREGATE_CHANGE,
    INFO_FLAGS,
    LAST_READING,
    LAST_READING_TIME,
    MEASUREMENTS,
    Measurement,
)
from heatwatch.core.measurements import READING as READING_M

from .errors import bad_request
from .timeutil import local_date, ms_to_ns

if TYPE_CHECKING:
    from .resident import Resident

log = get_logger("heatwatch.api")

_CURSOR = re.compile(r"^\d{1,16}$")
# Buckets of the per-day counts: every UTC offset in use since 1972 is a multiple of 15 minutes, so
# a bucket never holds two local days (checked anyway, see Store.true_per_day).
_BUCKET_MS = 15 * 60_000
#: Row caps of the statements that are not paged: far above any town's data in one answer.
ROW_CAP = 500_000
MAX_SERIES = 100_000
#: Readings are accepted up to 5 minutes in the future (ingest's validation).
FUTURE_MS = 5 * 60_000
#: Windows the newest point of a dataset is looked for in, most recent first (days).
NEWEST_WINDOWS_DAYS = (2, 45, 800, 20_000)
#: Everything heatwatch can hold: readings go back at most to 1970 (their timestamps are validated).
COVERAGE_SPAN_DAYS = 100 * 366


@dataclass(frozen=True, slots=True)
class Cursor:
    """Resume strictly after this time: every row at or before it has been returned."""

    after_ms: int

    def encode(self) -> str:
        return str(self.after_ms)

    @classmethod
    def parse(cls, value: str) -> Cursor:
        if not _CURSOR.fullmatch(value):
            raise bad_request(f"invalid cursor {value!r}: use the 'next' link of the previous page", "invalid_cursor")
        return cls(int(value))


@dataclass(slots=True)
class Filter:
    """Which points: tag equalities plus a time range [start_ms, end_ms)."""

    start_ms: int
    end_ms: int
    town: str | None = None
    sensor: str | None = None
    kind: str | None = None
    #: rows whose qc flags are exactly this (0: passed every check) / at most this (aggregates only)
    qc: int | None = None
    qc_max: int | None = None
    #: sensors left out (e.g. the citizen sensors of a town-network count), each a bind parameter
    exclude: tuple[str, ...] = ()
    #: only these sensors (None: any), each a bind parameter; empty: none
    only: tuple[str, ...] | None = None

    def keeps(self, qc: Any, sensor: Any) -> bool:
        """Whether a row with these ``qc`` flags and ``sensor`` passes the filter's qc and sensor-set conditions, as
        :meth:`where` says them to InfluxDB (rows held in memory, api/resident.py; the time range and the tag
        equalities are the caller's). A row without qc fails any qc condition, as a point without the field does."""
        if self.qc is not None and qc != self.qc:
            return False
        if self.qc_max is not None and (qc is None or qc > self.qc_max):
            return False
        if sensor in self.exclude:
            return False
        return self.only is None or sensor in self.only

    @property
    def selects_rows(self) -> bool:
        """Whether :meth:`keeps` can refuse a row (a qc condition or a sensor set)."""
        return self.qc is not None or self.qc_max is not None or bool(self.exclude) or self.only is not None

    def where(self, since_ms: int | None = None) -> tuple[str, dict[str, Any]]:
        clauses = ["time >= $start", "time < $end"]
        params: dict[str, Any] = {"start": ms_to_ns(since_ms if since_ms is not None else self.start_ms),
                                  "end": ms_to_ns(self.end_ms)}
        for key in ("town", "sensor", "kind"):
            value = getattr(self, key)
            if value is not None:
                clauses.append(f"{ident(key)} = ${key}")
                params[key] = value
        if self.qc is not None:
            clauses.append('"qc" = $qc')
            params["qc"] = self.qc
        if self.qc_max is not None:
            clauses.append('"qc" <= $qc_max')
            params["qc_max"] = self.qc_max
        for i, sensor in enumerate(sorted(set(self.exclude))):
            clauses.append(f"{ident('sensor')} != $x{i}")
            params[f"x{i}"] = sensor
        if self.only is not None:
            # no sensor at all: an id no sensor has (ids are never empty) rather than a query not sent
            only = sorted(set(self.only)) or [""]
            clauses.append("(" + " OR ".join(f"{ident('sensor')} = $o{i}" for i in range(len(only))) + ")")
            params.update({f"o{i}": sensor for i, sensor in enumerate(only)})
        return " AND ".join(clauses), params


_TIME_BOUND = re.compile(r"\bWHERE\b.*\btime\s*(>=|>|=)\s*\$", re.IGNORECASE | re.DOTALL)
_ROW_CAP = re.compile(r"\bS?LIMIT\s+\d+", re.IGNORECASE)


class UnboundedQuery(RuntimeError):
    """A statement without a time bound or a row cap: a programming error, refused before it reaches InfluxDB."""


def check_bounded(q: str) -> None:
    """Every SELECT the api sends names a lower time bound (``time >= $x``, ``time > $x`` or ``time = $x``, a bind
    parameter) and caps its rows (``LIMIT`` or ``SLIMIT``): what one request can make InfluxDB read is bounded,
    whatever the history's length. Anything else is refused here, so a new unbounded statement fails its tests
    (the API fuzz test reaches every route) instead of reaching production."""
    for statement in q.split(";"):
        text = statement.strip()
        if not text.upper().startswith("SELECT"):
            continue
        if not _TIME_BOUND.search(text) or not _ROW_CAP.search(text):
            raise UnboundedQuery(f"refusing an unbounded statement (no time bound or no LIMIT): {text[:200]}")


class BoundedClient(InfluxClient):
    """The api's InfluxDB client: every statement checked by :func:`check_bounded` before it is sent."""

    async def query(self, q: str, params: Any = None, **kw: Any) -> Any:
        check_bounded(q)
        return await super().query(q, params, **kw)

    async def query_csv(self, q: str, params: Any = None, **kw: Any) -> bytes:
        check_bounded(q)
        return await super().query_csv(q, params, **kw)


async def newest_point_ms(client: InfluxClient, m: Measurement, field: str, town: str | None) -> int | None:
    """Time of the newest point of ``m`` with ``field`` (of ``town``): the most recent window first, a wider one
    only when it is empty. Each statement is bounded in time and reads one row (``ORDER BY time DESC LIMIT 1``),
    so the usual answer costs one small statement however long the history (``SELECT LAST()`` over all time
    scanned every shard)."""
    now = int(time.time() * 1000)
    town_is = f" AND {m.col('town')} = $town" if town is not None else ""
    q = (f"SELECT {m.col(field)} FROM {client.table(m)} WHERE time >= $since AND time <= $until{town_is} "
         "ORDER BY time DESC LIMIT 1")
    until = now + 2 * 86_400_000  # daily points are stamped at a local midnight, alerts when they open
    for span_days in NEWEST_WINDOWS_DAYS:
        params: dict[str, Any] = {"since": ms_to_ns(now - span_days * 86_400_000), "until": ms_to_ns(until)}
        if town is not None:
            params["town"] = town
        records = await client.query_records(q, params)
        if records:
            return int(records[0]["time"])
        until = now - span_days * 86_400_000
    return None


class RecentReadings:
    """The newest reading of each sensor that the last-value store may not hold yet, kept in the api instead of
    scanned at each request: seeded by one scan of the last ``latest_window_s`` when the live feed (re)connects,
    then updated by the feed's batches (ingest announces each batch on ``heatwatch/live/<town>`` once it is
    durable). ``ready`` only while the feed is connected and the seed of this connection is in: otherwise
    :meth:`Store.latest` scans the readings as before. A live message lost (QoS 0) leaves that sensor on the
    store's value until analytics' next refresh of the store (``HEATWATCH_ANALYTICS_LAST_INTERVAL_S``)."""

    def __init__(self, max_sensors: int = MAX_SERIES) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.ready = False
        self.epoch = 0
        #: Moves with every row kept (what :class:`LatestView` checks to know it still holds).
        self.version = 0
        self.max_sensors = max_sensors

    def connected(self, up: bool) -> int:
        """A new connection (or its loss): not ready until this connection's seed is in; its epoch."""
        self.epoch += 1
        self.ready = False
        return self.epoch

    def add(self, town: str, sensor: str, row: dict[str, Any]) -> None:
        """``row``: town, sensor, time (epoch ms) and the reading's fields. A newer time wins, never an older one."""
        key = (town, sensor)
        held = self.rows.get(key)
        if held is not None and held["time"] >= row["time"]:
            return
        if held is None and len(self.rows) >= self.max_sensors:
            self.ready = False  # more sensors than kept: scan instead
            return
        self.rows[key] = row
        self.version += 1

    def live(self, town: str, sensor: str, reading: dict[str, Any]) -> None:
        """One reading of a live batch (``ts`` and the fields ingest announces)."""
        if reading.get("ts") is None:
            return
        self.add(town, sensor, {"town": town, "sensor": sensor, "time": int(reading["ts"]),
                                **{f: reading.get(f) for f in READING_M.field_names}})

    def seeded(self, epoch: int, records: list[dict[str, Any]]) -> None:
        if epoch != self.epoch:
            return  # the connection it was for is gone
        for rec in records:
            town, sensor = rec.get("town") or "", rec.get("sensor") or ""
            if town and sensor:
                self.add(town, sensor, {**rec, "time": int(rec["time"])})
        self.ready = len(self.rows) < self.max_sensors


@dataclass(slots=True, eq=False)
class LatestView:
    """The newest reading of every sensor of one town (or of all), as :meth:`Store.latest_view` merges them, kept
    between answers while what it was merged from is unchanged: the last-value store's rows (``held``, compared at
    each answer: by identity while the resident store keeps its rows, by value after it read them again), the
    live feed's recent readings (``recent_version``) and the time (``until_ms``: a recent reading the store lacks
    is shown only within ``latest_window_s``). Merged again, a sensor whose row is equal to the one held keeps that
    row object: ``memo`` (what the renderers of ``/v1/latest`` keep per row, checked by the row's identity) stays
    true across merges. Shared between answers: read it, never change its rows."""

    keys: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    last_ms: int | None
    held: dict[tuple[str, str], dict[str, Any]] | None = None
    recent_version: int = -1
    until_ms: float = float("inf")
    memo: dict[Any, dict[tuple[str, str], Any]] = field(default_factory=dict)


def stored_rows(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(town, sensor) → the last-value store's record as a reading row: ``time`` is the reading's (``ts``)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        if rec.get("ts") is None:
            continue
        row = {k: v for k, v in rec.items() if k != "ts"}
        row["time"] = int(rec["ts"])
        rows[(rec.get("town") or "", rec.get("sensor") or "")] = row
    return rows


def _page_end(rows: list[list[Any]], limit: int) -> tuple[int, Cursor | None]:
    """Where a page of time-ordered ``rows`` ends — the same page InfluxDB would give: ``limit`` rows, then the rest
    of the last timestamp's rows — and the cursor of the next (None: the last page)."""
    if len(rows) < limit:
        return len(rows), None
    last = rows[limit - 1][0]
    end = limit
    while end < len(rows) and rows[end][0] == last:
        end += 1
    return end, Cursor(last)


class Store:
    def __init__(self, client: InfluxClient, *, last_update_ttl_s: float = 30.0, scan_slots: int = 2,
                 latest_window_s: float = 300.0) -> None:
        self.client = client
        self.recent = RecentReadings()
        self._latest_views: dict[str | None, LatestView] = {}
        self._latest_window_ms = int(latest_window_s * 1000)
        self._last_update: dict[tuple[str, str | None], tuple[float, int | None]] = {}
        self._ttl = last_update_ttl_s
        # Statements that read every sensor-day of a range (true_per_day) cost InfluxDB tens of ms of CPU
        # each; a hundred at once make it thrash (a year x 200 sensors, 2 cores: 10 indices/s with 100 at
        # once, 17/s two at a time). Queue them instead.
        self._scans = asyncio.Semaphore(scan_slots) if scan_slots > 0 else None
        #: The recent aggregates held in memory (api/resident.py), set by the app; None: every read goes to InfluxDB.
        self.resident: Resident | None = None

    def _held(self, ds: Dataset, flt: Filter, after_ms: int | None = None) -> list[list[Any]] | None:
        return self.resident.rows(ds, flt, after_ms) if self.resident is not None else None

    def _select(self, ds: Dataset) -> str:
        cols = [ident(k) for k in ds.tag_keys] + [ident(f) for f in ds.fields]
        return f"SELECT {', '.join(cols)} FROM {self.client.qualified(ds.measurement, ds.rp)}"

    def _columns(self, ds: Dataset) -> list[str]:
        return ["time", *ds.tag_keys, *ds.fields]

    async def page(self, ds: Dataset, flt: Filter, limit: int, cursor: Cursor | None = None
                   ) -> tuple[list[list[Any]], Cursor | None]:
        """One page of rows (columns: time, tags..., fields...) and the cursor of the next, if any.

        A page never ends in the middle of a timestamp: InfluxDB does not order rows that share a
        timestamp the same way from one query to the next, so OFFSET within a timestamp could lose or
        repeat rows. When the page is full, the rows at its last timestamp are dropped and fetched whole
        by a second query (at most one row per series), and the next page starts strictly after it.
        """
        held = self._held(ds, flt, cursor.after_ms if cursor is not None else None)
        if held is not None:
            end, nxt = _page_end(held, limit)
            return held[:end], nxt
        where, params = flt.where()
        if cursor is not None:
            where = where.replace("time >= $start", "time > $start")
            params["start"] = ms_to_ns(max(cursor.after_ms, flt.start_ms - 1))
        rows = await self._rows(ds, f"{where} ORDER BY time ASC LIMIT {int(limit)}", params)
        if len(rows) < limit:
            return rows, None
        last = rows[-1][0]
        rows = [r for r in rows if r[0] != last]
        where_at, params_at = flt.where()
        params_at["at"] = ms_to_ns(last)
        rows += await self._rows(ds, f"{where_at} AND time = $at LIMIT {MAX_SERIES}", params_at)
        return rows, Cursor(last)

    def held_page(self, ds: Dataset, flt: Filter, limit: int, cursor: Cursor | None = None
                  ) -> tuple[list[list[Any]], list[bytes], list[int], Cursor | None] | None:
        """The page :meth:`page` gives when the resident aggregates hold it, with each row's tags and fields as JSON
        members (:func:`.formats.stored_json`) and its time, for a JSON page; None when they do not hold it. The
        rows are the held ones: read them, never change them."""
        if self.resident is None:
            return None
        picked = self.resident.select(ds, flt, cursor.after_ms if cursor is not None else None)
        if picked is None:
            return None
        rows, texts, times = picked
        end, nxt = _page_end(rows, limit)
        return rows[:end], texts[:end], times[:end], nxt

    def held_rows(self, ds: Dataset, flt: Filter) -> tuple[list[list[Any]], list[bytes], list[int]] | None:
        """Every row of ``flt`` with its JSON members, when the resident aggregates hold them (see
        :meth:`held_page`); None otherwise."""
        if self.resident is None:
            return None
        return self.resident.select(ds, flt)

    async def _rows(self, ds: Dataset, tail: str, params: dict[str, Any]) -> list[list[Any]]:
        series = await self.client.query_series(f"{self._select(ds)} WHERE {tail}", params)
        if not series:
            return []
        s = series[0]
        wanted = self._columns(ds)
        if s.columns == wanted:  # the usual case: InfluxDB answers in the order selected
            return s.values
        idx = [s.columns.index(c) if c in s.columns else None for c in wanted]
        return [[row[i] if i is not None else None for i in idx] for row in s.values]

    async def _first_rows(self, ds: Dataset, flt: Filter, cap: int) -> list[list[Any]]:
        """The filter's first ``cap`` + 1 rows in time order, one statement (``cap`` + 1: whether there are more)."""
        where, params = flt.where()
        return await self._rows(ds, f"{where} ORDER BY time ASC LIMIT {int(cap) + 1}", params)

    async def iter_pages(self, ds: Dataset, flt: Filter, page_rows: int) -> AsyncIterator[list[list[Any]]]:
        """All rows of the filter in time order, a bounded batch at a time: what exports stream from.

        Reads consecutive time windows sized to hold about ``page_rows`` rows (the size adapts to the
        density seen so far), and always has the next window's query in flight while the current one is
        being sent: InfluxDB and the encoding overlap. At most two windows of rows are in memory; a window
        denser than expected (LIMIT hit) is paged through with the keyset cursor instead.
        """
        held = self._held(ds, flt)
        if held is not None:
            for i in range(0, len(held), page_rows):
                yield held[i:i + page_rows]
            return
        cap = page_rows * 4
        span = flt.end_ms - flt.start_ms
        window = min(span, 6 * 3600_000)

        async def fetch(a: int, b: int) -> tuple[Filter, list[list[Any]]]:
            sub = replace(flt, start_ms=a, end_ms=b)
            where, params = sub.where()
            return sub, await self._rows(ds, f"{where} ORDER BY time ASC LIMIT {cap + 1}", params)

        pending: asyncio.Task | None = asyncio.create_task(fetch(flt.start_ms, flt.start_ms + window))
        try:
            while pending is not None:
                sub, rows = await pending
                pending = None
                if len(rows) > cap:
                    del rows
                    cursor: Cursor | None = None
                    while True:
                        page, cursor = await self.page(ds, sub, page_rows, cursor)
                        if page:
                            yield page
                        if cursor is None:
                            break
                    window = max(60_000, window // 8)
                    rows = []
                elif rows:
                    density = len(rows) / max(1, sub.end_ms - sub.start_ms)
                    window = int(min(span, max(60_000, page_rows / density)))
                else:
                    window = min(span, window * 4)
                if sub.end_ms < flt.end_ms:
                    pending = asyncio.create_task(fetch(sub.end_ms, min(flt.end_ms, sub.end_ms + window)))
                if rows:
                    yield rows
        finally:
            if pending is not None:
                pending.cancel()  # the client went away mid-export

    async def all_rows(self, ds: Dataset, flt: Filter, page_rows: int, cap: int = 20_000) -> list[list[Any]]:
        """Every row of a small, range-capped query (town-level data: one row per day) in one round trip;
        past ``cap`` rows (not expected) it pages with :meth:`iter_pages` instead."""
        held = self._held(ds, flt)
        if held is not None:
            return held
        rows = await self._first_rows(ds, flt, cap)
        if len(rows) <= cap:
            return rows
        rows = []
        async for page in self.iter_pages(ds, flt, page_rows):
            rows.extend(page)
        return rows

    async def true_per_day(self, ds: Dataset, field: str, flt: Filter, tz: ZoneInfo) -> Counter[str]:
        """How many points have boolean ``field`` true, per local calendar day (ISO date) in ``tz``.

        InfluxDB counts (``COUNT ... GROUP BY time(15m)``): the answer is one row per non-empty bucket,
        not one per matching point, so nothing is decoded per sensor-day. A bucket whose UTC quarter-hour
        spans a local midnight (a zone offset that is not a multiple of 15 min) is counted point by point.
        """
        qual = self.client.qualified(ds.measurement, ds.rp)
        f = ident(field)
        where, params = flt.where()
        buckets = (flt.end_ms - flt.start_ms) // _BUCKET_MS + 2
        q = (f"SELECT COUNT({f}) FROM {qual} WHERE {where} AND {f} = true "
             f"GROUP BY time({_BUCKET_MS // 60_000}m) fill(none) LIMIT {buckets}")
        counts: Counter[str] = Counter()
        if self._scans is None:
            answer = await self.client.query_series(q, params)
        else:
            async with self._scans:
                answer = await self.client.query_series(q, params)
        for series in answer:
            for t, n in series.values:
                if not n:
                    continue
                t = int(t)
                day = local_date(t, tz)
                if day == local_date(t + _BUCKET_MS - 1, tz):
                    counts[day] += int(n)
                    continue
                sub = replace(flt, start_ms=max(t, flt.start_ms), end_ms=min(t + _BUCKET_MS, flt.end_ms))
                w, p = sub.where()
                for r in await self.client.query_records(
                        f"SELECT {f} FROM {qual} WHERE {w} AND {f} = true LIMIT {ROW_CAP}", p):
                    counts[local_date(int(r["time"]), tz)] += 1
        return counts

    async def count(self, ds: Dataset, flt: Filter) -> int:
        picked = self.resident.select(ds, flt) if self.resident is not None else None
        if picked is not None:  # COUNT(field) counts the points where the first field is set (read, not copied)
            at = 1 + len(ds.tag_keys)
            return sum(1 for row in picked[0] if row[at] is not None)
        where, params = flt.where()
        q = (f"SELECT COUNT({ident(ds.fields[0])}) FROM {self.client.qualified(ds.measurement, ds.rp)} WHERE {where} "
             "LIMIT 1")
        records = await self.client.query_records(q, params)
        return int(records[0].get("count") or 0) if records else 0

    def _recent_q(self, town: str | None) -> str:
        r = READING_M
        town_is = f" AND {r.col('town')} = $town" if town is not None else ""
        return (f"SELECT * FROM {self.client.table(r)} WHERE time >= $since AND time <= $until{town_is} "
                f"GROUP BY {r.col('town')}, {r.col('sensor')} ORDER BY time DESC LIMIT 1 SLIMIT {MAX_SERIES}")

    def _recent_params(self) -> dict[str, Any]:
        now = int(time.time() * 1000)
        return {"since": ms_to_ns(now - self._latest_window_ms), "until": ms_to_ns(now + FUTURE_MS)}

    async def seed_recent(self, epoch: int, delay_s: float = 1.0, retry_s: float = 5.0) -> None:
        """Seed :attr:`recent` for the live feed's connection ``epoch``: one scan of the last ``latest_window_s`` of
        readings (every town), a moment after the subscription, so that whatever was stored before it is in the
        scan and whatever is stored after is announced. Retried while InfluxDB fails and the connection lasts."""
        await asyncio.sleep(delay_s)
        while epoch == self.recent.epoch:
            try:
                records = await self.client.query_records(self._recent_q(None), self._recent_params())
            except Exception as exc:  # InfluxDB down: latest keeps scanning meanwhile
                log.warning("api.latest_seed_failed", error=repr(exc))
                await asyncio.sleep(retry_s)
                continue
            self.recent.seeded(epoch, records)
            return

    async def latest(self, town: str | None) -> list[dict[str, Any]]:
        """The newest reading of every sensor (of one town, or of all), sorted by (town, sensor): the rows of
        :meth:`latest_view` (shared: read them, never change them)."""
        return list((await self.latest_view(town)).rows)

    async def latest_view(self, town: str | None) -> LatestView:
        """The newest reading of every sensor (of one town, or of all): the last-value store, which analytics
        keeps (one point per sensor), and the newest readings the store may not hold yet — kept from the live feed
        (:class:`RecentReadings`) while it is connected, else read from the last ``latest_window_s`` seconds of
        readings. One or two statements, each bounded in time and rows, whatever the history's length; none while
        the resident store holds the last values and the feed is connected, and then the merge of the previous
        answer is kept while its sources are unchanged (:class:`LatestView`)."""
        now = int(time.time() * 1000)
        prev = self._latest_views.get(town)
        recent_version = -1
        if self.recent.ready:
            recent_version = self.recent.version
            # The resident store's rows are shared: callers read them, never change them.
            held = self.resident.latest(town) if self.resident is not None else None
            if (held is not None and prev is not None and prev.recent_version == recent_version
                    and now < prev.until_ms and prev.held is not None and held == prev.held):
                prev.held = held  # the same rows, if read again: compared by identity from now on
                return prev
            stored = held if held is not None else stored_rows(await self.stored_latest(town))
            # A kept reading older than the window is in the store by now (analytics refreshes it every 30 s); one
            # the store lacks was erased since (a contributor's withdrawal deletes the sensor's points): not shown.
            old = now - self._latest_window_ms
            kept = [(key, row) for key, row in list(self.recent.rows.items())
                    if (town is None or key[0] == town) and (row["time"] >= old or key in stored)]
            recent = [row for _, row in kept]
            # ... and one shown only because it is recent leaves the answer when it no longer is.
            until = min((row["time"] + self._latest_window_ms + 1 for key, row in kept if key not in stored),
                        default=float("inf"))
        else:
            held, until = None, float("inf")
            # Both statements in one request (InfluxDB answers each in turn): half the HTTP round trips' CPU.
            stored_q, params = self._stored_latest_q(town)
            answers = await self.client.query(f"{stored_q}; {self._recent_q(town)}", params | self._recent_params())
            records, recent = ([r for s in series for r in s.records()] for series in (*answers, [], [])[:2])
            stored = stored_rows(records)
        newest = dict(stored)
        for rec in recent:
            key = (rec.get("town") or "", rec.get("sensor") or "")
            if key not in newest or int(rec["time"]) > newest[key]["time"]:
                newest[key] = rec
        keys = sorted(newest)
        rows = [newest[k] for k in keys]
        memo: dict[Any, dict[tuple[str, str], Any]] = {}
        if prev is not None:
            # A row equal to the one the previous merge held keeps that object (and what renderers keep with it).
            before = dict(zip(prev.keys, prev.rows, strict=True))
            for i, (key, row) in enumerate(zip(keys, rows, strict=True)):
                was = before.get(key)
                if was is not None and was is not row and was == row:
                    rows[i] = was
            memo = prev.memo
            if keys != prev.keys:  # what is kept for sensors no longer shown goes
                shown = set(keys)
                for kept in memo.values():
                    for key in [k for k in kept if k not in shown]:
                        del kept[key]
        view = LatestView(keys, rows, max((r["time"] for r in rows), default=None), held, recent_version, until,
                          memo)
        self._latest_views[town] = view
        return view

    def _stored_latest_q(self, town: str | None) -> tuple[str, dict[str, Any]]:
        m = LAST_READING
        town_is = f" AND {m.col('town')} = $town" if town is not None else ""
        base: dict[str, Any] = {"town": town} if town is not None else {}
        # One point per sensor at time 0: no GROUP BY needed (tags come back as columns), which halves its cost.
        return (f"SELECT * FROM {self.client.table(m)} WHERE time = $t0{town_is} LIMIT {MAX_SERIES}",
                base | {"t0": LAST_READING_TIME * 1_000_000})

    async def stored_latest(self, town: str | None) -> list[dict[str, Any]]:
        """The last-value store's records (of one town, or all): one point per sensor."""
        return await self.client.query_records(*self._stored_latest_q(town))

    # What the resident aggregates read (api/resident.py) ------------------------------------------------------

    async def window_rows(self, ds: Dataset, town: str, start_ms: int, end_ms: int, cap: int) -> list[list[Any]]:
        """Every row of ``town`` in [start_ms, end_ms) from InfluxDB, at most ``cap`` + 1 (more than ``cap``: too many
        to hold)."""
        return await self._first_rows(ds, Filter(start_ms, end_ms, town=town), cap)

    async def aggregate_changes(self, since_ms: int, cap: int) -> list[dict[str, Any]]:
        """The ranges analytics announced after ``since_ms`` (core/changes.py), oldest first, at most ``cap`` + 1."""
        m = AGGREGATE_CHANGE
        q = (f"SELECT {m.col('town')}, {m.col('range_start')}, {m.col('range_end')} FROM {self.client.table(m)} "
             f"WHERE time > $since ORDER BY time ASC LIMIT {int(cap) + 1}")
        return await self.client.query_records(q, {"since": ms_to_ns(since_ms)})

    async def last_update(self, ds: Dataset, town: str | None) -> int | None:
        """Time of the newest point of a dataset (for one town): the 'last update' of the licence
        attribution. Cached briefly since every response asks for it."""
        held = self.resident.newest(ds, town) if self.resident is not None else None
        if held is not None:
            return held
        key = (ds.id, town)
        hit = self._last_update.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        if ds.measurement == READING.measurement:
            value = max((int(r["time"]) for r in await self.latest(town)), default=None)
        else:
            value = await self._newest(MEASUREMENTS[ds.measurement], ds.fields[0], town)
        self._last_update[key] = (now, value)
        return value

    async def _newest(self, m: Measurement, field: str, town: str | None) -> int | None:
        return await newest_point_ms(self.client, m, field, town)

    async def last_time(self, ds: Dataset, field: str, town: str) -> int | None:
        """Time of the newest point of ``town`` with ``field`` set (uncached, unlike :meth:`last_update`)."""
        return await self._newest(MEASUREMENTS[ds.measurement], field, town)

    async def per_sensor(self, ds: Dataset, fields: list[str], flt: Filter) -> list[dict[str, Any]]:
        """``fields`` of every point of the filter, one record per point with its ``sensor``."""
        m = MEASUREMENTS[ds.measurement]
        where, params = flt.where()
        cols = ", ".join(m.col(f) for f in fields)
        return await self.client.query_records(
            f"SELECT {cols} FROM {self.client.table(m)} WHERE {where} GROUP BY {m.col('sensor')} "
            f"LIMIT {ROW_CAP} SLIMIT {MAX_SERIES}", params)

    async def open_alerts(self, flt: Filter) -> list[dict[str, Any]]:
        """The newest point of each (sensor, kind) whose alert is still open: one per standing condition."""
        m = MEASUREMENTS[ALERT.measurement]
        where, params = flt.where()
        params["state"] = "open"
        cols = ", ".join(m.col(f) for f in ALERT.fields)
        q = (f"SELECT {cols} FROM {self.client.table(m)} WHERE {where} AND {m.col('state')} = $state "
             f"GROUP BY {m.col('sensor')}, {m.col('kind')} ORDER BY time DESC LIMIT 1 SLIMIT {MAX_SERIES}")
        return await self.client.query_records(q, params)

    async def coverage(self, ds: Dataset) -> tuple[dict[str, int], dict[str, int]]:
        """First and last time (epoch ms) of a dataset per town: the first and the last row of each town (``LIMIT 1``
        per town, read from the ends of the history), within the span any heatwatch data can have."""
        m = MEASUREMENTS[ds.measurement]
        field, table, town = m.col(ds.fields[0]), self.client.table(m), m.col("town")
        now = int(time.time() * 1000)
        params = {"since": ms_to_ns(now - COVERAGE_SPAN_DAYS * 86_400_000), "until": ms_to_ns(now + 2 * 86_400_000)}
        where = "time >= $since AND time <= $until"
        first, last = await asyncio.gather(
            self.client.query_series(f"SELECT {field} FROM {table} WHERE {where} GROUP BY {town} "
                                     f"ORDER BY time ASC LIMIT 1 SLIMIT {MAX_SERIES}", params),
            self.client.query_series(f"SELECT {field} FROM {table} WHERE {where} GROUP BY {town} "
                                     f"ORDER BY time DESC LIMIT 1 SLIMIT {MAX_SERIES}", params))
        starts = {s.tags.get("town", ""): s.values[0][0] for s in first if s.values}
        ends = {s.tags.get("town", ""): s.values[0][0] for s in last if s.values}
        return starts, ends

    # SensorThings observations (api/sta/) --------------------------------------------------------------------

    def _obs_where(self, m: Measurement, start_ms: int, end_ms: int, sensor: str | None, town: str | None
                   ) -> tuple[str, dict[str, Any]]:
        clauses = ["time >= $start", "time < $end"]
        params: dict[str, Any] = {"start": ms_to_ns(start_ms), "end": ms_to_ns(end_ms)}
        if sensor is not None:
            clauses.append(f"{m.col('sensor')} = $sensor")
            params["sensor"] = sensor
        if town is not None:
            clauses.append(f"{m.col('town')} = $town")
            params["town"] = town
        return " AND ".join(clauses), params

    async def observation_rows(self, m: Measurement, fields: list[str], start_ms: int, end_ms: int, *,
                               sensor: str | None = None, town: str | None = None, desc: bool = False,
                               limit: int = 1000) -> list[list[Any]]:
        """Rows ``[time, sensor, *fields]`` of ``m`` in [start, end), of one sensor (or town) or all, ordered by time,
        at most ``limit``: one window of a SensorThings Observations page."""
        where, params = self._obs_where(m, start_ms, end_ms, sensor, town)
        cols = ", ".join([m.col("sensor"), *(m.col(f) for f in fields)])
        q = (f"SELECT {cols} FROM {self.client.table(m)} WHERE {where} "
             f"ORDER BY time {'DESC' if desc else 'ASC'} LIMIT {int(limit)}")
        series = await self.client.query_series(q, params)
        if not series:
            return []
        s = series[0]
        wanted = ["time", "sensor", *fields]
        idx = [s.columns.index(c) if c in s.columns else None for c in wanted]
        return [[row[i] if i is not None else None for i in idx] for row in s.values]

    async def observation_edge(self, m: Measurement, fields: list[str], start_ms: int, end_ms: int, *,
                               sensor: str | None = None, town: str | None = None, desc: bool = False) -> int | None:
        """Time of the first (``desc``: last) row of ``m`` in [start, end): where the next window of a page starts,
        so empty stretches of time cost one statement, not one per window."""
        rows = await self.observation_rows(m, fields, start_ms, end_ms, sensor=sensor, town=town, desc=desc, limit=1)
        return int(rows[0][0]) if rows else None

    async def observation_count(self, m: Measurement, fields: list[str], start_ms: int, end_ms: int, *,
                                sensor: str | None = None, town: str | None = None) -> dict[str, int]:
        """How many values of each field in [start, end): ``@iot.count`` of Observations."""
        where, params = self._obs_where(m, start_ms, end_ms, sensor, town)
        cols = ", ".join(f"COUNT({m.col(f)}) AS {ident(f)}" for f in fields)
        records = await self.client.query_records(f"SELECT {cols} FROM {self.client.table(m)} WHERE {where} LIMIT 1",
                                                  params)
        return {f: int(records[0].get(f) or 0) if records else 0 for f in fields}

    # Maintenance view (routes/maintenance.py) ----------------------------------------------------------------

    async def device_health(self, town: str, start_ms: int, end_ms: int, *, sensor: str | None = None,
                            bucket_h: int = 6) -> list[dict[str, Any]]:
        """Per sensor and ``bucket_h``-hour bucket of [start, end): the median battery (volts and percent), the
        median RSSI and SNR and the number of readings — the battery and radio trends of the maintenance view. One
        statement, bounded in time, one row per bucket and series."""
        m = READING_M
        where, params = self._obs_where(m, start_ms, end_ms, sensor, town)
        buckets = (end_ms - start_ms) // (bucket_h * 3600_000) + 2
        q = (f"SELECT MEDIAN({m.col('battery_v')}) AS battery_v, MEDIAN({m.col('battery_pct')}) AS battery_pct, "
             f"MEDIAN({m.col('rssi')}) AS rssi, MEDIAN({m.col('snr')}) AS snr, COUNT({m.col('temperature')}) AS n "
             f"FROM {self.client.table(m)} "
             f"WHERE {where} GROUP BY time({int(bucket_h)}h), {m.col('sensor')} fill(none) "
             f"LIMIT {int(buckets)} SLIMIT {MAX_SERIES}")
        async with self._scan_slot():
            return await self.client.query_records(q, params)

    async def flagged_hours(self, town: str, start_ms: int, end_ms: int, *, sensor: str | None = None
                            ) -> list[dict[str, Any]]:
        """The hourly rows of [start, end) that carry a QC flag other than the information-only ones (time, sensor,
        qc): the QC history of the maintenance view. Clean hours are not read."""
        m = MEASUREMENTS["hourly"]
        where, params = self._obs_where(m, start_ms, end_ms, sensor, town)
        params["info"] = int(INFO_FLAGS)
        q = (f"SELECT {m.col('qc')} FROM {self.client.table(m)} WHERE {where} AND {m.col('qc')} > 0 "
             f"AND {m.col('qc')} != $info GROUP BY {m.col('sensor')} LIMIT {ROW_CAP} SLIMIT {MAX_SERIES}")
        return await self.client.query_records(q, params)

    def _scan_slot(self) -> Any:
        return self._scans if self._scans is not None else contextlib.nullcontext()
