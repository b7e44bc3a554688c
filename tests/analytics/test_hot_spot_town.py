"""The acceptance scenario of a town's own network, through the whole chain.

A dozen street sensors of one kind close together at +2.8…3.3 °C at night, one genuine hot spot at
+4.6 °C, two parks and the rural reference; a summer fortnight published over MQTT (native JSON
backlog arrays) → ``heatwatch ingest`` → ``heatwatch backfill`` over the closed period (both child
processes) → the API and the live alert rules. The hot spot must keep its nocturnal UHI every night,
be named hottest with its UHI in /v1/indices, and raise its nocturnal-UHI alert; the streets and
parks must pass QC untouched; every local day of the period is written, the last one included.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from analytics import qctown
from heatwatch.analytics.alerts import AlertEngine
from heatwatch.analytics.jobs import Analytics
from heatwatch.api.app import create_app
from heatwatch.core.influx import InfluxClient
from heatwatch.core.model import Sensor, SiteClass
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from heatwatch.stack.children import ServiceProcess
from support.apps import NO_LIMITS, with_api
from support.influx import count_readings
from support.mqtt import publish_all

TZ = ZoneInfo("Europe/Paris")
FIRST = date(2025, 7, 7)
DAYS = 14
LAST = FIRST + timedelta(days=DAYS - 1)
_ids = itertools.count()


@pytest.fixture(scope="module")
def town() -> qctown.QcTown:
    return qctown.build(seed=11, days=DAYS, start=FIRST.isoformat(), faults=False,
                        layout=qctown.HOT_SPOT_TOWN, clear_nights=True)


def _messages(town: qctown.QcTown) -> list[tuple[str, bytes]]:
    """One backlog array per sensor and hour, as a logger flushing its memory would send."""
    r = town.readings
    ms = (r["time"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    out = []
    for (sensor, _), part in r.assign(ms=ms, hour=r["time"].dt.floor("h")).groupby(["sensor", "hour"], sort=True):
        body = [{"ts": int(m), "temperature": float(t), "humidity": float(h)}
                for m, t, h in zip(part["ms"], part["temperature"], part["humidity"], strict=True)]
        out.append((f"heat/vitre/{sensor}", json.dumps(body).encode()))
    return out


@pytest.fixture(scope="module")
def chain(town: qctown.QcTown, mosquitto, influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("hot_spot_town")
    data_dir = root / "var"
    db = f"hotspot_{os.getpid()}_{next(_ids)}"
    with Registry(data_dir / "registry.sqlite", towns=["vitre", "saint-omer"]) as reg:
        reg.upsert_many(Sensor(id=sid, town="vitre", site_class=SiteClass(site.site_class), lcz=site.lcz,
                               latitude=site.latitude, longitude=site.longitude, height_m=3.5)
                        for sid, site in town.sites.items())
    env = {"HEATWATCH_MQTT_URL": mosquitto.url, "HEATWATCH_INFLUX_URL": influxd.url, "HEATWATCH_INFLUX_DB": db,
           "HEATWATCH_DATA_DIR": str(data_dir), "HEATWATCH_MQTT_CLIENT_ID": f"ingest-{db}",
           "HEATWATCH_BACKLOG_WINDOW": "P3650D", "HEATWATCH_BATCH_INTERVAL_S": "0.2"}
    ingester = ServiceProcess(["ingest"], env, root / "ingest.log", name="ingest")
    ingester.start(ready_marker="mqtt.subscribed")
    try:
        assert publish_all(mosquitto.url, _messages(town)) > 0
        deadline = time.monotonic() + 120
        while count_readings(influxd.url, db) < len(town.readings) and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        assert ingester.stop() == 0, ingester.log_text()[-3000:]
    assert count_readings(influxd.url, db) == len(town.readings)
    # The operator's command over the closed period: the fortnight's first and last local days.
    backfill = ServiceProcess(["backfill", "--from", FIRST.isoformat(), "--to", LAST.isoformat()], env,
                              root / "backfill.log", name="backfill").start()
    assert backfill.proc is not None and backfill.proc.wait(300) == 0, backfill.log_text()[-3000:]
    yield Settings.load(influx_url=influxd.url, influx_db=db, mqtt_url=mosquitto.url, data_dir=data_dir)


@pytest.fixture(scope="module")
def api(chain: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(with_api(chain, **NO_LIMITS))) as c:
        yield c


def _rows(api: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    paged = {"limit": 10000} if path in ("/v1/hourly", "/v1/daily", "/v1/readings") else {}  # the api refuses
    r = api.get(path, params={"town": "vitre", "from": FIRST.isoformat(),    # a parameter a route does not take
                              "to": (LAST + timedelta(days=1)).isoformat(), **paged, **params})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_every_local_day_is_written_the_last_one_included(api: TestClient) -> None:
    days = sorted({row["date"] for row in _rows(api, "/v1/daily")})
    assert days == [(FIRST + timedelta(days=k)).isoformat() for k in range(DAYS)]
    assert [row["date"] for row in _rows(api, "/v1/indices")] == days


def test_the_hot_spot_keeps_its_nocturnal_uhi_every_night(api: TestClient) -> None:
    daily = pd.DataFrame(_rows(api, "/v1/daily"))
    hot = daily[daily["sensor"] == "hot-spot"].set_index("date")
    assert len(hot) == DAYS
    assert hot["uhi_night_max"].notna().all() and (hot["qc"] == 0).all()
    assert (hot["coverage"] == 1.0).all()
    # From the second night on (the first starts at local midnight): +4.6 °C, give or take the noise.
    assert hot["uhi_night_max"].iloc[1:].between(4.3, 5.1).all(), hot["uhi_night_max"]
    streets = daily[daily["sensor"].str.startswith("street")]
    assert (streets["qc"] == 0).all() and streets["uhi_night_max"].notna().all()
    by_night = streets.groupby("date")["uhi_night_max"].max()
    assert (hot["uhi_night_max"] > by_night.reindex(hot.index)).all()
    parks = daily[daily["sensor"].str.startswith("park")]
    assert (parks["qc"] == 0).all()


def test_indices_name_the_hot_spot_hottest_with_its_uhi(api: TestClient) -> None:
    rows = _rows(api, "/v1/indices")
    assert [r["hottest_sensor"] for r in rows] == ["hot-spot"] * DAYS
    for r in rows[1:]:
        assert r["uhi_max"] == pytest.approx(4.6, abs=0.45), r
        assert r["sensors_ok"] == 16
        assert r["uhi_source"] == "sensors"
    # No official station imported here: IBM from the rural reference sensor, and it says so.
    assert {r["ibm_source"] for r in rows if r["ibmn"] is not None} == {"sensors:vitre-rural-01"}


def test_the_hot_spot_raises_its_nocturnal_uhi_alert(chain: Settings) -> None:
    async def go() -> list[Any]:
        async with InfluxClient(chain.influx_base_url, chain.influx_db) as client:
            with Registry(chain.registry_path, towns=["vitre", "saint-omer"]) as reg:
                analytics = Analytics(client, {"vitre": chain.towns["vitre"]}, reg)
                engine = AlertEngine(analytics, chain.alert_thresholds)
                night = datetime.combine(FIRST + timedelta(days=6), datetime.min.time(), TZ) + timedelta(hours=2)
                return await engine.evaluate(night.astimezone(UTC))

    changes = asyncio.run(go())
    opened = {(c.alert.sensor, c.alert.kind) for c in changes if c.event == "open"}
    assert ("hot-spot", "uhi_night") in opened
    assert not any(kind == "uhi_night" and s != "hot-spot" for s, kind in opened)
    assert not any(kind == "qc" for _, kind in opened)
