"""Erasing a sensor's data: the analytics end of a contributor's withdrawal (docs/citizens.md).

The api publishes a recompute request naming the sensors to erase (``erase``, :mod:`heatwatch.core.topics`):
analytics deletes every stored point of each — raw readings, hourly, daily, alerts, the last-value store —
counting them first, then recomputes the range so the town's indices no longer hold them, and records the
outcome in the contributors store's erasure log. DELETE by tag: ``town`` and ``sensor`` name the series.

Analytics holds WRITE on the readings database for this alone (InfluxDB 1.x has no DELETE-only grant:
``stack/influxusers.py``).
"""

from __future__ import annotations

from typing import Any

from heatwatch.core.changes import EVERYTHING, announce
from heatwatch.core.influx import InfluxClient, ident
from heatwatch.core.logging import get_logger
from heatwatch.core.measurements import ALERT, DAILY, HOURLY, LAST_READING, READING, Measurement

log = get_logger("heatwatch.analytics.erase")

#: Every measurement that holds points of one sensor (town_daily is the town's: it is recomputed, not deleted).
PER_SENSOR: tuple[Measurement, ...] = (READING, HOURLY, DAILY, ALERT, LAST_READING)


async def count_points(client: InfluxClient, m: Measurement, town: str, sensor: str) -> int:
    # COUNT(*) counts each field apart: a point is counted by its most-present field.
    rows = await client.query_records(
        f"SELECT COUNT(*) FROM {client.table(m)} WHERE {ident('town')} = $town AND {ident('sensor')} = $sensor",
        {"town": town, "sensor": sensor})
    return max((int(v) for r in rows for k, v in r.items() if k.startswith("count_") and v is not None), default=0)


async def erase_sensor(client: InfluxClient, town: str, sensor: str) -> dict[str, int]:
    """Delete every stored point of ``sensor`` of ``town``; the number of points each measurement held."""
    counts: dict[str, int] = {}
    for m in PER_SENSOR:
        counts[m.name] = await count_points(client, m, town, sensor)
        db = client.database_of(m.rp)
        await client.query(f"DELETE FROM {ident(m.name)} WHERE {ident('town')} = $town AND {ident('sensor')} = "
                           "$sensor", {"town": town, "sensor": sensor}, epoch=None, db=db)
    # Readers holding the town's aggregates in memory drop the sensor's rows (core/changes.py).
    await announce(client, town, *EVERYTHING)
    left = {m.name: n for m in PER_SENSOR if (n := await count_points(client, m, town, sensor))}
    if left:  # a write that raced the DELETE (the device still publishing): say so, the next request repeats it
        raise RuntimeError(f"points of {town}/{sensor} still stored after the DELETE: {left}")
    log.info("erase.done", town=town, sensor=sensor, **{f"n_{k}": v for k, v in counts.items()})
    return counts


def describe(counts: dict[str, int]) -> dict[str, Any]:
    return {"deleted": counts, "total": sum(counts.values())}
