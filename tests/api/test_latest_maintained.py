"""/v1/latest from what the api maintains (the last-value store held by the resident store, the live feed's recent
readings, the merged rows kept between answers and each row rendered once per style) answers byte for byte as an
api reading InfluxDB at every request does, and stays so as readings arrive, the registry changes, a sensor is
erased and a reading leaves the window. Real mosquitto and influxd."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.core.influx import InfluxClient
from heatwatch.core.model import Sensor
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from heatwatch.stack.embedded import free_port
from support.apps import NO_LIMITS, with_api
from support.mqtt import publish_all
from support.wait import wait_until

PARAMS = [{"town": "vitre"}, {"town": "vitre", "times": "local"}, {"town": "vitre", "format": "csv"},
          {"town": "vitre", "format": "csv", "sep": ";", "times": "local"}, {"town": "vitre", "format": "geojson"},
          {"town": "vitre", "format": "geojson", "times": "local", "tz": "America/Cayenne"}, {}]
WINDOW_S = 60


def _sensors(c: TestClient) -> dict[str, dict[str, Any]]:
    r = c.get("/v1/latest", params={"town": "vitre"})
    assert r.status_code == 200, r.text
    return {row["sensor"]: row for row in r.json()["data"]}


def test_maintained_latest_answers_as_the_database_does(mosquitto, influxd, db_name, seed, tmp_path) -> None:
    now = int(time.time() * 1000) // 1000 * 1000

    def db(*statements: str, lines: tuple[str, ...] = ()) -> None:
        async def go() -> None:
            async with InfluxClient(influxd.url, db_name) as c:
                if lines:
                    await c.write_lines(list(lines))  # stored by ingest, not yet in the last-value store
                for q in statements:
                    await c.query(q, epoch=None, db=c.database if "FROM reading" in q else c.agg_database)

        asyncio.run(go())

    def announce(*readings: dict[str, Any]) -> None:
        body = {"town": "vitre", "readings": list(readings)}
        assert publish_all(mosquitto.url, [("heatwatch/live/vitre", json.dumps(body).encode())]) == 1

    base = Settings.load(influx_url=influxd.url, influx_db=db_name, mqtt_url=mosquitto.url, data_dir=tmp_path / "var")
    with Registry.from_settings(base) as reg:
        reg.upsert(Sensor(id="v-town", town="vitre", latitude=48.1234, longitude=-1.2087))
        reg.upsert(Sensor(id="v-citizen", town="vitre", owner="citizen", name="Chez Anne", latitude=48.1257,
                          longitude=-1.2013))
        reg.upsert(Sensor(id="v-old", town="vitre", latitude=48.12, longitude=-1.21))
    seed([f'reading,town=vitre,sensor=v-town temperature=21.5,humidity=50.5,source="json" {now - 120_000}',
          f'reading,town=vitre,sensor=v-citizen temperature=19.25,source="senml" {now - 240_000}',
          f'reading,town=vitre,sensor=v-old temperature=17.5,source="json" {now - 2 * 3600_000}',
          f'reading,town=vitre,sensor=v-stray temperature=22.5,source="tts" {now - 600_000}',
          f'reading,town=saint-omer,sensor=s-1 temperature=16.5,source="json" {now - 60_000}'])
    kept = create_app(with_api(base, **(NO_LIMITS | {"resident_days": 2}), latest_window_s=WINDOW_S,
                               resident_check_s=0.05, resident_latest_s=0.2))
    plain = create_app(with_api(base.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{free_port()}"}),
                                **NO_LIMITS, latest_window_s=WINDOW_S))
    with TestClient(kept) as a, TestClient(plain) as b:
        store = kept.state.store
        wait_until(lambda: store.recent.ready and kept.state.resident.latest("vitre") is not None, timeout=30)
        assert not plain.state.store.recent.ready  # it reads InfluxDB at every answer

        def same() -> None:
            for params in PARAMS:
                ra, rb = a.get("/v1/latest", params=params), b.get("/v1/latest", params=params)
                assert ra.status_code == rb.status_code == 200, (ra.text, rb.text)
                assert ra.content == rb.content, params
                assert ra.headers["etag"] == rb.headers["etag"]

        same()
        same()  # from the rows kept
        # Kept, not merged again, while nothing changed.
        assert a.portal.call(store.latest_view, "vitre") is a.portal.call(store.latest_view, "vitre")
        rows = _sensors(a)
        assert (rows["v-town"]["status"], rows["v-old"]["status"], rows["v-stray"]["status"]) == (
            "ok", "offline", "unregistered")

        # A new reading, stored then announced as ingest does: in the answer.
        db(lines=(f'reading,town=vitre,sensor=v-town temperature=23.5,source="json" {now - 10_000}',))
        announce({"sensor": "v-town", "ts": now - 10_000, "temperature": 23.5, "source": "json"})
        wait_until(lambda: _sensors(a)["v-town"]["temperature"] == 23.5, timeout=30)
        same()

        # The registry changes: a sensor retired, the stray one registered (as a citizen's: blurred, renamed).
        with Registry.from_settings(base) as reg:
            reg.upsert(Sensor(id="v-town", town="vitre", latitude=48.1234, longitude=-1.2087, retired=True))
            reg.upsert(Sensor(id="v-stray", town="vitre", owner="citizen", latitude=48.1301, longitude=-1.1999))
        rows = _sensors(a)
        assert (rows["v-town"]["status"], rows["v-stray"]["status"], rows["v-stray"]["network"]) == (
            "retired", "ok", "citizen")
        same()

        # A sensor erased (a withdrawal deletes its points, the last-value store's included): out of the answer.
        db("DELETE FROM reading WHERE sensor = 'v-old'", "DELETE FROM last_reading WHERE sensor = 'v-old'")
        wait_until(lambda: "v-old" not in _sensors(a), timeout=30)
        same()

        # A reading the last-value store does not hold yet is shown while it is recent, and leaves the answer once
        # older than the window (here the store never gets it: erased meanwhile).
        t = int(time.time() * 1000) - (WINDOW_S - 15) * 1000  # 15 s in the window: time to be seen
        db(lines=(f'reading,town=vitre,sensor=v-new temperature=25.5,source="json" {t}',))
        announce({"sensor": "v-new", "ts": t, "temperature": 25.5, "source": "json"})
        wait_until(lambda: "v-new" in _sensors(a), timeout=30)
        wait_until(lambda: "v-new" not in _sensors(a), timeout=30)
        same()
