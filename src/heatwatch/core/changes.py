"""Announcing a rewritten range of aggregates (``aggregate_change``, :mod:`.measurements`).

Analytics writes one point each time it rewrites or deletes a town's aggregates — a scheduled run, a recompute,
a backfill from the command line, an erasure — naming the range of time it touched. A reader that holds the
aggregates in memory (the api's resident aggregates, ``api/resident.py``) polls these points and reads the
range again: it sees a change within a second whoever made it, with no message bus between the services.
The points are tiny (one per run and town) and kept with the aggregates.
"""

from __future__ import annotations

import time

from .influx import InfluxClient
from .measurements import AGGREGATE_CHANGE

#: The range an erasure announces: a sensor's every point, whatever its time (1970 … 2100).
EVERYTHING = (0, 4_102_444_800_000)


def change_line(town: str, start_ms: int, end_ms: int, at_ms: int | None = None) -> str:
    """The line protocol of one change (town ids need no escaping: core/model.py)."""
    at = int(time.time() * 1000) if at_ms is None else at_ms
    return f"{AGGREGATE_CHANGE.name},town={town} range_start={int(start_ms)}i,range_end={int(end_ms)}i {at}"


async def announce(client: InfluxClient, town: str, start_ms: int, end_ms: int) -> None:
    """Record that ``town``'s aggregates in [start_ms, end_ms) were just rewritten or deleted."""
    await client.write_lines([change_line(town, start_ms, end_ms)], rp=AGGREGATE_CHANGE.rp)
