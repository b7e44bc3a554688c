"""The whole chain, as in production: simulated sensors of both towns in their three payload formats
→ real mosquitto → ``heatwatch ingest`` (child process) → real influxd → ``heatwatch backfill`` (child
process) → the api, which must serve exactly what was published and what analytics stored.

Three past local days, every example sensor, a 5-minute step and the simulator's faults on (a stuck,
a spiking, a drifting and an offline sensor per town, the offline one flushing its backlog as a JSON
array or a SenML pack): ~24k readings. The simulator's messages carry the readings a correct decoder
must recover, which is the reference everything is checked against. Days are recent (within the
ingester's backlog window), so the test runs on whatever date it is run.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import os
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from statistics import fmean
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.api.timeutil import iso_z
from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.model import Reading
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from heatwatch.simulate import Message, SimOptions, prepare
from heatwatch.stack.children import ServiceProcess
from support.apps import NO_LIMITS, with_api
from support.influx import count_readings, stored_keys
from support.mqtt import publish_all
from support.wait import settled_count

TOKEN = "test-admin-token-0123456789-abcdefghijkl"
TZ = ZoneInfo("Europe/Paris")
TOWNS = ("vitre", "saint-omer")
_ids = itertools.count()


def local_midnight(d: date) -> datetime:
    return datetime.combine(d, dtime(0), TZ).astimezone(UTC)


class Chain:
    """What was published and where it went."""

    def __init__(self, db: str, settings: Settings, days: list[date], messages: list[Message],
                 faulty: set[str]) -> None:
        self.db = db
        self.settings = settings
        self.days = days
        self.faulty = faulty  # sensors the simulator made faulty: QC may blank their values
        self.by_sensor: dict[str, list[tuple[Reading, str]]] = defaultdict(list)
        self.town_of: dict[str, str] = {}
        for m in messages:
            for r in m.readings:
                self.by_sensor[r.sensor].append((r, m.format))
                self.town_of[r.sensor] = r.town
        for readings in self.by_sensor.values():
            readings.sort(key=lambda x: x[0].ts_ms)

    @property
    def readings(self) -> int:
        return sum(len(v) for v in self.by_sensor.values())

    def sensors(self, town: str) -> set[str]:
        return {s for s, t in self.town_of.items() if t == town}

    @property
    def query_range(self) -> dict[str, str]:
        # Local dates: from the first day's midnight to the midnight after the last (exclusive).
        return {"from": self.days[0].isoformat(), "to": (self.days[-1] + timedelta(days=1)).isoformat()}


def wait_stored(influx_url: str, db: str, expected: int, timeout: float = 60) -> int:
    return settled_count(lambda: count_readings(influx_url, db), expected, timeout)


@pytest.fixture(scope="module")
def chain(mosquitto, influxd, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    root = tmp_path_factory.mktemp("end_to_end")
    data_dir = root / "var"
    db = f"e2e_{os.getpid()}_{next(_ids)}"
    # The ingester resolves TTS device ids and places sensors through the registry.
    with Registry(data_dir / "registry.sqlite", towns=TOWNS) as registry:
        assert registry.load_examples() > 0

    today = datetime.now(TZ).date()
    days = [today - timedelta(days=4 - i) for i in range(3)]
    sim = prepare(SimOptions(start=local_midnight(days[0]), end=local_midnight(days[-1] + timedelta(days=1)),
                             step=timedelta(minutes=5), format="profile", faults=True, heatwave=None))
    messages = list(sim.messages())
    assert {m.format for m in messages} == {"json", "senml", "tts"}
    assert any(len(m.readings) > 1 for m in messages), "no backlog flush among the faults"

    env = {"HEATWATCH_MQTT_URL": mosquitto.url, "HEATWATCH_INFLUX_URL": influxd.url, "HEATWATCH_INFLUX_DB": db,
           "HEATWATCH_DATA_DIR": str(data_dir), "HEATWATCH_MQTT_CLIENT_ID": f"ingest-e2e-{db}",
           "HEATWATCH_BATCH_SIZE": "2000", "HEATWATCH_BATCH_INTERVAL_S": "0.2"}
    ingester = ServiceProcess(["ingest"], env, root / "ingest.log", name="ingest")
    result = Chain(db, Settings.load(influx_url=influxd.url, influx_db=db, mqtt_url=mosquitto.url,
                                     data_dir=data_dir, admin_token=TOKEN), days, messages,
                   {f.sensor for f in sim.faults})
    ingester.start(ready_marker="mqtt.subscribed")
    try:
        assert publish_all(mosquitto.url, [(m.topic, m.payload) for m in messages]) == len(messages)
        stored_n = wait_stored(influxd.url, db, result.readings)
    finally:
        code = ingester.stop()
    assert stored_n == result.readings and code == 0, ingester.log_text()[-3000:]
    expected = sorted((r.town, r.sensor, r.ts_ms) for v in result.by_sensor.values() for r, _ in v)
    assert sorted(stored_keys(influxd.url, db)) == expected

    # Analytics as an operator runs it over past days: the backfill command, same environment.
    backfill = ServiceProcess(["backfill", "--from", days[0].isoformat(), "--to", days[-1].isoformat()], env,
                              root / "backfill.log", name="backfill").start()
    assert backfill.proc is not None
    assert backfill.proc.wait(120) == 0, backfill.log_text()[-3000:]
    assert "points written" in backfill.log_text()
    return result


@pytest.fixture(scope="module")
def api(chain: Chain) -> Iterator[TestClient]:
    with TestClient(create_app(with_api(chain.settings, **NO_LIMITS))) as client:
        yield client


def stored(chain: Chain, measurement: str, town: str) -> dict[tuple[str | None, int], dict[str, Any]]:
    """Aggregate points analytics wrote, keyed by (sensor, epoch ms)."""

    async def go() -> list[dict[str, Any]]:
        async with InfluxClient(chain.settings.influx_base_url, chain.db) as c:
            return await c.query_records(f'SELECT * FROM {c.qualified(measurement, AGG_RP)} WHERE "town" = $c',
                                         {"c": town})

    return {(r.get("sensor"), int(r["time"])): r for r in asyncio.run(go())}


def all_rows(api: TestClient, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of a paged JSON answer, following the next links."""
    rows: list[dict[str, Any]] = []
    r = api.get(path, params=params)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["data"]
        nxt = body["meta"].get("next")
        if not nxt:
            return rows
        r = api.get(nxt)


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def site_classes(api: TestClient, town: str) -> dict[str, dict[str, Any]]:
    r = api.get("/v1/sensors", params={"town": town})
    assert r.status_code == 200, r.text
    return {s["id"]: s for s in r.json()["data"]}


def test_nothing_was_dead_lettered(api: TestClient) -> None:
    r = api.get("/v1/admin/deadletters", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json()["counts"] == {}, r.text


@pytest.mark.parametrize("town", TOWNS)
def test_latest_is_the_last_published_reading_of_every_sensor(api: TestClient, chain: Chain, town: str) -> None:
    r = api.get("/v1/latest", params={"town": town})
    assert r.status_code == 200, r.text
    rows = {row["sensor"]: row for row in r.json()["data"]}
    assert set(rows) == chain.sensors(town)
    for sensor, row in rows.items():
        last, fmt = chain.by_sensor[sensor][-1]
        assert (row["time"], row["temperature"], row["humidity"]) == (iso_z(last.ts_ms), last.temperature,
                                                                      last.humidity), sensor
        assert row["source"] == fmt and row["status"] != "unregistered"


@pytest.mark.parametrize("fmt", ["json", "senml", "tts"])
def test_readings_of_a_sensor_are_exactly_what_it_published(api: TestClient, chain: Chain, fmt: str) -> None:
    # The sensor of that format with the most messages: a backlog sensor if there is one.
    candidates = [s for s, v in chain.by_sensor.items() if v[0][1] == fmt]
    sensor = max(candidates, key=lambda s: len(chain.by_sensor[s]))
    town = chain.town_of[sensor]
    rows = all_rows(api, "/v1/readings", {"town": town, "sensor": sensor, "limit": 500, **chain.query_range})
    got = [(row["time"], row["temperature"], row["humidity"], row["battery_v"], row["rssi"], row["source"])
           for row in rows]
    want = [(iso_z(r.ts_ms), r.temperature, r.humidity, r.battery_v, r.rssi, f) for r, f in chain.by_sensor[sensor]]
    assert got == want


@pytest.mark.parametrize("town", TOWNS)
def test_daily_rows_are_what_analytics_stored(api: TestClient, chain: Chain, town: str) -> None:
    rows = all_rows(api, "/v1/daily", {"town": town, "limit": 1000, **chain.query_range})
    points = stored(chain, "daily", town)
    assert len(rows) == len(points) and {row["date"] for row in rows} == {d.isoformat() for d in chain.days}
    per_day = defaultdict(set)
    for row in rows:
        per_day[row["date"]].add(row["sensor"])
        point = points[(row["sensor"], ms(row["time"]))]
        for field in ("tn", "tx", "t_mean", "rh_mean", "heat_index_max", "humidex_max", "uhi_mean",
                      "uhi_night_max", "hours_ge_30", "tropical_night", "coverage", "qc"):
            assert row[field] == point.get(field), (row["sensor"], row["date"], field)
    # A row per sensor and day: every sensor published on every day.
    assert all(sensors == chain.sensors(town) for sensors in per_day.values()), per_day

    # The CSV export holds the same rows.
    r = api.get("/v1/daily", params={"town": town, "format": "csv", **chain.query_range})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert len(table) == len(rows)
    assert {(t["sensor"], t["date"]) for t in table} == {(row["sensor"], row["date"]) for row in rows}


@pytest.mark.parametrize("town", TOWNS)
def test_indices_are_what_analytics_stored(api: TestClient, chain: Chain, town: str) -> None:
    r = api.get("/v1/indices", params={"town": town, **chain.query_range})
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    points = stored(chain, "town_daily", town)
    assert [row["date"] for row in rows] == [d.isoformat() for d in chain.days]
    daily = stored(chain, "daily", town)
    for row in rows:
        point = points[(None, ms(row["time"]))]
        for field in ("ibmn", "ibmx", "canicule", "uhi_mean", "uhi_max", "hottest_sensor", "sensors_ok"):
            assert row[field] == point.get(field), (row["date"], field)
        nights = sum(1 for (_, t), p in daily.items() if t == ms(row["time"]) and p.get("tropical_night"))
        assert row["tropical_nights"] == nights
        assert row["hottest_sensor"] in chain.sensors(town)
        assert 0 < row["sensors_ok"] <= len(chain.sensors(town))


@pytest.mark.parametrize("town", TOWNS)
def test_heat_island_is_plausible(api: TestClient, chain: Chain, town: str) -> None:
    sites = site_classes(api, town)
    reference = chain.settings.towns[town].reference_sensors
    rows = all_rows(api, "/v1/hourly", {"town": town, "limit": 10000, **chain.query_range})
    night = [row for row in rows
             if not 6 <= datetime.fromisoformat(row["time"].replace("Z", "+00:00")).astimezone(TZ).hour < 18]
    urban = [row["uhi"] for row in night
             if sites[row["sensor"]]["site_class"] == "urban" and row["uhi"] is not None and row["qc"] == 0]
    assert urban and fmean(urban) > 0.5, fmean(urban)  # Rennes: 1.3 °C on average, more at night
    ref = [row["uhi"] for row in rows if row["sensor"] in reference]
    assert ref and all(v == 0 for v in ref if v is not None)
    daily = all_rows(api, "/v1/daily", {"town": town, "limit": 1000, **chain.query_range})
    assert all(row["uhi_mean"] == 0 for row in daily if row["sensor"] in reference)


@pytest.mark.parametrize("town", TOWNS)
def test_uhi_snapshot_has_every_placed_sensor(api: TestClient, chain: Chain, town: str) -> None:
    night = chain.days[1]  # its row is the third day's, fully inside the published range
    r = api.get("/v1/uhi", params={"town": town, "night": night.isoformat(), "format": "geojson"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json"), r.text
    body = r.json()
    features = {f["id"]: f for f in body["features"]}
    sites = site_classes(api, town)
    daily = stored(chain, "daily", town)
    row_day = int(local_midnight(night + timedelta(days=1)).timestamp() * 1000)
    placed = {s for s in chain.sensors(town)
              if sites[s]["latitude"] is not None and sites[s]["site_class"] != "rural_reference"}
    # A sensor whose night QC flagged out (a stuck or drifting one) has no value to map.
    valued = {s for s in placed if daily[(s, row_day)].get("uhi_night_max") is not None}
    assert placed - valued <= chain.faulty and len(valued) > len(placed) // 2
    assert valued <= set(features)
    for sensor in valued:
        assert features[sensor]["geometry"]["coordinates"] == [sites[sensor]["longitude"], sites[sensor]["latitude"]]
    for sensor, f in features.items():
        assert f["properties"]["uhi"] == daily[(sensor, row_day)].get("uhi_night_max"), sensor
        if sensor in chain.settings.towns[town].reference_sensors:
            assert f["properties"]["uhi"] == 0
