"""API test fixtures: a per-test database on the session influxd, seeded in line protocol that
follows the stored schema (core/measurements.py), and a TestClient running the app's real lifespan."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from heatwatch.analytics.last import LastReadings
from heatwatch.api.app import create_app
from heatwatch.core.changes import EVERYTHING, announce
from heatwatch.core.influx import AGG_RP, RAW_RP, InfluxClient
from heatwatch.core.settings import Settings
from heatwatch.stack.embedded import free_port
from support.apps import NO_LIMITS, with_api
from support.wait import wait_until

ADMIN_TOKEN = "test-admin-token-0123456789-abcdefghijkl"


def write(url: str, db: str, lines: list[str], rp: str = RAW_RP) -> None:
    """Write line protocol; raw readings also update the last-value store, as analytics keeps it."""
    async def go() -> None:
        async with InfluxClient(url, db) as c:
            await c.setup()
            for i in range(0, len(lines), 5000):
                await c.write_lines(lines[i:i + 5000], rp=rp)
            if rp == RAW_RP and lines:
                await LastReadings(c).refresh(0, int(time.time() * 1000))
            if rp == AGG_RP:
                # As analytics does after writing aggregates: an api holding them in memory reads them again.
                for town in sorted(set(re.findall(r",town=([^, ]+)", "\n".join(lines)))):
                    await announce(c, town, *EVERYTHING)

    asyncio.run(go())


@pytest.fixture
def api_settings(influxd, db_name: str, tmp_path: Path) -> Settings:
    # A broker address nobody listens on: the default (127.0.0.1:1883) may be a `heatwatch up` of another test or
    # of someone's demo, whose live batches would reach this api's live feed (and latest). Tests of the feed give
    # their own broker.
    return Settings.load(influx_url=influxd.url, influx_db=db_name, data_dir=tmp_path / "var",
                         admin_token=ADMIN_TOKEN, mqtt_url=f"mqtt://127.0.0.1:{free_port()}")


@pytest.fixture
def api_config() -> dict[str, Any]:
    """The ``HEATWATCH_API_*`` options of a test app: no rate limit and no server cache unless a test is
    about them, since tests write then read at once."""
    return dict(NO_LIMITS)


@pytest.fixture
def seed(influxd, db_name: str) -> Callable[..., None]:
    """seed(lines, rp=RAW_RP): write line protocol into this test's database (created on first use)."""

    def _seed(lines: list[str], rp: str = RAW_RP) -> None:
        write(influxd.url, db_name, lines, rp)

    return _seed


@pytest.fixture
def client(api_settings: Settings, api_config: dict[str, Any], seed) -> Iterator[TestClient]:
    seed([])  # the database and its retention policies exist even before data is written
    with TestClient(create_app(with_api(api_settings, **api_config))) as c:
        yield c



# A small but complete data set in the stored schema ---------------------------------------------------

DAY0 = "2024-07-10"
DAYS = 15  # 2024-07-10 .. 2024-07-24
CANICULE_DAYS = {"2024-07-12", "2024-07-13", "2024-07-18", "2024-07-19", "2024-07-20", "2024-07-21", "2024-07-24"}
VITRE_SENSORS = {"v-centre": 2.0, "v-parc": 0.5, "vitre-rural-01": 0.0}  # sensor -> UHI offset


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def local_midnight_ms(day: str) -> int:
    """Daily points are stamped at local (Europe/Paris, UTC+2 in July) midnight: 22:00 UTC the day before."""
    return _ms(f"{day}T00:00:00+02:00")


def dataset_lines() -> dict[str, list[str]]:
    from datetime import date, timedelta

    raw: list[str] = []
    agg: list[str] = []
    days = [(date.fromisoformat(DAY0) + timedelta(days=i)).isoformat() for i in range(DAYS)]
    for day in days:
        t0 = local_midnight_ms(day)
        canicule = day in CANICULE_DAYS
        for sensor, off in VITRE_SENSORS.items():
            tn = 16.0 + off + (3 if canicule else 0)
            tropical = "true" if tn >= 20 else "false"
            agg.append(f"daily,town=vitre,sensor={sensor} tn={tn},tx={30.0 + off},t_mean={24.0 + off},"
                       f"rh_mean=55.0,heat_index_max=31.5,humidex_max=33.2,uhi_mean={off},uhi_night_max={off * 1.5},"
                       f"hours_ge_30=2i,tropical_night={tropical},coverage=0.96,qc=0i {t0}")
        agg.append(f"town_daily,town=vitre ibmn={19.0 if canicule else 16.0},ibmx={34.0 if canicule else 29.0},"
                   f"canicule={'true' if canicule else 'false'},uhi_mean=1.2,uhi_max=3.1,"
                   f'hottest_sensor="v-centre",sensors_ok=3i {t0}')
        agg.append(f"town_daily,town=saint-omer ibmn=14.0,ibmx=24.0,canicule=false,uhi_mean=0.8,uhi_max=1.9,"
                   f'hottest_sensor="so-1",sensors_ok=1i {t0}')
    h0 = _ms("2024-07-19T00:00:00Z")
    for h in range(72):
        ts = h0 + h * 3600_000
        for sensor, off in VITRE_SENSORS.items():
            agg.append(f"hourly,town=vitre,sensor={sensor} t_mean={22.0 + off + (h % 24) / 4},t_min=20.0,"
                       f"t_max=30.0,rh_mean=50.0,dewpoint=12.0,heat_index=25.0,humidex=27.0,uhi={off + h / 100},"
                       f"n=6i,qc=0i {ts}")
    r0 = _ms("2024-07-20T00:00:00Z")
    for i in range(144):  # one day of 10-minute readings
        ts = r0 + i * 600_000
        for sensor, off in VITRE_SENSORS.items():
            raw.append(f"reading,town=vitre,sensor={sensor} temperature={20.0 + off + i / 100},humidity=55.0 {ts}")
        raw.append(f"reading,town=saint-omer,sensor=so-1 temperature=18.0,humidity=70.0 {ts}")
    agg += [
        f'alert,town=vitre,sensor=v-centre,kind=canicule value=34.0,threshold=33.0,message="IBMx 34.0 ≥ 33" '
        f'{_ms("2024-07-18T06:00:00Z")}',
        f'alert,town=vitre,sensor=v-parc,kind=stuck value=21.0,threshold=6.0,message="value stuck, 6 h" '
        f'{_ms("2024-07-19T06:00:00Z")}',
    ]
    return {"raw": raw, "agg": agg}


@pytest.fixture
def dataset(seed) -> dict[str, list[str]]:
    lines = dataset_lines()
    seed(lines["raw"], RAW_RP)
    seed(lines["agg"], AGG_RP)
    return lines


@pytest.fixture
def live_server(api_settings, seed, mosquitto):
    """The app under a real uvicorn on a free port, with data of the last days (the CSV defaults)."""
    now = int(time.time() * 1000) // 3600_000 * 3600_000
    raw, agg = [], []
    for h in range(1, 30):
        ts = now - h * 3600_000
        for s, off in (("v-a", 1.5), ("vitre-rural-01", 0.0)):
            raw.append(f'reading,town=vitre,sensor={s} temperature={20 + off},humidity=60.5,source="json" {ts}')
            agg.append(f"hourly,town=vitre,sensor={s} t_mean={20 + off},t_min=19.0,t_max=22.0,rh_mean=60.0,"
                       f"dewpoint=12.1,heat_index=20.0,humidex=22.0,uhi={off},n=6i,qc=0i {ts}")
        raw.append(f"reading,town=saint-omer,sensor=so-1 temperature=17.25,humidity=80.0,battery_v=3.3 {ts}")
    for d in range(1, 4):
        ts = now - d * 86_400_000
        agg.append(f"daily,town=vitre,sensor=v-a tn=15.0,tx=25.0,t_mean=20.0,rh_mean=60.0,heat_index_max=25.0,"
                   f"humidex_max=27.0,uhi_mean=1.5,uhi_night_max=2.5,hours_ge_30=0i,tropical_night=false,"
                   f"coverage=1.0,qc=0i {ts}")
        agg.append(f'town_daily,town=vitre ibmn=15.0,ibmx=25.0,canicule=false,uhi_mean=1.5,uhi_max=1.5,'
                   f'hottest_sensor="v-a, centre",sensors_ok=2i {ts}')
    agg.append(f'alert,town=vitre,sensor=v-a,kind=hot value=31.0,threshold=30.0,message="hot, \\"very\\"" {now}')
    seed(raw, "raw")
    seed(agg, "agg")
    port = free_port()
    # A broker too: admin recompute publishes its request on MQTT, and answers 503 without one.
    settings = api_settings.model_copy(update={"mqtt_url": mosquitto.url})
    app = create_app(with_api(settings, **NO_LIMITS, port=port))  # its absolute URLs name where it listens
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "uvicorn started", interval=0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
