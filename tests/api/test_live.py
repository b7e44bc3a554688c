"""``/v1/live``: coalescing of readings and Last-Event-ID replay of alerts, against the real mosquitto
and a real ``heatwatch api`` process; plus the hub's pure parts without any network.

Readings are published here as the ingester publishes what it stored, on ``heatwatch/live/<town>``
(tests/ingest/test_end_to_end.py checks the producer side); alerts as analytics does."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from heatwatch.api.live import LiveHub
from heatwatch.core.settings import LiveOptions, MqttUrl
from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import free_port
from support.mqtt import publish_all

COALESCE_S = 1.0


# A running api and an SSE reader ------------------------------------------------------------------


@pytest.fixture
def live_api(mosquitto, influxd, db_name: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        "HEATWATCH_MQTT_URL": mosquitto.url,
        "HEATWATCH_INFLUX_URL": influxd.url,
        "HEATWATCH_INFLUX_DB": db_name,
        "HEATWATCH_DATA_DIR": str(tmp_path / "var"),
        "HEATWATCH_LIVE_COALESCE_S": str(COALESCE_S),
        "HEATWATCH_LIVE_PING_S": "1",
        "HEATWATCH_API_RATE_LIMIT_PER_S": "0",
    }
    proc = ServiceProcess(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api.log", name="api")
    proc.start(ready_marker="live.subscribed", timeout=60)
    proc.wait_for("Application startup complete", timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


class SSE:
    """Reads an event stream in a thread; ``events`` receives (event, id, data) tuples, ``data["_rx"]``
    being the arrival time (monotonic) of an object."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[tuple[str, str | None, Any]] = queue.Queue()
        self.status: int | None = None
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers or {}), daemon=True)
        self._thread.start()
        assert self._opened.wait(10), "stream did not open"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        timeout = httpx.Timeout(10, read=30)
        with httpx.Client(timeout=timeout) as client, client.stream("GET", url, headers=headers) as r:
            self.status = r.status_code
            self.content_type = r.headers.get("content-type", "")
            self._opened.set()
            kind, eid, data = "message", None, []
            for line in r.iter_lines():
                if self._stop.is_set():
                    return
                if line == "":
                    if data:
                        doc = json.loads("\n".join(data))
                        if isinstance(doc, dict):
                            doc["_rx"] = time.monotonic()  # arrival time, for the coalescing test
                        self.events.put((kind, eid, doc))
                    kind, eid, data = "message", None, []
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        kind = value
                    elif name == "id":
                        eid = value
                    elif name == "data":
                        data.append(value)

    def close(self) -> None:
        self._stop.set()  # the thread ends at the next line (pings come every second)

    def collect(self, seconds: float) -> list[tuple[str, str | None, Any]]:
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.events.get(timeout=left))
            except queue.Empty:
                break
        return out

    def wait_for(self, pred: Callable[[tuple[str, str | None, Any]], bool], timeout: float = 10) -> list:
        """Every event up to and including the first one matching ``pred``."""
        seen = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                break
            seen.append(ev)
            if pred(ev):
                return seen
        raise AssertionError(f"no matching event in {timeout}s; got {seen}")


def stored(sensor: str, t: float | None, **extra: Any) -> dict[str, Any]:
    """One reading as ingest describes it on the live topic."""
    return {"sensor": sensor, "ts": int(time.time() * 1000), "temperature": t, "humidity": None,
            "battery_v": None, "rssi": None, "source": "json"} | extra


def live_message(town: str, *readings: dict[str, Any]) -> tuple[str, bytes]:
    return f"heatwatch/live/{town}", json.dumps({"town": town, "readings": list(readings)}).encode()


def reading(town: str, sensor: str, t: float, **extra: Any) -> tuple[str, bytes]:
    return live_message(town, stored(sensor, t, **extra))


def alert(town: str, n: int, **extra: Any) -> tuple[str, bytes]:
    body = {"sensor": f"{town}-s1", "kind": "uhi_high", "value": 4.0 + n, "threshold": 4.0, "message": f"alert {n}"}
    return f"heat/alerts/{town}", json.dumps(body | extra).encode()


# Against mosquitto and a running api -------------------------------------------------------------


def test_stream_opens_with_hello(live_api):
    s = SSE(f"{live_api}/v1/live?town=vitre")
    try:
        assert s.status == 200 and s.content_type.startswith("text/event-stream")
        _, eid, data = s.wait_for(lambda e: e[0] == "hello")[-1]
        assert eid is None and data["town"] == "vitre" and data["mqtt_connected"] is True
        assert data["coalesce_s"] == COALESCE_S
    finally:
        s.close()
    assert httpx.get(f"{live_api}/v1/live?town=nowhere").status_code == 404


def test_readings_are_coalesced_per_sensor_and_filtered_by_town(live_api, mosquitto):
    s = SSE(f"{live_api}/v1/live?town=vitre")
    try:
        s.wait_for(lambda e: e[0] == "hello")
        # A burst of 20 readings from one sensor within well under one coalescing period, one from
        # a second sensor, one from the other town, one implausible, one malformed, and a raw native
        # payload: only what ingest stored and published on heatwatch/live/<town> is shown.
        burst = [reading("vitre", "live-a", 20.0 + i / 10) for i in range(20)]
        others = [reading("vitre", "live-b", 25.0), reading("saint-omer", "so-x", 18.0),
                  reading("vitre", "live-c", 99.0), ("heatwatch/live/vitre", b"{not json"),
                  ("heat/vitre/live-d", json.dumps({"temperature": 22.0}).encode())]
        t0 = time.monotonic()
        assert publish_all(mosquitto.url, burst + others) == 25
        events = s.collect(COALESCE_S * 3)
        readings = [(d, time.monotonic()) for k, _, d in events if k == "reading"]
        a = [d for d, _ in readings if d["sensor"] == "live-a"]
        assert 1 <= len(a) <= 2, a  # the first at once, then at most one trailing flush
        assert a[-1]["temperature"] == pytest.approx(21.9)  # the newest value is never lost
        assert {d["sensor"] for d, _ in readings} == {"live-a", "live-b"}
        assert all(d["town"] == "vitre" and d["time"].endswith("Z") for d, _ in readings)
        assert time.monotonic() - t0 < COALESCE_S * 3 + 5

        # Sustained updates, one every 0.1 s for 2.5 s: events stay at least one period apart.
        stamps = []
        stop = time.monotonic() + 2.5
        i = 0
        while time.monotonic() < stop:
            publish_all(mosquitto.url, [reading("vitre", "live-a", 30.0 + i / 100)])
            i += 1
            time.sleep(0.1)
        last = 30.0 + (i - 1) / 100
        deadline = time.monotonic() + COALESCE_S * 3
        got_last = False
        while time.monotonic() < deadline and not got_last:
            for k, _, d in s.collect(0.2):
                if k == "reading" and d["sensor"] == "live-a":
                    stamps.append(d["_rx"])
                    got_last = d["temperature"] == pytest.approx(last)
        assert got_last, "the last value of a sustained stream must arrive"
        assert 2 <= len(stamps) <= 2.5 / COALESCE_S + 2, stamps
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert all(g >= COALESCE_S * 0.7 for g in gaps), gaps  # loose: delivery jitter on a busy machine
    finally:
        s.close()

    # A new client gets the newest reading of every sensor at once.
    s2 = SSE(f"{live_api}/v1/live?town=vitre")
    try:
        snap = {d["sensor"]: d for k, _, d in s2.collect(1.0) if k == "reading"}
        assert set(snap) == {"live-a", "live-b"}
        assert snap["live-a"]["temperature"] == pytest.approx(last)
    finally:
        s2.close()


def test_readings_of_every_format_arrive_and_never_move_back_in_time(live_api, mosquitto):
    s = SSE(f"{live_api}/v1/live?town=vitre")
    try:
        s.wait_for(lambda e: e[0] == "hello")
        now = int(time.time() * 1000)
        # One ingest batch: a SenML and a TTS sensor, then a late message with an older reading of one.
        batch = live_message("vitre", stored("fmt-senml", 24.5, humidity=51.0, ts=now - 60_000, source="senml"),
                             stored("fmt-tts", 26.0, battery_v=3.3, rssi=-97.0, ts=now - 30_000, source="tts"))
        late = live_message("vitre", stored("fmt-senml", 19.0, ts=now - 600_000, source="senml"))
        assert publish_all(mosquitto.url, [batch, late]) == 2
        seen = s.wait_for(lambda e: e[0] == "reading" and e[2]["sensor"] == "fmt-tts")
        seen += s.collect(COALESCE_S * 2)
        got = {d["sensor"]: d for k, _, d in seen if k == "reading"}
        assert set(got) == {"fmt-senml", "fmt-tts"}
        assert got["fmt-senml"]["temperature"] == 24.5 and got["fmt-senml"]["humidity"] == 51.0
        assert got["fmt-senml"]["ts"] == now - 60_000 and got["fmt-senml"]["source"] == "senml"
        assert got["fmt-tts"] | {"_rx": 0} == {
            "town": "vitre", "sensor": "fmt-tts", "ts": now - 30_000, "time": got["fmt-tts"]["time"],
            "temperature": 26.0, "humidity": None, "battery_v": 3.3, "battery_pct": None, "rssi": -97.0,
            "source": "tts", "network": "town", "trust": "official", "_rx": 0}
    finally:
        s.close()


def test_a_residents_reading_is_marked_and_never_placed_in_the_stream(live_api, mosquitto, tmp_path):
    """Live events about a private site carry its network and trust, and neither its position nor a name."""
    from heatwatch.core.model import Sensor
    from heatwatch.core.registry import Registry

    with Registry(tmp_path / "var" / "registry.sqlite", towns=("vitre", "saint-omer")) as reg:
        reg.upsert(Sensor(id="c-vitre-live", town="vitre", name="Chez Mme Quintal, 3 rue des Tanneurs",
                          latitude=48.1253417, longitude=-1.2081133, owner="citizen", trust="provisional"))
    s = SSE(f"{live_api}/v1/live?town=vitre")
    try:
        s.wait_for(lambda e: e[0] == "hello")
        assert publish_all(mosquitto.url, [reading("vitre", "c-vitre-live", 24.5)]) == 1
        (event,) = [d for k, _, d in s.wait_for(lambda e: e[0] == "reading") if k == "reading"]
        assert (event["sensor"], event["network"], event["trust"]) == ("c-vitre-live", "citizen", "provisional")
        raw = json.dumps(event)
        assert not any(x in raw for x in ("48.125", "-1.208", "Quintal", "Tanneurs", "latitude", "longitude"))
    finally:
        s.close()


def test_alerts_are_never_coalesced_and_replayed_after_last_event_id(live_api, mosquitto):
    watcher = SSE(f"{live_api}/v1/live")  # all towns, stays connected throughout
    client = SSE(f"{live_api}/v1/live?town=vitre")
    try:
        watcher.wait_for(lambda e: e[0] == "hello")
        client.wait_for(lambda e: e[0] == "hello")
        assert publish_all(mosquitto.url, [alert("vitre", 1)]) == 1
        _, first_id, first = client.wait_for(lambda e: e[0] == "alert")[-1]
        assert first_id is not None and int(first_id) == first["id"] and first["message"] == "alert 1"
        assert first["town"] == "vitre" and first["kind"] == "uhi_high" and first["time"].endswith("Z")
        client.close()  # the browser goes away (phone asleep, network change)...

        # ...while five alerts of its town and two of the other are raised, within milliseconds.
        missed = [alert("vitre", n) for n in range(2, 7)]
        assert publish_all(mosquitto.url, [*missed[:2], alert("saint-omer", 1), *missed[2:],
                                           alert("saint-omer", 2)]) == 7
        seen = watcher.wait_for(lambda e: e[0] == "alert" and e[2]["message"] == "alert 2"
                                and e[2]["town"] == "saint-omer")
        all_alerts = [d for k, _, d in seen if k == "alert"]
        assert len(all_alerts) == 8  # none coalesced, whatever the rate
        ids = [d["id"] for d in all_alerts]
        assert ids == sorted(ids) and len(set(ids)) == 8

        # It reconnects with Last-Event-ID, as EventSource does: every missed alert of its town,
        # in order, nothing before, nothing of the other town.
        back = SSE(f"{live_api}/v1/live?town=vitre", headers={"Last-Event-ID": first_id})
        try:
            replay = [d for k, _, d in back.collect(1.5) if k == "alert"]
            assert [d["message"] for d in replay] == [f"alert {n}" for n in range(2, 7)]
            assert all(d["id"] > int(first_id) for d in replay)
            # and then live ones as usual
            assert publish_all(mosquitto.url, [alert("vitre", 7)]) == 1
            assert back.wait_for(lambda e: e[0] == "alert")[-1][2]["message"] == "alert 7"
        finally:
            back.close()

        # An id from before this server started (another process, buffer long gone): a gap event
        # tells the client to refetch open alerts, then everything buffered follows.
        old = SSE(f"{live_api}/v1/live?town=vitre", headers={"Last-Event-ID": "5"})
        try:
            events = old.collect(1.5)
            kinds = [k for k, _, _ in events]
            assert kinds.index("gap") < kinds.index("alert")
            assert [d["message"] for k, _, d in events if k == "alert"] == [f"alert {n}" for n in range(1, 8)]
        finally:
            old.close()

        # A garbage Last-Event-ID is ignored (no replay), never an error.
        junk = SSE(f"{live_api}/v1/live?town=vitre", headers={"Last-Event-ID": "abc"})
        try:
            assert junk.status == 200
            assert [k for k, _, _ in junk.collect(1.0) if k == "alert"] == []
        finally:
            junk.close()
    finally:
        watcher.close()
        client.close()


def test_a_close_event_is_delivered_with_its_event_field(live_api, mosquitto):
    s = SSE(f"{live_api}/v1/live?town=vitre")
    try:
        s.wait_for(lambda e: e[0] == "hello")
        started = "2024-07-20T12:00:00.000Z"
        opened = alert("vitre", 1, sensor="vitre-close-1", event="open", state="open", started=started, ended=None)
        closed = alert("vitre", 1, sensor="vitre-close-1", event="close", state="closed", started=started,
                       ended="2024-07-20T14:00:00.000Z")
        assert publish_all(mosquitto.url, [opened, closed]) == 2
        seen = s.wait_for(lambda e: e[0] == "alert" and e[2].get("event") == "close")
        events = [d for k, _, d in seen if k == "alert"]
        assert [d["event"] for d in events] == ["open", "close"]
        assert events[1]["sensor"] == "vitre-close-1" and events[1]["kind"] == "uhi_high"
        assert events[1]["ended"] == "2024-07-20T14:00:00.000Z" and events[1]["started"] == started
        assert events[1]["id"] > events[0]["id"]
    finally:
        s.close()


# The hub without a network ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_alert_buffer_overflow_reports_a_gap():
    hub = LiveHub(MqttUrl.parse("mqtt://127.0.0.1:1"), ["vitre", "saint-omer"],
                  LiveOptions(enabled=False, alert_buffer=3))
    await hub.start()
    ids = [hub.publish_alert("vitre", {"kind": "k", "message": f"m{i}"}).id for i in range(5)]
    assert ids == sorted(ids)
    # A client that saw the first alert: the second was pushed out of the buffer, so a gap is reported.
    _, first = hub.subscribe("vitre", ids[0])
    assert [e.kind for e in first] == ["hello", "gap", "alert", "alert", "alert"]
    # A client that saw the second misses nothing: the three buffered, no gap.
    _, first = hub.subscribe("vitre", ids[1])
    assert [e.kind for e in first] == ["hello", "alert", "alert", "alert"]
    _, first = hub.subscribe("vitre", ids[2])
    assert [e.kind for e in first] == ["hello", "alert", "alert"]
    assert [e.data["message"] for e in first[1:]] == ["m3", "m4"]
    # Other towns' alerts are not replayed to a town stream.
    hub.publish_alert("saint-omer", {"kind": "k"})
    _, first = hub.subscribe("vitre", ids[4])
    assert [e.kind for e in first] == ["hello"]
    await hub.stop()


@pytest.mark.anyio
async def test_slow_client_is_cut_off_not_buffered_forever():
    hub = LiveHub(MqttUrl.parse("mqtt://127.0.0.1:1"), ["vitre"], LiveOptions(enabled=False, client_buffer=10))
    await hub.start()
    sub, _ = hub.subscribe("vitre", None)
    for i in range(11):
        hub.publish_alert("vitre", {"message": str(i)})
    assert sub.closed and hub.clients == 0
    await hub.stop()
