"""Live alerts on the real influxd and mosquitto: every rule fires on crafted readings, a lasting
condition stays one stored alert across evaluations and restarts, and opens and closes go out on
``heat/alerts/<town>``."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heatwatch.analytics.alerts import AlertEngine, alert_history
from heatwatch.analytics.jobs import Analytics
from heatwatch.analytics.publish import MqttPublisher
from heatwatch.core.influx import AGG_RP, InfluxClient
from heatwatch.core.measurements import QcFlag
from heatwatch.core.model import Reading, Sensor, SiteClass
from heatwatch.core.mqtt import make_client
from heatwatch.core.registry import Registry
from heatwatch.core.settings import MqttUrl, load_towns
from support.wait import settled_count

TOWNS = load_towns()
T0 = datetime(2025, 7, 20, 21, 30, tzinfo=UTC)  # 23:30 in Vitré: night, for the UHI rule
STEP = timedelta(minutes=5)


def ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def sensors() -> list[Sensor]:
    def s(sid: str, cls: SiteClass) -> Sensor:
        return Sensor(id=sid, town="vitre", site_class=cls, latitude=48.12, longitude=-1.21)

    return [s("vitre-rural-01", SiteClass.rural_reference), s("u1", SiteClass.urban), s("u2", SiteClass.urban),
            s("u3", SiteClass.urban), s("u4", SiteClass.urban), s("quiet", SiteClass.urban)]


def readings(start: datetime, end: datetime, values: dict[str, tuple[float, float, float]]) -> list[Reading]:
    out = []
    t = start
    while t < end:
        for sensor, (temp, rh, batt) in values.items():
            out.append(Reading("vitre", sensor, ms(t), temp, rh, batt))
        t += STEP
    return out


class Collector:
    def __init__(self, url: str) -> None:
        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = make_client(MqttUrl.parse(url), "")
        self.client.on_connect = lambda c, *_: c.subscribe("heat/alerts/#", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        target = MqttUrl.parse(url)
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def _on_message(self, _c: object, _u: object, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, json.loads(msg.payload)))

    def wait(self, n: int, timeout: float = 10) -> list[tuple[str, dict]]:
        settled_count(lambda: len(self.messages), n, timeout, settle_s=0.2, interval=0.05)
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "registry.sqlite")
    reg.upsert_many(sensors())
    yield reg
    reg.close()


def test_alerts_open_once_close_once_survive_restart_and_go_out_on_mqtt(influxd, mosquitto, db_name, registry):
    hot = {"vitre-rural-01": (20.0, 50.0, 3.2), "u1": (37.0, 50.0, 3.2), "u2": (25.0, 60.0, 3.2),
           "u3": (22.0, 60.0, 2.5), "u4": (22.0, 60.0, 3.1)}
    batch = readings(T0 - timedelta(hours=3), T0 + timedelta(seconds=1), {k: v for k, v in hot.items() if k != "u4"})
    batch += readings(T0 - timedelta(hours=3), T0 - timedelta(hours=2), {"u4": hot["u4"]})
    # u3 failed QC (sun on the shield) for the last four stored hours; the town is in canicule.
    hour0 = T0.replace(minute=0)
    agg = [f"hourly,town=vitre,sensor=u3 t_mean=22.0,n=12i,qc={int(QcFlag.SPATIAL_HIGH)}i "
           f"{ms(hour0 - timedelta(hours=k))}" for k in range(1, 5)]
    local_midnight = datetime(2025, 7, 19, 22, tzinfo=UTC)
    agg.append(f"town_daily,town=vitre ibmn=20.5,ibmx=34.2,canicule=true {ms(local_midnight)}")

    collector = Collector(mosquitto.url)
    publisher = MqttPublisher(MqttUrl.parse(mosquitto.url), "test-analytics-alerts").start()

    async def evaluate(at: datetime, extra: list[Reading] = ()) -> list:
        async with InfluxClient(influxd.url, db_name) as c:
            await c.setup()
            if extra:
                await c.write_lines([r.to_line() for r in extra])
            # A new engine each time: the open alerts must come from InfluxDB, not from memory.
            engine = AlertEngine(Analytics(c, TOWNS, registry), publisher=publisher)
            return await engine.evaluate(at)

    async def seed() -> None:
        async with InfluxClient(influxd.url, db_name) as c:
            await c.setup()
            await c.write_lines([r.to_line() for r in batch])
            await c.write_lines(agg, rp=AGG_RP)

    async def history() -> list[dict]:
        async with InfluxClient(influxd.url, db_name) as c:
            return await alert_history(c, "vitre")

    try:
        asyncio.run(seed())
        opened = asyncio.run(evaluate(T0))
        expected = {("u1", "temperature"), ("u1", "heat_index"), ("u1", "uhi_night"), ("u2", "uhi_night"),
                    ("u3", "battery"), ("u3", "qc"), ("u4", "offline"), ("quiet", "offline"), ("", "canicule")}
        assert {(c.alert.sensor, c.alert.kind) for c in opened} == expected
        assert {c.event for c in opened} == {"open"}

        # Same conditions five minutes later, from a fresh engine: nothing new.
        t1 = T0 + STEP
        again = asyncio.run(evaluate(t1, readings(T0 + STEP, t1 + timedelta(seconds=1),
                                                  {k: v for k, v in hot.items() if k != "u4"})))
        # Nothing opens or closes; only the offline alerts' value (minutes without a reading) grows.
        assert {(c.event, c.alert.kind) for c in again} <= {("update", "offline")}

        # u1 cools down (the 30-min median follows), u4 comes back: three closes, the rest stays open.
        t2 = t1 + timedelta(minutes=35)
        cooler = dict(hot, u1=(30.0, 50.0, 3.2))
        changes = asyncio.run(evaluate(t2, readings(t1 + STEP, t2 + timedelta(seconds=1), cooler)))
        assert {(c.event, c.alert.sensor, c.alert.kind) for c in changes if c.event != "update"} == {
            ("close", "u1", "temperature"), ("close", "u1", "heat_index"), ("close", "u4", "offline")}
        assert all(c.event == "update" for c in asyncio.run(evaluate(t2 + timedelta(minutes=1))))

        rows = asyncio.run(history())
        assert len(rows) == len(expected)  # one stored alert per condition, whatever the evaluations
        by_key = {(r.get("sensor") or "", r["kind"]): r for r in rows}
        temp = by_key[("u1", "temperature")]
        assert temp["state"] == "closed" and temp["started"] == ms(T0) == temp["time"] and temp["ended"] == ms(t2)
        assert temp["value"] == pytest.approx(37.0) and temp["threshold"] == 35.0
        assert by_key[("u2", "uhi_night")]["state"] == "open" and by_key[("u2", "uhi_night")].get("ended") is None
        assert by_key[("", "canicule")]["state"] == "open"

        publisher.flush()
        msgs = collector.wait(len(expected) + 3)
        assert len(msgs) == len(expected) + 3
        assert {topic for topic, _ in msgs} == {"heat/alerts/vitre"}
        events = sorted((m["event"], m["sensor"] or "", m["kind"]) for _, m in msgs)
        assert events == sorted([("open", s, k) for s, k in expected]
                                + [("close", "u1", "temperature"), ("close", "u1", "heat_index"),
                                   ("close", "u4", "offline")])
        closed = next(m for _, m in msgs if m["event"] == "close" and m["kind"] == "temperature")
        assert closed["started"] == "2025-07-20T21:30:00.000Z" and closed["ended"].startswith("2025-07-20T22:10")
    finally:
        publisher.close()
        collector.close()
