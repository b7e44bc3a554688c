"""Every InfluxQL statement the API sends, in one place.

Values always travel as bind parameters; identifiers (measurement, retention policy, tag and
field names) come from :mod:`.datasets` and go through :func:`ident`, so nothing a client
sends can change the shape of a statement.

Large reads are paged with a (time, offset) cursor: ``time >= t ORDER BY time LIMIT n
OFFSET k`` where ``k`` only counts the rows already returned *at* ``t``. Each page costs one
round trip of bounded size, OFFSET stays small however far the export has gone, and rows
sharing a timestamp (all sensors of a town at the top of the hour) are neither lost nor
repeated.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from heatwatch.core.influx import RAW_RP, InfluxClient, ident

from .datasets import READING, Dataset
from .errors import bad_request
from .timeutil import ms_to_ns

_CURSOR = re.compile(r"^(\d{1,16})-(\d{1,7})$")


@dataclass(frozen=True, slots=True)
class Cursor:
    ts_ms: int
    skip: int

    def encode(self) -> str:
        return f"{self.ts_ms}-{self.skip}"

    @classmethod
    def parse(cls, value: str) -> Cursor:
        m = _CURSOR.fullmatch(value)
        if not m:
            raise bad_request(f"invalid cursor {value!r}: use the 'next' link of the previous page", "invalid_cursor")
        return cls(int(m.group(1)), int(m.group(2)))


@dataclass(slots=True)
class Filter:
    """Which points: tag equalities plus a time range [start_ms, end_ms)."""

    start_ms: int
    end_ms: int
    city: str | None = None
    sensor: str | None = None
    kind: str | None = None

    def where(self, since_ms: int | None = None) -> tuple[str, dict[str, Any]]:
        clauses = ["time >= $start", "time < $end"]
        params: dict[str, Any] = {"start": ms_to_ns(since_ms if since_ms is not None else self.start_ms),
                                  "end": ms_to_ns(self.end_ms)}
        for key in ("city", "sensor", "kind"):
            value = getattr(self, key)
            if value is not None:
                clauses.append(f"{ident(key)} = ${key}")
                params[key] = value
        return " AND ".join(clauses), params


class Store:
    def __init__(self, client: InfluxClient, *, last_update_ttl_s: float = 30.0) -> None:
        self.client = client
        self._last_update: dict[tuple[str, str | None], tuple[float, int | None]] = {}
        self._ttl = last_update_ttl_s

    def _select(self, ds: Dataset) -> str:
        cols = [ident(k) for k in ds.tag_keys] + [ident(f) for f in ds.fields]
        return f"SELECT {', '.join(cols)} FROM {self.client.qualified(ds.measurement, ds.rp)}"

    def _columns(self, ds: Dataset) -> list[str]:
        return ["time", *ds.tag_keys, *ds.fields]

    async def page(self, ds: Dataset, flt: Filter, limit: int, cursor: Cursor | None = None,
                   descending: bool = False) -> tuple[list[list[Any]], Cursor | None]:
        """One page of rows (columns: time, tags..., fields...) and the cursor of the next, if any."""
        since = cursor.ts_ms if cursor else None
        where, params = flt.where(since if not descending else None)
        if descending and cursor:
            where = where.replace("time < $end", "time <= $end")
            params["end"] = ms_to_ns(cursor.ts_ms)
        skip = cursor.skip if cursor else 0
        order = "DESC" if descending else "ASC"
        q = f"{self._select(ds)} WHERE {where} ORDER BY time {order} LIMIT {int(limit)} OFFSET {int(skip)}"
        series = await self.client.query_series(q, params)
        if not series:
            return [], None
        s = series[0]
        wanted = self._columns(ds)
        idx = [s.columns.index(c) if c in s.columns else None for c in wanted]
        rows = [[row[i] if i is not None else None for i in idx] for row in s.values]
        if len(rows) < limit:
            return rows, None
        last = rows[-1][0]
        same = sum(1 for r in rows if r[0] == last)
        # Rows at `last` returned by this page, plus those skipped before it if the page began there.
        if cursor and last == cursor.ts_ms:
            same += cursor.skip
        return rows, Cursor(last, same)

    async def iter_pages(self, ds: Dataset, flt: Filter, page_rows: int) -> AsyncIterator[list[list[Any]]]:
        """All rows of the filter, one bounded page at a time: what streaming exports are built on."""
        cursor: Cursor | None = None
        while True:
            rows, cursor = await self.page(ds, flt, page_rows, cursor)
            if rows:
                yield rows
            if cursor is None:
                return

    async def count(self, ds: Dataset, flt: Filter) -> int:
        where, params = flt.where()
        q = f"SELECT COUNT({ident(ds.fields[0])}) FROM {self.client.qualified(ds.measurement, ds.rp)} WHERE {where}"
        records = await self.client.query_records(q, params)
        return int(records[0].get("count") or 0) if records else 0

    async def latest(self, city: str | None) -> list[dict[str, Any]]:
        """The newest reading of every sensor (of one town, or of all), one query."""
        qual = self.client.qualified(READING.measurement, RAW_RP)
        if city is None:
            q = f"SELECT * FROM {qual} GROUP BY {ident('city')}, {ident('sensor')} ORDER BY time DESC LIMIT 1"
            params: dict[str, Any] = {}
        else:
            q = (f"SELECT * FROM {qual} WHERE {ident('city')} = $city GROUP BY {ident('sensor')} "
                 "ORDER BY time DESC LIMIT 1")
            params = {"city": city}
        records = await self.client.query_records(q, params)
        records.sort(key=lambda r: (r.get("city") or "", r.get("sensor") or ""))
        return records

    async def last_update(self, ds: Dataset, city: str | None) -> int | None:
        """Time of the newest point of a dataset (for one town): the 'last update' of the licence
        attribution. Cached briefly since every response asks for it."""
        key = (ds.id, city)
        hit = self._last_update.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        qual = self.client.qualified(ds.measurement, ds.rp)
        field = ident(ds.fields[0])
        if city is None:
            records = await self.client.query_records(f"SELECT LAST({field}) FROM {qual}")
        else:
            records = await self.client.query_records(
                f"SELECT LAST({field}) FROM {qual} WHERE {ident('city')} = $city", {"city": city})
        value = int(records[0]["time"]) if records else None
        self._last_update[key] = (now, value)
        return value
