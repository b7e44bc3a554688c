"""The hot-spot town end to end: raw readings of a dozen street sensors at +2.8…3.3 °C nights, one street at
+4.6 °C, two parks and a rural reference (tests/support/hotspot_town.py) stored in the real influxd, the
analytics backfill over the fortnight (quality control included), then the API: the hot spot survives into the
published numbers, tops the ranking and is the hottest place of the map."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from heatwatch.core.measurements import RAW_RP


@pytest.fixture(scope="module")
def e2e_client(influxd, tmp_path_factory):
    from heatwatch.analytics.backfill import backfill
    from heatwatch.analytics.jobs import Analytics
    from heatwatch.api.app import create_app
    from heatwatch.core.influx import InfluxClient
    from heatwatch.core.registry import Registry
    from heatwatch.core.settings import Settings
    from support.apps import with_api
    from support.hotspot_town import DAYS, FIRST, load_registry, readings
    from support.insights_data import write_agg

    folder = tmp_path_factory.mktemp("hotspot_e2e")
    settings = Settings.load(influx_url=influxd.url, influx_db="hotspot_e2e", data_dir=folder / "var")
    load_registry(settings.registry_path)
    write_agg(influxd.url, settings.influx_db, [])  # database and retention policies

    async def load_and_backfill() -> None:
        async with InfluxClient(influxd.url, settings.influx_db) as client:
            lines = [r.to_line() for r in readings()]
            for i in range(0, len(lines), 10_000):
                await client.write_lines(lines[i:i + 10_000], rp=RAW_RP)
            with Registry(settings.registry_path) as registry:
                analytics = Analytics(client, {"vitre": settings.towns["vitre"]}, registry)
                await backfill(analytics, FIRST, FIRST + timedelta(days=DAYS - 1), ["vitre"])

    asyncio.run(load_and_backfill())
    with TestClient(create_app(with_api(settings, rate_limit_per_s=0, cache_ttl_agg_s=0))) as c:
        yield c


def test_hot_spot_survives_quality_control_and_tops_the_ranking(e2e_client):
    from support.hotspot_town import DAYS, HOTSPOT, STREETS

    body = e2e_client.get("/v1/towns/vitre/rankings", params={"season": 2025}).json()
    ranked = [d for d in body["data"] if d["rank"] is not None]
    assert ranked and ranked[0]["sensor"] == HOTSPOT, [(d["sensor"], d["uhi_night_max_mean"]) for d in ranked[:4]]
    assert ranked[0]["uhi_night_max_mean"] == pytest.approx(4.6, abs=0.4)
    assert {d["sensor"] for d in ranked[1:13]} <= set(STREETS)
    # Every local day of the fortnight is published (the last one included), and the ranked sites are compared
    # on the 11 days none of them missed.
    compared = body["meta"]["season"]["compared_on"]
    assert compared["days_with_data"] == DAYS and compared["common_days"] == DAYS - 3
    assert all(d["days_compared"] == DAYS - 3 for d in ranked) and len(ranked) == 15


def test_hot_spot_is_the_hottest_place_on_the_maps(e2e_client):
    from support.hotspot_town import FIRST, HOT_ROWS, HOTSPOT

    night = HOT_ROWS[0] - timedelta(days=1)
    for params in ({"date": night.isoformat(), "cell_m": 50},
                   {"from": FIRST.isoformat(), "to": (FIRST + timedelta(days=11)).isoformat()}):
        r = e2e_client.get("/v1/towns/vitre/uhi-map", params=params)
        assert r.status_code == 200, r.text
        mapped = {s["sensor"]: s["uhi"] for s in r.json()["meta"]["sensors"]}
        assert max(mapped, key=mapped.get) == HOTSPOT, mapped
        top = max(r.json()["features"], key=lambda f: f["properties"]["uhi"])
        assert top["properties"]["uhi"] > max(v for k, v in mapped.items() if k != HOTSPOT)
