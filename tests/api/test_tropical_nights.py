"""Tropical nights of ``/v1/indices`` are counted by analytics when it computes a town-day (``town_daily``'s
``tropical_nights`` and ``tropical_nights_town``), no longer by the api from every sensor-day at each request.

Through the real influxd, analytics' recompute and the api: the stored counts and the api's answers equal a plain
count of the stored per-sensor flags (``daily.tropical_night``) over the sensors the town's values count (its own
and confirmed citizen sensors) and, with ``network=town``, over its own only — after the first computation, after a
recompute that takes a night away, and after a contributor's erasure. Days stored before the counts were are
still answered, counted from ``daily`` as before.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from analytics.weektools import WEEK_DAYS, simulate_week, write_readings
from heatwatch.analytics.erase import erase_sensor
from heatwatch.analytics.jobs import Analytics
from heatwatch.api.app import create_app
from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.measurements import TOWN_DAILY as TOWN_DAILY_M
from heatwatch.core.model import Reading, Sensor
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings, load_towns
from support.apps import NO_LIMITS, with_api

TOWN = "vitre"
TZ = ZoneInfo("Europe/Paris")
DAYS = WEEK_DAYS[2:6]
TOWNS = load_towns()
#: Residents' sensors next to the town's warmest site (copies of its readings): one confirmed, one provisional.
CONFIRMED, PROVISIONAL = "vitre-res-01", "vitre-res-02"


def _resident(sensor_id: str, trust: str, like: Sensor) -> Sensor:
    return like.model_copy(update={"id": sensor_id, "name": "", "owner": "citizen", "trust": trust,
                                   "mqtt_identity": None, "device_profile": None})


@pytest.fixture(scope="module")
def world(influxd, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("tropical")
    db = f"tropical_{os.getpid()}"
    registry = Registry(root / "var" / "registry.sqlite", towns=TOWNS.keys())
    registry.load_examples()
    readings = [r for r in simulate_week(faults=False).readings() if r.town == TOWN]
    means = Counter()
    for r in readings:
        means[r.sensor] += r.temperature
    warmest = max((s for s in registry.list(town=TOWN) if s.site_class.value == "urban"), key=lambda s: means[s.id])
    for sensor_id, trust in ((CONFIRMED, "confirmed"), (PROVISIONAL, "provisional")):
        registry.upsert(_resident(sensor_id, trust, warmest))
        readings += [Reading(town=TOWN, sensor=sensor_id, ts_ms=r.ts_ms, temperature=r.temperature,
                             humidity=r.humidity) for r in readings if r.sensor == warmest.id]
    write_readings(influxd.url, db, readings)
    settings = with_api(Settings.load(influx_url=influxd.url, influx_db=db, data_dir=root / "var"), **NO_LIMITS)
    world = {"url": influxd.url, "db": db, "registry": registry, "settings": settings, "warmest": warmest.id}
    recompute(world)
    yield world
    registry.close()


def recompute(world: dict[str, Any]) -> None:
    async def go() -> None:
        async with InfluxClient(world["url"], world["db"], timeout=60) as c:
            await Analytics(c, {TOWN: TOWNS[TOWN]}, world["registry"]).recompute(TOWN, DAYS)

    asyncio.run(go())


def query(world: dict[str, Any], q: str, params: dict[str, Any] | None = None, rp: str = AGG_RP) -> list[dict]:
    async def go() -> list[dict]:
        async with InfluxClient(world["url"], world["db"]) as c:
            if rp != AGG_RP:
                return await c.query_records(q, params)
            return await c.query_records(q.format(agg=f'"{c.agg_database}"."agg"'), params)

    return asyncio.run(go())


def counted(world: dict[str, Any]) -> tuple[Counter[str], Counter[str], set[str]]:
    """Per local day, the stored daily flags counted plainly over the sensors the town's values count, and over
    its own network; and which sensors had a tropical night at all."""
    citizens = {s.id for s in world["registry"].list(town=TOWN) if s.owner == "citizen"}
    provisional = {s.id for s in world["registry"].list(town=TOWN) if s.owner == "citizen" and s.trust != "confirmed"}
    every, own, who = Counter(), Counter(), set()
    for p in query(world, 'SELECT "tropical_night", "sensor" FROM {agg}."daily" WHERE "town" = $t', {"t": TOWN}):
        if p["tropical_night"] is True:
            day = _day(p["time"])
            who.add(p["sensor"])
            every[day] += p["sensor"] not in provisional
            own[day] += p["sensor"] not in citizens
    return every, own, who


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(TZ).date().isoformat()


def indices(world: dict[str, Any], **params: str) -> dict[str, dict[str, Any]]:
    span = {"town": TOWN, "from": DAYS[0].isoformat(), "to": (DAYS[-1] + timedelta(days=1)).isoformat()}
    with TestClient(create_app(world["settings"])) as c:
        r = c.get("/v1/indices", params=span | params)
    assert r.status_code == 200, r.text
    return {row["date"]: row for row in r.json()["data"]}


def check(world: dict[str, Any]) -> tuple[Counter[str], Counter[str], set[str]]:
    every, own, who = counted(world)
    stored = {_day(p["time"]): p for p in query(world, 'SELECT * FROM {agg}."town_daily" WHERE "town" = $t',
                                                 {"t": TOWN})}
    days = [d.isoformat() for d in DAYS]
    assert sorted(stored) == days
    assert {d: stored[d]["tropical_nights"] for d in days} == {d: every[d] for d in days}
    assert {d: stored[d]["tropical_nights_town"] for d in days} == {d: own[d] for d in days}
    assert {d: r["tropical_nights"] for d, r in indices(world).items()} == {d: every[d] for d in days}
    assert {d: r["tropical_nights"] for d, r in indices(world, network="town").items()} == {d: own[d] for d in days}
    return every, own, who


def test_stored_counts_are_the_counted_ones(world) -> None:
    every, own, who = check(world)
    # Not vacuous: the heat wave gives tropical nights, the confirmed resident's count in the town's values and
    # never with network=town, the provisional one's nowhere.
    assert sum(own.values()) > 0 and {CONFIRMED, PROVISIONAL} <= who
    assert all(every[d] == own[d] + (CONFIRMED in who and _had(world, CONFIRMED, d)) for d in every)


def _had(world: dict[str, Any], sensor: str, day: str) -> bool:
    return any(p["tropical_night"] is True and _day(p["time"]) == day
               for p in query(world, 'SELECT "tropical_night", "sensor" FROM {agg}."daily" WHERE "sensor" = $s',
                              {"s": sensor}))


def test_a_recompute_keeps_them_right(world) -> None:
    """A sensor's night loses its readings (Tn below 80 % coverage: no tropical night); the recompute of the day
    counts one night less, in both variants."""
    before, own_before, _ = counted(world)
    night = next(p for p in query(world, 'SELECT "tropical_night", "sensor" FROM {agg}."daily" WHERE "sensor" = $s',
                                  {"s": world["warmest"]}) if p["tropical_night"] is True and _day(p["time"])
                 in {d.isoformat() for d in DAYS})
    day = _day(night["time"])
    # Tn of D is read over 18:00 UTC D-1 … 18:00 UTC D: take 12 hours of it away.
    start_ns = (night["time"] - 4 * 3600_000) * 1_000_000  # local midnight is 22:00 UTC in summer
    query(world, 'DELETE FROM "reading" WHERE "sensor" = $s AND time >= $a AND time < $b',
          {"s": world["warmest"], "a": start_ns, "b": start_ns + 12 * 3600 * 10**9}, rp="raw")
    recompute(world)
    after, own_after, _ = check(world)
    assert after[day] == before[day] - 1 and own_after[day] == own_before[day] - 1


def test_an_erasure_keeps_them_right(world) -> None:
    """A resident withdraws: analytics erases the sensor and recomputes the range (analytics/erase.py)."""
    before, own_before, _ = counted(world)

    async def erase() -> None:
        async with InfluxClient(world["url"], world["db"], timeout=60) as c:
            await erase_sensor(c, TOWN, CONFIRMED)

    asyncio.run(erase())
    recompute(world)
    after, own_after, who = check(world)
    assert CONFIRMED not in who and after == own_after and own_after == own_before
    assert sum(before.values()) > sum(after.values())


def test_days_stored_before_the_counts_are_still_counted(world) -> None:
    """A town-day written before town_daily held its counts (an older deployment, before a backfill)."""
    every, own, _ = counted(world)
    day = max(every, key=lambda d: every[d])
    point = next(p for p in query(world, 'SELECT * FROM {agg}."town_daily" WHERE "town" = $t', {"t": TOWN})
                 if _day(p["time"]) == day)
    kinds = TOWN_DAILY_M.kinds  # JSON writes 25.0 as 25: the stored type comes from the schema
    fields = {k: (float(v) if kinds[k] == "float" else v) for k, v in point.items()
              if k in kinds and k not in ("tropical_nights", "tropical_nights_town") and v is not None}

    async def rewrite() -> None:
        from heatwatch.core.lineprotocol import Point

        async with InfluxClient(world["url"], world["db"]) as c:
            await c.query(f'DELETE FROM "town_daily" WHERE time = {point["time"] * 1_000_000}',
                          epoch=None, db=c.agg_database)
            await c.write_points([Point("town_daily", {"town": TOWN}, fields, point["time"])], rp=AGG_RP)

    asyncio.run(rewrite())
    rows = indices(world)
    assert rows[day]["tropical_nights"] == every[day] and rows[day]["ibmn"] == point["ibmn"]
    assert indices(world, network="town")[day]["tropical_nights"] == own[day]
    recompute(world)  # what a backfill does: the day holds its counts again
    check(world)
