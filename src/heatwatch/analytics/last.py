"""The last-value store (``last_reading``, :data:`heatwatch.core.measurements.LAST_READING`): the newest reading of
each sensor, so that the api's "latest" reads one point per sensor instead of scanning readings.

Why analytics keeps it: it already reads the readings (ingest only writes them: its InfluxDB user cannot read
back, SECURITY.md), it is one writer per deployment, and it writes to the aggregates' database, which the api
reads. How it stays right:

* each refresh reads, for a bounded window of reading time, the newest reading of every sensor (one row per
  sensor: ``GROUP BY town, sensor ORDER BY time DESC LIMIT 1``), and writes a sensor's point only when that
  reading is newer than the one stored (``ts``). A redelivered message rewrites the same reading; a backlog
  flush brings older readings, which lose. Nothing older ever replaces something newer.
* what is stored is read back at start (one bounded statement: every point sits at time 0), so the comparison
  holds across restarts; a second analytics runner converges at its next refresh.
* windows: every ``HEATWATCH_ANALYTICS_LAST_INTERVAL_S`` the reading time since the previous refresh (with an
  overlap), every hourly run the recompute window (readings arriving hours late), and at start the catch-up
  window. A reading stored later than that after it was taken is not seen until a backfill of its day — and
  the api also reads the last minutes of readings itself, so "latest" is never behind what was just stored.
"""

from __future__ import annotations

from typing import Any

from heatwatch.core.influx import InfluxClient
from heatwatch.core.lineprotocol import Point
from heatwatch.core.logging import get_logger
from heatwatch.core.measurements import LAST_READING, LAST_READING_TIME, READING

log = get_logger("heatwatch.analytics.last")

#: Row cap of every statement here: far more sensors than a town network has.
MAX_SENSORS = 100_000
#: Readings are accepted up to 5 minutes in the future (ingest's validation).
FUTURE_MS = 5 * 60_000


def _typed(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return str(value)


class LastReadings:
    def __init__(self, client: InfluxClient, max_sensors: int = MAX_SENSORS) -> None:
        self.client = client
        self.max_sensors = max_sensors
        self.known: dict[tuple[str, str], int] | None = None  # (town, sensor) -> ts of the stored reading

    async def load(self) -> int:
        """Read what is stored (the comparisons start from it); the number of sensors."""
        m = LAST_READING
        q = (f"SELECT {m.col('ts')} FROM {self.client.table(m)} WHERE time = $t GROUP BY {m.col('town')}, "
             f"{m.col('sensor')} LIMIT 1 SLIMIT {self.max_sensors}")
        known: dict[tuple[str, str], int] = {}
        for s in await self.client.query_series(q, {"t": LAST_READING_TIME * 1_000_000}):
            if s.values and s.values[0][1] is not None:
                known[(s.tags.get("town", ""), s.tags.get("sensor", ""))] = int(s.values[0][1])
        self.known = known
        return len(known)

    async def refresh(self, since_ms: int, now_ms: int, until_ms: int | None = None) -> int:
        """Store the newest reading of each sensor among those taken in [since_ms, until_ms] (default now + 5 min),
        where it is newer than the stored one; the number of sensors updated."""
        if self.known is None:
            await self.load()
        assert self.known is not None
        r = READING
        q = (f"SELECT * FROM {self.client.table(r)} WHERE time >= $since AND time <= $until "
             f"GROUP BY {r.col('town')}, {r.col('sensor')} ORDER BY time DESC LIMIT 1 SLIMIT {self.max_sensors}")
        until = min(until_ms, now_ms + FUTURE_MS) if until_ms is not None else now_ms + FUTURE_MS
        params = {"since": since_ms * 1_000_000, "until": until * 1_000_000}
        points: list[Point] = []
        newer: dict[tuple[str, str], int] = {}
        for record in await self.client.query_records(q, params):
            key = (record.get("town") or "", record.get("sensor") or "")
            ts = int(record["time"])
            if not key[0] or not key[1] or ts <= self.known.get(key, -1):
                continue
            fields: dict[str, Any] = {"ts": ts}
            for f, kind in r.kinds.items():
                # InfluxDB's JSON writes 21.0 as 21: the stored type comes from the schema, not from JSON.
                fields[f] = _typed(record.get(f), kind)
            points.append(Point(LAST_READING.name, {"town": key[0], "sensor": key[1]}, fields, LAST_READING_TIME))
            newer[key] = ts
        if points:
            await self.client.write_points(points, rp=LAST_READING.rp)
            self.known.update(newer)  # only once durable: a failed write is retried by the next refresh
        return len(points)
