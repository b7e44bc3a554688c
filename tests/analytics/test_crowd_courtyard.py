"""Issue 17, item 7: a citizen sensor in a sunny courtyard is flagged by the crowd QC while the town's own hot spot
is not (docs/science/qc.md, "Crowd profile"; docs/citizens.md, "Trust").

The town of the hot-spot scenario (a dozen streets at +2.8…3.3 °C at night, a genuine hot spot at +4.6 °C, two
parks, the rural reference; a summer fortnight of 5-minute readings, tests/analytics/qctown.py) plus three residents'
stations registered as citizen sensors: an unshielded kit in a sunny courtyard (a street's night, up to +4 °C in
sunshine), a kit moved indoors (a damped, lagged echo of the outdoor cycle around 24 °C) and a well-sited one in a
street. Stored in InfluxDB and computed by analytics from the registry, as in production; then the trust review of
the fortnight's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics import qctown
from heatwatch.analytics.scheduler import AnalyticsService
from heatwatch.core.influx import InfluxClient
from heatwatch.core.measurements import AGG_RP, VALUE_FLAGS, QcFlag
from heatwatch.core.model import Reading, Sensor, SiteClass
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings

FIRST = date(2025, 7, 7)
DAYS = 14
LAST = FIRST + timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def computed(influxd, module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    town = qctown.with_citizens(qctown.build(seed=11, days=DAYS, start=FIRST.isoformat(), faults=False,
                                             layout=qctown.HOT_SPOT_TOWN, clear_nights=True))
    data_dir = tmp_path_factory.mktemp("crowd_courtyard")
    settings = Settings.load(influx_url=influxd.url, influx_db=module_db, data_dir=data_dir)
    with Registry(data_dir / "registry.sqlite", towns=["vitre", "saint-omer"]) as registry:
        for sid, site in town.sites.items():
            citizen = site.crowd
            registry.upsert(Sensor(
                id=sid, town="vitre", site_class=SiteClass(site.site_class), lcz=site.lcz, latitude=site.latitude,
                longitude=site.longitude, height_m=2.0 if citizen else 3.5, owner="citizen" if citizen else "town",
                installed=FIRST, trust="provisional" if citizen else None, trust_since=FIRST if citizen else None))

        async def go() -> list[Any]:
            async with InfluxClient.from_settings(settings) as client:
                await client.setup()
                r = town.readings
                ms = (r["time"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
                lines = [Reading("vitre", s, int(m), float(t), float(h)).to_line()
                         for s, m, t, h in zip(r["sensor"], ms, r["temperature"], r["humidity"], strict=True)]
                for i in range(0, len(lines), 20_000):
                    await client.write_lines(lines[i:i + 20_000])
                clock = datetime.combine(LAST + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=7)
                service = AnalyticsService(settings, client, registry, clock=lambda: clock)
                await service.analytics.recompute_range("vitre", FIRST, LAST)
                verdicts = await service.review_trust()
                hourly = await client.query_records(
                    f"SELECT \"sensor\", \"qc\" FROM {client.qualified('hourly', AGG_RP)} WHERE \"town\" = 'vitre'")
                return [verdicts, hourly]

        verdicts, hourly = asyncio.run(go())
        yield {"town": town, "verdicts": {v.sensor: v for v in verdicts}, "hourly": pd.DataFrame(hourly),
               "trust": {s.id: s.trust for s in registry.list("vitre")}}


def flagged_share(hourly: pd.DataFrame, sensor: str, flags: int = int(VALUE_FLAGS)) -> float:
    qc = hourly.loc[hourly["sensor"] == sensor, "qc"].fillna(0).astype("int64")
    assert len(qc) >= DAYS * 24 - 2, sensor
    return float(((qc & flags) != 0).mean())


def test_the_sunny_courtyard_is_flagged_and_the_hot_spot_is_not(computed: dict[str, Any]) -> None:
    h = computed["hourly"]
    # The town's own hot spot, its streets and parks: not one hour flagged.
    for sid in ["hot-spot", *[f"street-{i:02d}" for i in range(12)], "park-north", "park-south"]:
        assert flagged_share(h, sid) == 0.0, sid
    # The courtyard: its sunny hours carry the radiation signature (warm by day with the sun, its street's
    # night), and the town-wide z-score marks it warm; after a week the monthly share flags the rest.
    courtyard = h[h["sensor"] == "c-courtyard"]
    assert ((courtyard["qc"].fillna(0).astype("int64") & int(QcFlag.RADIATION)) != 0).sum() >= 40
    assert flagged_share(h, "c-courtyard") > 0.5
    # The indoor kit: far from the town's air, not following it.
    assert flagged_share(h, "c-indoor") > 0.5
    # The well-sited resident's kit passes like the streets it stands in.
    assert flagged_share(h, "c-street") < 0.02


def test_only_the_well_sited_resident_is_confirmed(computed: dict[str, Any]) -> None:
    v = computed["verdicts"]
    assert computed["trust"]["c-street"] == "confirmed", v["c-street"]
    for sid in ("c-courtyard", "c-indoor"):
        assert computed["trust"][sid] == "provisional" and "flagged" in v[sid].reason, v[sid]
    assert computed["trust"]["hot-spot"] is None  # the town's own network is official, never reviewed
    assert np.isclose(v["c-street"].coverage, 1.0, atol=0.01)
