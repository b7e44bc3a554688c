"""Resident aggregates (api/resident.py): answers from memory are the answers InfluxDB gives, and stay so when
analytics rewrites or erases a range.

Two apps on one database, one holding the recent aggregates in memory and one reading InfluxDB for every request
(``resident_days=0``), must answer every request byte for byte alike: per-sensor daily rows with sensors sharing
each timestamp (pages cut between them), qc filters, the town network without its citizen sensors, counts, CSV,
the town's indices, ranges reaching before the window (read from InfluxDB), and latest.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.api.store import Filter
from heatwatch.core.changes import EVERYTHING, announce
from heatwatch.core.datasets import DAILY
from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.model import Sensor
from heatwatch.core.registry import Registry
from heatwatch.stack.embedded import Influxd
from support.apps import NO_LIMITS, with_api
from support.wait import wait_until

SENSORS = ("v-a", "v-b", "v-c", "v-citizen")
DAYS = 30
RESIDENT = {**NO_LIMITS, "resident_days": 20, "resident_check_s": 0.05}


def _midnight_ms(d: date) -> int:
    return int(datetime.combine(d, datetime.min.time(), UTC).timestamp() * 1000) - 3600_000  # 23:00 UTC


def _daily(sensor: str, d: date, k: int, *, tn: float | None = None) -> str:
    tn = 14.0 + k + (d.toordinal() % 7) if tn is None else tn
    qc = 0 if (d.toordinal() + k) % 4 else 8
    # v-c has no humidity on some days: a field left out must be null alike on both paths.
    rh = "" if sensor == "v-c" and d.toordinal() % 3 == 0 else "rh_mean=55.5,"
    return (f"daily,town=vitre,sensor={sensor} tn={tn},tx={tn + 10},t_mean={tn + 5},{rh}heat_index_max=30.0,"
            f"humidex_max=31.0,uhi_mean={k * 0.5},uhi_night_max={k * 0.7},hours_ge_30={k}i,"
            f"tropical_night={'true' if tn >= 20 else 'false'},coverage=0.97,qc={qc}i {_midnight_ms(d)}")


def _town_daily(d: date) -> str:
    return (f'town_daily,town=vitre ibmn=15.5,ibmx={25 + d.toordinal() % 9},canicule=false,uhi_mean=1.1,'
            f'uhi_max=2.2,hottest_sensor="v-a",sensors_ok=4i,tropical_nights={d.toordinal() % 3}i,'
            f'tropical_nights_town={d.toordinal() % 2}i {_midnight_ms(d)}')


def _write(url: str, db: str, lines: list[str], rp: str = AGG_RP, *, announced: tuple[int, int] | None = None
           ) -> None:
    async def go() -> None:
        async with InfluxClient(url, db) as c:
            await c.setup()
            if lines:
                await c.write_lines(lines, rp=rp)
            if announced is not None:
                await announce(c, "vitre", *announced)

    asyncio.run(go())


@pytest.fixture
def apps(influxd, db_name, api_settings) -> Any:
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    lines = [_daily(s, d, k) for d in days for k, s in enumerate(SENSORS)] + [_town_daily(d) for d in days]
    lines.append(f"last_reading,town=vitre,sensor=v-a ts={_midnight_ms(today)}i,temperature=21.5,humidity=50.0 0")
    _write(influxd.url, db_name, lines)
    with Registry.from_settings(api_settings) as registry:
        registry.upsert(Sensor(id="v-citizen", town="vitre", owner="citizen", trust="confirmed",
                               trust_since=days[0], latitude=48.12, longitude=-1.2))
        for s in SENSORS[:3]:
            registry.upsert(Sensor(id=s, town="vitre", latitude=48.12, longitude=-1.2))
    resident = TestClient(create_app(with_api(api_settings, **RESIDENT)))
    plain = TestClient(create_app(with_api(api_settings, **NO_LIMITS)))
    with resident, plain:
        held = resident.app.state.resident
        wait_until(lambda: held.ready and held.latest("vitre") is not None, 30, "resident aggregates loaded")
        yield {"resident": resident, "plain": plain, "days": days, "held": held, "url": influxd.url, "db": db_name}


def _canonical(r: Any) -> Any:
    """An answer with rows sharing a timestamp in one order: InfluxDB orders them differently from one statement to
    the next (the resident rows are sorted by sensor), and nothing else may differ."""
    if r.headers["content-type"].startswith("text/csv"):
        head, *rows = r.content.split(b"\r\n")
        return head, sorted(rows)
    body = r.json()
    rows = body.get("data")
    if isinstance(rows, list):
        body["data"] = sorted(rows, key=lambda x: (x.get("time"), x.get("sensor") or ""))
    return body


def _same(apps: dict[str, Any], path: str, params: dict[str, Any]) -> Any:
    a = apps["resident"].get(path, params=params)
    b = apps["plain"].get(path, params=params)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert _canonical(a) == _canonical(b), (path, params)
    # the same headers, but for what depends on the order of tied rows (the ETag, the gzipped length)
    assert ({k: v for k, v in a.headers.items() if k not in ("etag", "content-length")}
            == {k: v for k, v in b.headers.items() if k not in ("etag", "content-length")})
    return a


def test_resident_answers_are_influxdb_answers(apps) -> None:
    days = apps["days"]
    inside = {"town": "vitre", "from": days[-15].isoformat(), "to": (days[-1] + timedelta(days=1)).isoformat()}
    before = {"town": "vitre", "from": days[0].isoformat(), "to": days[-3].isoformat()}  # starts before the window
    daily = [
        inside, inside | {"sensor": "v-b"}, inside | {"sensor": "v-c", "times": "local"},
        inside | {"qc": 0}, inside | {"qc_max": 0, "network": "town"}, inside | {"network": "citizen"},
        inside | {"count": "true", "qc": 8}, inside | {"format": "csv", "sep": ";"}, inside | {"sensor": "nobody"},
        before, before | {"sensor": "v-a"},
    ]
    for params in daily:
        _same(apps, "/v1/daily", params)
    # pages cut between the four rows of a timestamp: each next link followed on both
    page = _same(apps, "/v1/daily", inside | {"limit": 7}).json()
    pages, rows = 1, len(page["data"])
    while page["meta"]["next"]:
        page = _same(apps, "/v1/daily", dict(parse_qsl(urlsplit(page["meta"]["next"]).query))).json()
        pages += 1
        rows += len(page["data"])
    assert rows == 15 * 4 and pages >= 8
    for params in (inside, inside | {"network": "town", "format": "csv"}, before):
        _same(apps, "/v1/indices", params)
    _same(apps, "/v1/canicule-episodes", inside)
    _same(apps, "/v1/latest", {"town": "vitre"})
    # and the resident rows were the ones answering what the window holds, InfluxDB the rest
    held = apps["held"].rows(DAILY, Filter(_midnight_ms(days[-15]), _midnight_ms(days[-1]) + 86_400_000,
                                           town="vitre"))
    assert held is not None and len(held) == 15 * 4
    assert apps["held"].rows(DAILY, Filter(_midnight_ms(days[0]), _midnight_ms(days[-1]), town="vitre")) is None


def test_a_rewritten_range_is_read_again_once_announced(apps) -> None:
    days, resident = apps["days"], apps["resident"]
    d = days[-2]
    params = {"town": "vitre", "sensor": "v-a", "from": d.isoformat(), "to": (d + timedelta(days=1)).isoformat()}
    assert resident.get("/v1/daily", params=params).json()["data"][0]["tn"] != 27.5
    # As analytics does: write, then announce the range (core/changes.py).
    _write(apps["url"], apps["db"], [_daily("v-a", d, 0, tn=27.5)],
           announced=(_midnight_ms(d) - 86_400_000, _midnight_ms(d) + 2 * 86_400_000))
    wait_until(lambda: resident.get("/v1/daily", params=params).json()["data"][0]["tn"] == 27.5, 30,
               "the rewritten day answered")
    _same(apps, "/v1/daily", params)


def test_a_held_day_without_its_nights_stored_is_counted_from_daily(apps) -> None:
    """Town days stored before analytics stored their tropical nights: the held path counts them as InfluxDB's."""
    days, resident = apps["days"], apps["resident"]
    d = days[-1] + timedelta(days=1)  # stamped at its local midnight: inside the window held (AHEAD_MS)
    lines = [_daily(s, d, k, tn=21.0 + k) for k, s in enumerate(SENSORS)]
    lines.append(f"town_daily,town=vitre ibmn=15.5,ibmx=25,canicule=false,uhi_mean=1.1 {_midnight_ms(d)}")
    _write(apps["url"], apps["db"], lines, announced=(_midnight_ms(d) - 3600_000, _midnight_ms(d) + 86_400_000))
    params = {"town": "vitre", "from": days[-3].isoformat(), "to": (d + timedelta(days=1)).isoformat()}
    wait_until(lambda: len(resident.get("/v1/indices", params=params).json()["data"]) == 4, 30, "the new day held")
    body = _same(apps, "/v1/indices", params).json()
    assert [r["tropical_nights"] for r in body["data"]][-1] == 4  # counted from the four sensors' daily rows
    assert all(r["tropical_nights"] is not None for r in body["data"])


def test_an_erased_sensor_leaves_the_resident_rows(apps) -> None:
    days, resident = apps["days"], apps["resident"]
    params = {"town": "vitre", "from": days[-10].isoformat(), "to": (days[-1] + timedelta(days=1)).isoformat()}
    assert "v-citizen" in {r["sensor"] for r in resident.get("/v1/daily", params=params).json()["data"]}

    async def erase() -> None:
        async with InfluxClient(apps["url"], apps["db"]) as c:
            await c.query("DELETE FROM daily WHERE town = 'vitre' AND sensor = 'v-citizen'", epoch=None,
                          db=c.agg_database)
            await announce(c, "vitre", *EVERYTHING)  # what analytics' erasure announces

    asyncio.run(erase())
    wait_until(lambda: "v-citizen" not in {r["sensor"] for r in resident.get("/v1/daily", params=params).json()[
        "data"]}, 30, "the erased sensor gone")
    _same(apps, "/v1/daily", params)


def test_recent_days_are_read_again_without_an_announcement(influxd, db_name, api_settings) -> None:
    """Another writer than analytics (an import, a restore): the last days are read again every refresh period."""
    today = datetime.now(UTC).date()
    _write(influxd.url, db_name, [_town_daily(today - timedelta(days=1))])
    options = {**RESIDENT, "resident_refresh_s": 0.2}
    with TestClient(create_app(with_api(api_settings, **options))) as client:
        held = client.app.state.resident
        wait_until(lambda: held.ready, 30, "resident aggregates loaded")
        params = {"town": "vitre", "from": (today - timedelta(days=3)).isoformat(),
                  "to": (today + timedelta(days=1)).isoformat()}
        assert len(client.get("/v1/indices", params=params).json()["data"]) == 1
        _write(influxd.url, db_name, [_town_daily(today - timedelta(days=2))])  # no announcement
        wait_until(lambda: len(client.get("/v1/indices", params=params).json()["data"]) == 2, 30,
                   "the new day read with the recent days")


def test_rows_stop_being_used_when_the_database_cannot_be_read(tmp_path, api_settings) -> None:
    """Never an answer silently stuck in the past: once the database has been unreadable for three refresh periods,
    reads go to InfluxDB again (and fail there, with a 503)."""
    own = Influxd(tmp_path / "influxd").start()
    try:
        settings = api_settings.model_copy(update={"influx_url": own.url})
        today = datetime.now(UTC).date()
        _write(own.url, settings.influx_db, [_town_daily(today)])
        params = {"town": "vitre", "from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat()}
        with TestClient(create_app(with_api(settings, **RESIDENT, resident_refresh_s=0.1))) as client:
            held = client.app.state.resident
            wait_until(lambda: held.ready, 30, "resident aggregates loaded")
            own.stop()
            assert client.get("/v1/indices", params=params).status_code == 200  # held, for a moment
            wait_until(lambda: not held.ready, 30, "the resident rows no longer trusted")
            r = client.get("/v1/indices", params=params)
            assert r.status_code == 503, r.text
    finally:
        own.stop()


def test_a_filter_keeps_in_memory_what_its_statement_selects() -> None:
    """Filter.keeps is Filter.where on a held row: exact qc, qc at most, sensors left out or only some; a row without
    qc (a town's indices) fails any qc condition, as a point without the field does in InfluxDB."""
    span = (0, 1)
    assert Filter(*span).keeps(None, None) and not Filter(*span).selects_rows
    assert Filter(*span, qc=0).keeps(0, "a") and not Filter(*span, qc=0).keeps(8, "a")
    assert not Filter(*span, qc=0).keeps(None, None) and not Filter(*span, qc_max=8).keeps(None, "a")
    assert Filter(*span, qc_max=8).keeps(8, "a") and not Filter(*span, qc_max=8).keeps(9, "a")
    assert not Filter(*span, exclude=("a",)).keeps(0, "a") and Filter(*span, exclude=("a",)).keeps(0, "b")
    assert Filter(*span, only=("a",)).keeps(0, "a") and not Filter(*span, only=("a",)).keeps(0, "b")
    assert not Filter(*span, only=()).keeps(0, "a") and Filter(*span, only=()).selects_rows


def test_a_range_read_again_is_spliced_as_indexing_from_scratch_would_give() -> None:
    """Table.replace splices a re-read range into each sensor's rows: the same table as indexing every row again,
    whether the range brings new sensors, drops sensors (an erasure), or changes nothing."""
    import random

    from heatwatch.api.formats import stored_json, stored_names
    from heatwatch.api.resident import Table

    names = stored_names(DAILY)
    day = 86_400_000
    rng = random.Random(3)

    def row(t: int, sensor: str) -> list[Any]:
        return [t, "vitre", sensor, *(rng.choice([None, 1.5, 20.0 + rng.random()]) for _ in DAILY.fields)]

    for _ in range(40):
        sensors = [f"s{k}" for k in range(rng.randint(1, 6))]
        rows = [row(d * day, s) for d in range(30) for s in sensors if rng.random() < 0.8]
        table = Table.of([r[:] for r in rows], 2, names)
        start, end = sorted(rng.sample(range(-2, 33), 2))
        start_ms, end_ms = start * day, end * day
        pool = [*sensors, "new"] if rng.random() < 0.5 else sensors[:1]
        fresh = [row(d * day, s) for d in range(start, end) for s in pool if rng.random() < 0.6]
        table.replace(start_ms, end_ms, [r[:] for r in fresh], 2, names)
        kept = [r for r in rows if not start_ms <= r[0] < end_ms]
        want = Table.of([r[:] for r in kept + fresh], 2, names)
        assert table.rows == want.rows and table.times == want.times and table.by_sensor == want.by_sensor
        assert table.texts == want.texts == [stored_json(names, r) for r in want.rows]
