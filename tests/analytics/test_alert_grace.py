"""The grace rule of the alert engine on the real influxd (docs/alerts.md, "When an alert may open").

The scene is the demo's first minutes: analytics starts while the readings of the last hours are still queued
(the town's newest stored reading is two hours old), then the backlog lands, then the sensors report live. A
sensor that stopped three hours before start-up and never comes back is the one real fault. Nothing opens for
what was seen before start-up or while the backlog was landing; the dead sensor's alert opens once the grace has
passed; a stored canicule day of a past summer opens nothing. Later the whole town falls silent: one town-level
alert, not one per sensor, and the open alerts stay as they are until data is back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heatwatch.analytics.alerts import AlertEngine, Change
from heatwatch.analytics.jobs import Analytics
from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.model import Reading, Sensor, SiteClass
from heatwatch.core.registry import Registry
from heatwatch.core.settings import load_towns

TOWNS = {"vitre": load_towns()["vitre"]}
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # analytics starts (daytime: no UHI rule)
STEP = timedelta(minutes=5)
SENSORS = ["vitre-rural-01", "u1", "u2", "u3", "dead"]


def ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def readings(start: datetime, end: datetime, sensors: list[str], temp: float = 12.0) -> list[Reading]:
    out, t = [], start
    while t < end:
        out += [Reading("vitre", s, ms(t), temp, 80.0, 3.1) for s in sensors]
        t += STEP
    return out


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "registry.sqlite")
    reg.upsert_many([Sensor(id=s, town="vitre", latitude=48.12, longitude=-1.21,
                            site_class=SiteClass.rural_reference if s.startswith("vitre-rural") else SiteClass.urban)
                     for s in SENSORS])
    yield reg
    reg.close()


def test_nothing_opens_for_conditions_seen_only_before_start_up_or_during_a_backlog(influxd, db_name, registry):
    live = [s for s in SENSORS if s != "dead"]

    async def scene() -> dict[str, list[Change]]:
        out: dict[str, list[Change]] = {}
        async with InfluxClient(influxd.url, db_name) as c:
            await c.setup()
            # Stored before start-up: a day of readings up to two hours ago, the dead sensor up to three hours ago,
            # a hot afternoon at u1 then, and last summer's canicule days.
            await c.write_lines([r.to_line() for r in readings(START - timedelta(days=1), START - timedelta(hours=3),
                                                               SENSORS)])
            await c.write_lines([r.to_line() for r in readings(START - timedelta(hours=3), START - timedelta(hours=2),
                                                               live)])
            await c.write_lines([r.to_line() for r in readings(START - timedelta(hours=2, minutes=30),
                                                               START - timedelta(hours=2), ["u1"], 38.0)])
            summer = (datetime(2026, 7, 18, 22, tzinfo=UTC), datetime(2026, 7, 19, 22, tzinfo=UTC))
            await c.write_lines([f"town_daily,town=vitre ibmn=20.4,ibmx=35.2,canicule=true {ms(d)}" for d in summer],
                                rp=AGG_RP)
            engine = AlertEngine(Analytics(c, TOWNS, registry), grace_s=600, lag_s=900, started=START)

            async def at(when: datetime, key: str, new: list[Reading] = ()) -> None:
                if new:
                    await c.write_lines([r.to_line() for r in new])
                out[key] = await engine.evaluate(when)

            # Start-up: the town's newest reading is two hours old (its backlog is still queued).
            await at(START, "start")
            # Two minutes later the backlog has landed and the sensors report live; the dead sensor does not.
            await at(START + timedelta(minutes=2), "flushed", readings(START - timedelta(hours=2),
                                                                       START + timedelta(minutes=2), live))
            await at(START + timedelta(minutes=7), "grace", readings(START + timedelta(minutes=2),
                                                                     START + timedelta(minutes=7), live))
            # Past the grace (ten minutes after the backlog landed): the dead sensor's silence is a condition now.
            await at(START + timedelta(minutes=13), "settled", readings(START + timedelta(minutes=7),
                                                                        START + timedelta(minutes=13), live))
            # Then nothing arrives from the town for 70 minutes.
            await at(START + timedelta(minutes=83), "silent")
            await at(START + timedelta(minutes=90), "back", readings(START + timedelta(minutes=83),
                                                                     START + timedelta(minutes=90), live))
            # After a lag, the grace starts again: a sensor that stayed silent through it is only alerted later.
            await at(START + timedelta(minutes=101), "after", readings(START + timedelta(minutes=90),
                                                                       START + timedelta(minutes=101), live[:-1]))
            out["lags"] = engine.lags  # type: ignore[assignment]
        return out

    got = asyncio.run(scene())
    events = {k: {(c.event, c.alert.sensor, c.alert.kind) for c in v if c.event != "update"}
              for k, v in got.items() if k != "lags"}
    assert events["start"] == set()  # lagging, and within the start-up grace: not even the town's silence
    assert events["flushed"] == set()  # the dead sensor is silent, but the backlog landed only now
    assert events["grace"] == set()
    assert events["settled"] == {("open", "dead", "offline")}  # and no canicule of last July, no hot u1
    assert events["silent"] == {("open", "", "offline")}  # one alert for the town; dead's alert stays open
    assert events["back"] == {("close", "", "offline")}
    # u3 stopped when the data came back; it is silent for 11 minutes only: nothing yet either way.
    assert events["after"] == set()


def test_without_grace_and_lag_every_snapshot_speaks_for_itself(influxd, db_name, registry):
    """The engine's defaults (what the e2e alert test relies on): the dead sensor opens at once, even at start."""

    async def go() -> list[Change]:
        async with InfluxClient(influxd.url, db_name) as c:
            await c.setup()
            await c.write_lines([r.to_line() for r in readings(START - timedelta(hours=3), START, SENSORS[:-1])])
            return await AlertEngine(Analytics(c, TOWNS, registry)).evaluate(START)

    assert {(c.alert.sensor, c.alert.kind) for c in asyncio.run(go())} == {("dead", "offline")}
