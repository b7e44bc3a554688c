"""sensor.community stations as citizen sensors (docs/citizens.md, "sensor.community"): archive files and the data
API shape (tests/analytics/data/sensor_community/, captured shapes) into the registry and InfluxDB, with provenance
and the ODbL licence, indoor stations refused, and the scheduled pull of ``heatwatch analytics`` against a local
HTTP server standing in for data.sensor.community."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from heatwatch.analytics.scheduler import AnalyticsService
from heatwatch.analytics.sensorcommunity import Box, parse_api, parse_archive
from heatwatch.api.app import create_app
from heatwatch.cli import main
from heatwatch.core.influx import InfluxClient
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from support.apps import NO_LIMITS, with_api

DATA = Path(__file__).parent / "data" / "sensor_community"
ARCHIVE = sorted(p for p in DATA.glob("*.csv") if "sds011" not in p.name)
API = DATA / "filter_box_vitre.json"
VITRE_BOX = Box("vitre", 48.0786, -1.2762, 48.1686, -1.1416)


# Parsing: the real shapes ------------------------------------------------------------------------------


def test_archive_files_of_each_type_are_read_by_their_header() -> None:
    dht = list(parse_archive(DATA / "2025-07-08_dht22_sensor_61234.csv"))
    assert len(dht) == 7 and {r.sc_id for r in dht} == {61234} and dht[0].sensor_type == "DHT22"
    assert (dht[0].lat, dht[0].lon, dht[0].temperature, dht[0].humidity) == (48.125, -1.206, 19.4, 71.2)
    assert dht[0].ts_ms == int(datetime(2025, 7, 8, 0, 1, 12, tzinfo=UTC).timestamp() * 1000)  # naive = UTC
    assert (dht[2].temperature, dht[2].humidity) == (None, None)  # an empty row
    bme = list(parse_archive(DATA / "2025-07-08_bme280_sensor_61240.csv"))  # pressure columns first
    assert (bme[0].temperature, bme[0].humidity) == (20.75, 63.35)
    old = list(parse_archive(DATA / "2016-08-13_dht22_sensor_48.csv"))  # microseconds and an offset
    assert old[1].ts_ms == int(datetime(2016, 8, 13, 0, 2, 55, 412990, tzinfo=UTC).timestamp() * 1000)
    with pytest.raises(ValueError, match=r"not a sensor\.community archive file of a temperature sensor"):
        list(parse_archive(DATA / "2025-07-08_sds011_sensor_61233.csv"))


def test_the_data_api_shape_is_read_with_string_values() -> None:
    rows = list(parse_api(json.loads(API.read_text())))
    assert len(rows) == 6
    first = rows[0]
    assert (first.sc_id, first.sensor_type, first.lat, first.lon, first.temperature, first.humidity, first.indoor) \
        == (61234, "DHT22", 48.125, -1.206, 27.4, 41.2, False)
    assert first.ts_ms == int(datetime(2025, 7, 8, 14, 1, 3, tzinfo=UTC).timestamp() * 1000)
    assert [r.indoor for r in rows].count(True) == 1
    assert rows[1].sensor_type == "SDS011" and rows[1].temperature is None
    with pytest.raises(ValueError):
        list(parse_api({"error": "not an array"}))


def test_a_towns_box_and_the_api_filter() -> None:
    from heatwatch.core.settings import CoreSettings

    box = Box.around(CoreSettings.load().towns["vitre"], 5.0)
    assert box.contains(48.125, -1.206) and not box.contains(48.112, -1.680)  # Vitré, not Rennes
    assert box.query == f"box={box.south},{box.west},{box.north},{box.east}"
    assert abs((box.north - box.south) * 111.195 - 10.0) < 0.01


# Import and pull into the real database ---------------------------------------------------------------


class FakeApi:
    """A local HTTP server answering every /airrohr/v1/filter/… with the captured answer; the paths asked are
    kept."""

    def __init__(self, body: bytes) -> None:
        paths: list[str] = []
        self.paths = paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                ok = self.path.startswith("/airrohr/v1/filter/")
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body if ok else b"[]")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world(influxd, module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("sensor_community")
    api = FakeApi(API.read_bytes())
    mp = pytest.MonkeyPatch()
    for k, v in {"HEATWATCH_INFLUX_URL": influxd.url, "HEATWATCH_INFLUX_DB": module_db,
                 "HEATWATCH_DATA_DIR": str(data_dir)}.items():
        mp.setenv(k, v)
    try:
        with Registry(data_dir / "registry.sqlite", towns=["vitre", "saint-omer"]) as registry:
            registry.load_examples()
        yield {"api": api, "data_dir": data_dir, "settings": Settings.load(sensor_community_url=api.url)}
    finally:
        mp.undo()
        api.close()


def readings(settings: Settings, sensor: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        async with InfluxClient.from_settings(settings) as c:
            return await c.query_records(f"SELECT * FROM {c.qualified('reading', 'raw')} WHERE \"sensor\" = $s",
                                         {"s": sensor})

    return asyncio.run(go())


def test_archive_files_are_imported_as_citizen_sensors_with_their_licence(world: dict[str, Any],
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensor-community", "import", *map(str, ARCHIVE)]) == 0
    out = capsys.readouterr().out
    settings: Settings = world["settings"]
    with Registry.from_settings(settings) as registry:
        dht, bme = registry.get("sc-61234"), registry.get("sc-61240")
        assert registry.get("sc-70111") is None and registry.get("sc-48") is None  # Rennes, Stuttgart: outside
    for s, kind in ((dht, "DHT22"), (bme, "BME280")):
        assert s is not None and s.town == "vitre" and s.owner == "citizen" and s.trust == "provisional"
        assert (s.licence, s.provenance, s.name) == ("ODbL-1.0", f"sensor.community:{s.id[3:]}",
                                                     f"sensor.community {kind} {s.id[3:]}")
        assert s.installed == date(2025, 7, 8) and s.placed
    stored = readings(settings, "sc-61234")
    # 7 rows: one empty, one -145.9 °C (refused), one with humidity 99.9 kept; every stored one says its source.
    assert len(stored) == 5 and {r["source"] for r in stored} == {"sensor.community"}
    assert len(readings(settings, "sc-61240")) == 4
    assert "refused outside_box: 4" in out and "refused temperature_range: 1" in out
    assert "refused no_measurement: 1" in out
    assert "heatwatch backfill --from 2025-07-08 --to 2025-07-08 --town vitre" in out
    # Importing again overwrites the same points and registers nothing new.
    assert main(["sensor-community", "import", *map(str, ARCHIVE)]) == 0
    assert "0 new station(s)" in capsys.readouterr().out
    assert len(readings(settings, "sc-61234")) == 5
    # Not an archive file of a temperature sensor: refused with a message, nothing written.
    assert main(["sensor-community", "import", str(DATA / "2025-07-08_sds011_sensor_61233.csv")]) == 2
    assert "not a sensor.community archive file" in capsys.readouterr().err


def test_the_scheduled_pull_takes_the_towns_box_and_refuses_indoor_stations(world: dict[str, Any]) -> None:
    settings: Settings = world["settings"]
    api: FakeApi = world["api"]
    clock = datetime(2025, 7, 8, 14, 6, tzinfo=UTC)  # the captured answer's last 5 minutes

    async def run_analytics() -> None:
        with Registry.from_settings(settings) as registry:
            async with InfluxClient.from_settings(settings) as client:
                service = AnalyticsService(settings, client, registry, clock=lambda: clock)
                stop = asyncio.Event()
                task = asyncio.create_task(service.run(stop))
                try:
                    q = f"SELECT * FROM {client.qualified('reading', 'raw')} WHERE \"sensor\" = 'sc-62010'"
                    for _ in range(600):  # the job runs at start, then every interval
                        await asyncio.sleep(0.1)
                        if await client.query_records(q):
                            break
                finally:
                    stop.set()
                    await task

    asyncio.run(run_analytics())
    # One request per town, each for its own box and the temperature sensor types.
    asked = [p for p in api.paths if p.startswith("/airrohr/v1/filter/")]
    assert len(asked) >= 2 and any(Box.around(settings.towns["vitre"], 5.0).query in p for p in asked)
    assert all("&type=DHT22,BME280,SHT30,SHT31,SHT35,SHT85,HTU21D" in p for p in asked)
    with Registry.from_settings(settings) as registry:
        new = registry.get("sc-62010")
        assert new is not None and (new.owner, new.trust, new.licence, new.provenance) == (
            "citizen", "provisional", "ODbL-1.0", "sensor.community:62010")
        assert registry.get("sc-62001") is None  # indoor: refused
        assert registry.get("sc-61233") is None  # a PM sensor
    assert [r["temperature"] for r in readings(settings, "sc-62010")] == [28.06]
    assert {r["temperature"] for r in readings(settings, "sc-61234")} >= {27.4, 27.5}

    # Published: blurred like every private site, marked citizen and provisional, counted under its source.
    with TestClient(create_app(with_api(settings, **NO_LIMITS))) as c:
        got = c.get("/v1/sensors", params={"town": "vitre", "format": "json"}).json()["data"]
        rows = {r["id"]: r for r in got}
        assert (rows["sc-62010"]["network"], rows["sc-62010"]["trust"], rows["sc-62010"]["licence"]) == (
            "citizen", "provisional", "ODbL-1.0")
        assert (rows["sc-62010"]["latitude"], rows["sc-62010"]["longitude"]) != (48.128, -1.2)
        gov = c.get("/v1/governance").json()
        assert gov["towns"]["vitre"]["sources"]["sensor.community"]["sensors"] >= 3


def test_a_retired_station_is_no_longer_imported(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Retiring a station in the registry is how a town honours an objection: its readings stop coming in."""
    settings: Settings = world["settings"]
    api: FakeApi = world["api"]
    with Registry.from_settings(settings) as registry:
        registry.retire("sc-61240")
    before = len(readings(settings, "sc-61240"))
    assert main(["sensor-community", "pull", "--town", "vitre", "--url", api.url]) == 0
    assert "refused retired_or_other_town: 1" in capsys.readouterr().out
    assert len(readings(settings, "sc-61240")) == before


def test_an_api_that_fails_is_reported_not_raised(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensor-community", "pull", "--url", "http://127.0.0.1:9/nowhere"]) == 1
    assert "refused api_error: 2" in capsys.readouterr().out
