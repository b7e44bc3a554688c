"""Monthly archives mark each per-sensor row with its sensor's network and trust, and count the town's tropical
nights over the sensors the town's values count (docs/citizens.md), as /v1/indices does."""

from __future__ import annotations

import asyncio
import gzip
import os
from datetime import UTC, date, datetime
from typing import Any

import pyarrow.parquet as pq

from heatwatch.analytics.archives import Archiver
from heatwatch.core import archives as A
from heatwatch.core.influx import AGG_RP, RAW_RP, InfluxClient
from heatwatch.core.model import Sensor
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings

MONTH = "2024-02"
START = 1706742000000  # 2024-02-01T00:00+01:00
#: the town's own, a confirmed resident, a provisional resident (weight 0: not in the town's values)
SENSORS = {"t-1": None, "c-ok": "confirmed", "c-new": "provisional"}


def test_archives_mark_trust_and_count_tropical_nights_as_the_town_does(influxd, tmp_path) -> None:
    db = f"archtrust_{os.getpid()}"
    raw, agg = [], []
    for d in range(29):
        ts = START + d * 86_400_000
        for s in SENSORS:
            raw.append(f"reading,town=vitre,sensor={s} temperature=21.5,humidity=70.0 {ts + 3600_000}")
            agg.append(f"daily,town=vitre,sensor={s} tn=20.5,tx=28.0,tropical_night={'true' if d == 3 else 'false'},"
                       f"coverage=1.0,qc=0i {ts}")
        agg.append(f"town_daily,town=vitre ibmn=20.0,ibmx=28.0,canicule=false {ts}")
    settings = Settings.load(influx_url=influxd.url, influx_db=db, data_dir=tmp_path)
    with Registry(tmp_path / "registry.sqlite", towns=("vitre",)) as registry:
        for s, trust in SENSORS.items():
            registry.upsert(Sensor(id=s, town="vitre", latitude=48.12, longitude=-1.21,
                                   owner="citizen" if trust else "town", trust=trust,
                                   trust_since=date(2024, 1, 1) if trust else None))

        async def go() -> Any:
            async with InfluxClient(influxd.url, db) as c:
                await c.setup()
                await c.write_lines(raw, rp=RAW_RP)
                await c.write_lines(agg, rp=AGG_RP)
                arch = Archiver(c, settings.towns, tmp_path, registry=registry,
                                clock=lambda: datetime(2024, 3, 5, 7, tzinfo=UTC))
                return await arch.build("vitre", MONTH, reason="test")

        out = asyncio.run(go())
    assert out.action == "issued" and out.rows["daily"] == 29 * 3
    path = A.file_path(tmp_path, "vitre", MONTH, "v1/readings.csv.gz")
    header, *rows = [r for r in gzip.decompress(path.read_bytes()).decode().split("\r\n") if r]
    assert header.endswith(",network,trust")
    marks = {(r.split(",")[2], *r.split(",")[-2:]) for r in rows}
    assert marks == {("t-1", "town", "official"), ("c-ok", "citizen", "confirmed"),
                     ("c-new", "citizen", "provisional")}
    daily = pq.read_table(A.file_path(tmp_path, "vitre", MONTH, "v1/daily.parquet")).to_pylist()
    assert {(r["sensor"], r["trust"]) for r in daily} == {("t-1", "official"), ("c-ok", "confirmed"),
                                                         ("c-new", "provisional")}
    indices = pq.read_table(A.file_path(tmp_path, "vitre", MONTH, "v1/indices.parquet")).to_pylist()
    # 4 February: all three had a tropical night; the provisional resident's is not the town's
    assert [r["tropical_nights"] for r in indices][2:5] == [0, 2, 0]
