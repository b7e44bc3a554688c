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
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from heatwatch.core.influx import RAW_RP, InfluxClient, ident
from heatwatch.core.measurements import MEASUREMENTS

from .datasets import ALERT, READING, Dataset
from .errors import bad_request
from .timeutil import local_date, ms_to_ns

_CURSOR = re.compile(r"^\d{1,16}$")
# Buckets of the per-day counts: every UTC offset in use since 1972 is a multiple of 15 minutes, so
# a bucket never holds two local days (checked anyway, see Store.true_per_day).
_BUCKET_MS = 15 * 60_000


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

    def where(self, since_ms: int | None = None) -> tuple[str, dict[str, Any]]:
        clauses = ["time >= $start", "time < $end"]
        params: dict[str, Any] = {"start": ms_to_ns(since_ms if since_ms is not None else self.start_ms),
                                  "end": ms_to_ns(self.end_ms)}
        for key in ("town", "sensor", "kind"):
            value = getattr(self, key)
            if value is not None:
                clauses.append(f"{ident(key)} = ${key}")
                params[key] = value
        return " AND ".join(clauses), params


class Store:
    def __init__(self, client: InfluxClient, *, last_update_ttl_s: float = 30.0, scan_slots: int = 2) -> None:
        self.client = client
        self._last_update: dict[tuple[str, str | None], tuple[float, int | None]] = {}
        self._ttl = last_update_ttl_s
        # Statements that read every sensor-day of a range (true_per_day) cost InfluxDB tens of ms of CPU
        # each; a hundred at once make it thrash (a year x 200 sensors, 2 cores: 10 indices/s with 100 at
        # once, 17/s two at a time). Queue them instead.
        self._scans = asyncio.Semaphore(scan_slots) if scan_slots > 0 else None

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
        rows += await self._rows(ds, f"{where_at} AND time = $at", params_at)
        return rows, Cursor(last)

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

    async def iter_pages(self, ds: Dataset, flt: Filter, page_rows: int) -> AsyncIterator[list[list[Any]]]:
        """All rows of the filter in time order, a bounded batch at a time: what exports stream from.

        Reads consecutive time windows sized to hold about ``page_rows`` rows (the size adapts to the
        density seen so far), and always has the next window's query in flight while the current one is
        being sent: InfluxDB and the encoding overlap. At most two windows of rows are in memory; a window
        denser than expected (LIMIT hit) is paged through with the keyset cursor instead.
        """
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
        where, params = flt.where()
        rows = await self._rows(ds, f"{where} ORDER BY time ASC LIMIT {int(cap) + 1}", params)
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
        q = (f"SELECT COUNT({f}) FROM {qual} WHERE {where} AND {f} = true "
             f"GROUP BY time({_BUCKET_MS // 60_000}m) fill(none)")
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
                for r in await self.client.query_records(f"SELECT {f} FROM {qual} WHERE {w} AND {f} = true", p):
                    counts[local_date(int(r["time"]), tz)] += 1
        return counts

    async def count(self, ds: Dataset, flt: Filter) -> int:
        where, params = flt.where()
        q = f"SELECT COUNT({ident(ds.fields[0])}) FROM {self.client.qualified(ds.measurement, ds.rp)} WHERE {where}"
        records = await self.client.query_records(q, params)
        return int(records[0].get("count") or 0) if records else 0

    async def latest(self, town: str | None) -> list[dict[str, Any]]:
        """The newest reading of every sensor (of one town, or of all), one query."""
        qual = self.client.qualified(READING.measurement, RAW_RP)
        if town is None:
            q = f"SELECT * FROM {qual} GROUP BY {ident('town')}, {ident('sensor')} ORDER BY time DESC LIMIT 1"
            params: dict[str, Any] = {}
        else:
            q = (f"SELECT * FROM {qual} WHERE {ident('town')} = $town GROUP BY {ident('sensor')} "
                 "ORDER BY time DESC LIMIT 1")
            params = {"town": town}
        records = await self.client.query_records(q, params)
        records.sort(key=lambda r: (r.get("town") or "", r.get("sensor") or ""))
        return records

    async def last_update(self, ds: Dataset, town: str | None) -> int | None:
        """Time of the newest point of a dataset (for one town): the 'last update' of the licence
        attribution. Cached briefly since every response asks for it."""
        key = (ds.id, town)
        hit = self._last_update.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        qual = self.client.qualified(ds.measurement, ds.rp)
        field = ident(ds.fields[0])
        if town is None:
            records = await self.client.query_records(f"SELECT LAST({field}) FROM {qual}")
        else:
            records = await self.client.query_records(
                f"SELECT LAST({field}) FROM {qual} WHERE {ident('town')} = $town", {"town": town})
        value = int(records[0]["time"]) if records else None
        self._last_update[key] = (now, value)
        return value

    async def last_time(self, ds: Dataset, field: str, town: str) -> int | None:
        """Time of the newest point of ``town`` with ``field`` set (uncached, unlike :meth:`last_update`)."""
        m = MEASUREMENTS[ds.measurement]
        records = await self.client.query_records(
            f"SELECT LAST({m.col(field)}) FROM {self.client.table(m)} WHERE {m.col('town')} = $town", {"town": town})
        return int(records[0]["time"]) if records else None

    async def per_sensor(self, ds: Dataset, fields: list[str], flt: Filter) -> list[dict[str, Any]]:
        """``fields`` of every point of the filter, one record per point with its ``sensor``."""
        m = MEASUREMENTS[ds.measurement]
        where, params = flt.where()
        cols = ", ".join(m.col(f) for f in fields)
        return await self.client.query_records(
            f"SELECT {cols} FROM {self.client.table(m)} WHERE {where} GROUP BY {m.col('sensor')}", params)

    async def open_alerts(self, flt: Filter) -> list[dict[str, Any]]:
        """The newest point of each (sensor, kind) whose alert is still open: one per standing condition."""
        m = MEASUREMENTS[ALERT.measurement]
        where, params = flt.where()
        params["state"] = "open"
        cols = ", ".join(m.col(f) for f in ALERT.fields)
        q = (f"SELECT {cols} FROM {self.client.table(m)} WHERE {where} AND {m.col('state')} = $state "
             f"GROUP BY {m.col('sensor')}, {m.col('kind')} ORDER BY time DESC LIMIT 1")
        return await self.client.query_records(q, params)

    async def coverage(self, ds: Dataset) -> tuple[dict[str, int], dict[str, int]]:
        """First and last time (epoch ms) of a dataset per town: two aggregate statements, all towns at once."""
        m = MEASUREMENTS[ds.measurement]
        field, table, town = m.col(ds.fields[0]), self.client.table(m), m.col("town")
        first, last = await asyncio.gather(
            self.client.query_series(f"SELECT FIRST({field}) FROM {table} GROUP BY {town}"),
            self.client.query_series(f"SELECT LAST({field}) FROM {table} GROUP BY {town}"))
        starts = {s.tags.get("town", ""): s.values[0][0] for s in first if s.values}
        ends = {s.tags.get("town", ""): s.values[0][0] for s in last if s.values}
        return starts, ends
