"""A small SensorThings world shared by the STA tests: three registered Vitré sites (one a resident's, so blurred),
a day of 10-minute readings and three days of hourly means, in a database of its own on the session's influxd."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import uvicorn
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.core.influx import AGG_RP, RAW_RP, InfluxClient
from heatwatch.core.model import Sensor, SiteClass
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from heatwatch.stack.embedded import free_port
from support.apps import NO_LIMITS, with_api
from support.wait import wait_until

R0 = 1721433600000  # 2024-07-20T00:00:00Z: 144 readings, every 10 minutes
H0 = 1721347200000  # 2024-07-19T00:00:00Z: 72 hourly means
SENSORS = [
    Sensor(id="v-centre", town="vitre", name="Place du Château", latitude=48.1236, longitude=-1.2089,
           site_class=SiteClass.urban, lcz="LCZ 2", height_m=3.5, installed=date(2024, 5, 6),
           device_profile="dragino-lht65"),
    Sensor(id="v-parc", town="vitre", name="Parc du Château", latitude=48.1250, longitude=-1.2040,
           site_class=SiteClass.park, lcz="LCZ B", installed=date(2024, 5, 7), device_profile="native"),
    Sensor(id="v-jardin", town="vitre", name="Jardin de Mme X, 12 rue Y", latitude=48.1201, longitude=-1.2133,
           site_class=SiteClass.suburban, owner="citizen", device_profile="native"),
]


def lines() -> tuple[list[str], list[str]]:
    raw, agg = [], []
    for i in range(144):
        ts = R0 + i * 600_000
        for n, s in enumerate(SENSORS):
            raw.append(f"reading,town=vitre,sensor={s.id} temperature={20.0 + n + i / 100},humidity={50.0 + n} {ts}")
    for h in range(72):
        ts = H0 + h * 3600_000
        for n, s in enumerate(SENSORS):
            qc = 4 if (s.id == "v-parc" and h == 5) else 0
            agg.append(f"hourly,town=vitre,sensor={s.id} t_mean={21.0 + n + h / 10},rh_mean=55.0,n=6i,qc={qc}i {ts}")
    return raw, agg


def build(influx_url: str, root: Path) -> Settings:
    db = f"sta_{os.getpid()}_{root.name}"
    data_dir = root / "var"
    with Registry(data_dir / "registry.sqlite", towns={"vitre", "saint-omer"}) as reg:
        reg.upsert_many(SENSORS)

    async def seed() -> None:
        raw, agg = lines()
        async with InfluxClient(influx_url, db) as c:
            await c.setup()
            await c.write_lines(raw, rp=RAW_RP)
            await c.write_lines(agg, rp=AGG_RP)

    asyncio.run(seed())
    return Settings.load(influx_url=influx_url, influx_db=db, data_dir=data_dir)


def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(with_api(settings, **NO_LIMITS))) as c:
        yield c


def serve(settings: Settings) -> Iterator[str]:
    port = free_port()
    app = create_app(with_api(settings, **NO_LIMITS, port=port))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 15, "uvicorn started", interval=0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def ids(page: dict[str, Any]) -> list[str]:
    return [e["@iot.id"] for e in page["value"]]
