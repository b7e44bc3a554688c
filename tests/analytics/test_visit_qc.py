"""Issue 19 item 4: a "replaced" visit in the visit log starts a new series, and quality control restarts there
(docs/maintenance.md, docs/science/qc.md "Visits").

The healthy town of tests/analytics/qctown.py (streets, hot and cool spots, parks, suburbs, the rural reference;
18 days of 10-minute readings) in which one street's shield fails: +0.5 °C a day from day 3, until a technician
replaces the sensor on day 10 (the new one reads right). Stored in InfluxDB and computed by analytics from the
registry, as in production — once before the visit is logged (the old drift still flags the new sensor: DRIFT, then
MONTH_FLAGGED for weeks), then after (nothing after the visit), with the visit log in the data folder.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics import qctown
from heatwatch.analytics.scheduler import AnalyticsService
from heatwatch.core.influx import InfluxClient
from heatwatch.core.maintenance import Action, VisitIn, VisitStore
from heatwatch.core.measurements import AGG_RP, QcFlag
from heatwatch.core.model import Reading, Sensor, SiteClass
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings

FIRST = date(2025, 7, 7)
DAYS = 18
LAST = FIRST + timedelta(days=DAYS - 1)
FAILING = "street-05"
VISIT = pd.Timestamp(datetime.combine(FIRST + timedelta(days=10), datetime.min.time()), tz=qctown.TZ) \
    + pd.Timedelta(hours=10)
FAULTS = int(QcFlag.DRIFT | QcFlag.MONTH_FLAGGED | QcFlag.STEP | QcFlag.MONTH_CORRELATION)


def test_a_replaced_sensor_is_no_longer_flagged_for_the_old_ones_drift(influxd, module_db: str,
                                                                       tmp_path_factory: pytest.TempPathFactory):
    town = qctown.build(seed=5, days=DAYS, start=FIRST.isoformat(), step_min=10, faults=False)
    r = town.readings.copy()
    first = r["time"].min()
    old = ((r["sensor"] == FAILING) & (r["time"] < VISIT)).to_numpy()
    since = ((r["time"] - first) / pd.Timedelta(days=1)).to_numpy()
    r.loc[old, "temperature"] += np.clip(since[old] - 3, 0, None) * 0.5
    data_dir = tmp_path_factory.mktemp("visit_qc")
    settings = Settings.load(influx_url=influxd.url, influx_db=module_db, data_dir=data_dir)
    visit_ms = int(VISIT.value // 1_000_000)

    with Registry(data_dir / "registry.sqlite", towns=["vitre", "saint-omer"]) as registry:
        for sid, site in town.sites.items():
            registry.upsert(Sensor(id=sid, town="vitre", site_class=SiteClass(site.site_class), lcz=site.lcz,
                                   latitude=site.latitude, longitude=site.longitude, installed=FIRST))

        async def flags_after_visit(service: AnalyticsService, client: InfluxClient) -> dict[str, Any]:
            await service.analytics.recompute_range("vitre", FIRST, LAST)
            rows = await client.query_records(
                f"SELECT \"qc\" FROM {client.qualified('hourly', AGG_RP)} WHERE \"sensor\" = $s AND time >= $t",
                {"s": FAILING, "t": visit_ms * 1_000_000})
            qc = np.array([int(x["qc"] or 0) for x in rows], dtype=np.int64)
            return {"hours": len(qc), "faulty": int(((qc & FAULTS) != 0).sum()),
                    "drift": int(((qc & int(QcFlag.DRIFT)) != 0).sum())}

        async def go() -> tuple[dict[str, Any], dict[str, Any], int]:
            async with InfluxClient.from_settings(settings) as client:
                await client.setup()
                ms = (r["time"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
                lines = [Reading("vitre", s, int(m), float(t), float(h)).to_line()
                         for s, m, t, h in zip(r["sensor"], ms, r["temperature"], r["humidity"], strict=True)]
                for i in range(0, len(lines), 20_000):
                    await client.write_lines(lines[i:i + 20_000])
                clock = datetime.combine(LAST + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=7)
                service = AnalyticsService(settings, client, registry, clock=lambda: clock)
                before = await flags_after_visit(service, client)
                # The technician logs the replacement (what POST /v1/maintenance/visits stores), analytics recomputes.
                VisitStore.for_data_dir(data_dir).add("vitre", VisitIn(
                    sensor=FAILING, at=VISIT.to_pydatetime(), who="tech", actions=[Action.replaced]))
                after = await flags_after_visit(service, client)
                rows = await client.query_records(
                    f"SELECT \"qc\" FROM {client.qualified('hourly', AGG_RP)} WHERE \"sensor\" = $s AND time < $t",
                    {"s": FAILING, "t": visit_ms * 1_000_000})
                return before, after, sum(1 for x in rows if int(x["qc"] or 0) & int(QcFlag.DRIFT))

        before, after, drift_kept = asyncio.run(go())

    # Without the visit log the new sensor carries the old one's drift: DRIFT, then the monthly share.
    assert before["hours"] >= 7 * 24 and before["faulty"] > 48, before
    # With it, the new series starts clean: not one hour flagged after the visit.
    assert after["hours"] == before["hours"] and after["faulty"] == 0, after
    # The drift before the visit is still flagged: the log restarts the series, it does not erase the fault.
    assert drift_kept >= 3 * 24, drift_kept
