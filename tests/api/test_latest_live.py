"""latest with the live feed connected: the last-value store plus the newest readings the api keeps from the feed
(seeded by one scan when it connects) instead of a scan of the last minutes at every request. Real mosquitto and
influxd; the readings written to InfluxDB and announced on heatwatch/live/<town> as ingest does once they are
durable."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.core.influx import InfluxClient
from heatwatch.core.settings import Settings
from support.apps import NO_LIMITS, with_api
from support.mqtt import publish_all
from support.wait import wait_until


def _announce(url: str, town: str, *readings: dict) -> None:
    body = {"town": town, "readings": [{"humidity": None, "battery_v": None, "rssi": None, "source": "json"} | r
                                       for r in readings]}
    assert publish_all(url, [(f"heatwatch/live/{town}", json.dumps(body).encode())]) == 1


def _latest(c: TestClient) -> dict[str, dict]:
    r = c.get("/v1/latest", params={"town": "vitre"})
    assert r.status_code == 200, r.text
    return {row["sensor"]: row for row in r.json()["data"]}


def test_latest_keeps_the_new_readings_the_feed_announces(mosquitto, influxd, db_name, seed, tmp_path) -> None:
    now = int(time.time() * 1000) // 1000 * 1000

    def stored(*lines: str) -> None:
        """Readings as ingest stores them, before analytics' next refresh of the last-value store."""
        async def go() -> None:
            async with InfluxClient(influxd.url, db_name) as c:
                await c.write_lines(list(lines))

        asyncio.run(go())

    # s2: an hour ago, in the last-value store (seed refreshes it as analytics does); s1: two minutes ago, stored
    # since the store's last refresh.
    seed([f"reading,town=vitre,sensor=s2 temperature=18.0 {now - 3600_000}"])
    stored(f"reading,town=vitre,sensor=s1 temperature=21.0 {now - 120_000}")
    settings = with_api(Settings.load(influx_url=influxd.url, influx_db=db_name, mqtt_url=mosquitto.url,
                                      data_dir=tmp_path / "var"), **NO_LIMITS)
    app = create_app(settings)
    with TestClient(app) as c:
        wait_until(lambda: app.state.store.recent.ready, timeout=30)
        rows = _latest(c)
        assert (rows["s1"]["temperature"], rows["s2"]["temperature"]) == (21.0, 18.0)  # the seed scan, the store

        # A new reading, stored then announced: latest has it.
        stored(f"reading,town=vitre,sensor=s1 temperature=23.5 {now - 60_000}")
        _announce(mosquitto.url, "vitre", {"sensor": "s1", "ts": now - 60_000, "temperature": 23.5})
        wait_until(lambda: _latest(c)["s1"]["temperature"] == 23.5, timeout=30)
        assert _latest(c)["s1"]["time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now - 60_000) / 1000))

        # A backlog flush announced later with older readings never moves latest back; a new sensor appears.
        stored(f"reading,town=vitre,sensor=s1 temperature=5.0 {now - 300_000}",
               f"reading,town=vitre,sensor=s3 temperature=30.0 {now - 30_000}")
        _announce(mosquitto.url, "vitre", {"sensor": "s1", "ts": now - 300_000, "temperature": 5.0},
                  {"sensor": "s3", "ts": now - 30_000, "temperature": 30.0})
        wait_until(lambda: "s3" in _latest(c), timeout=30)
        rows = _latest(c)
        assert (rows["s1"]["temperature"], rows["s2"]["temperature"], rows["s3"]["temperature"]) == (23.5, 18.0, 30.0)

        # An erased sensor (a contributor's withdrawal deletes its points, the last-value store's included) leaves
        # latest even though the feed announced it: a kept reading older than the window that the store lacks.
        seed([f"reading,town=vitre,sensor=s6 temperature=19.0 {now - 600_000}"])
        _announce(mosquitto.url, "vitre", {"sensor": "s6", "ts": now - 600_000, "temperature": 19.0})
        wait_until(lambda: ("vitre", "s6") in app.state.store.recent.rows, timeout=30)
        assert _latest(c)["s6"]["temperature"] == 19.0

        async def erase() -> None:
            async with InfluxClient(influxd.url, db_name) as cl:
                await cl.query("DELETE FROM last_reading WHERE sensor = 's6'", epoch=None, db=cl.agg_database)

        asyncio.run(erase())
        assert "s6" not in _latest(c) and "s1" in _latest(c)
