"""Readings published on the real mosquitto arrive exactly once in the real influxd."""

from __future__ import annotations

import json
import threading
import time

from heatwatch.stack.children import ServiceProcess
from support.influx import count_readings, stored_keys
from support.mqtt import publish_all
from support.streams import native_stream
from support.wait import settled_count


def wait_count(url: str, db: str, expected: int, timeout: float = 90) -> int:
    return settled_count(lambda: count_readings(url, db), expected, timeout)


def test_full_speed_stream_stored_exactly_once(ingester, influxd, mosquitto, db_name):
    stream = native_stream(n_sensors=200, per_sensor=50)
    assert publish_all(mosquitto.url, [(t, p) for t, p, _ in stream]) == len(stream)
    assert wait_count(influxd.url, db_name, len(stream)) == len(stream)
    keys = stored_keys(influxd.url, db_name)
    assert sorted(keys) == sorted(k for _, _, k in stream)

    # Tags, fields and timestamps of a sample come back as published.
    import httpx

    _topic, payload, (town, sensor, ts) = stream[1234]
    body = json.loads(payload)
    r = httpx.post(f"{influxd.url}/query", data={
        "db": db_name, "epoch": "ms",
        "q": 'SELECT * FROM "raw"."reading" WHERE "sensor" = $s AND time = $t',
        "params": json.dumps({"s": sensor, "t": ts * 1_000_000}),
    }).json()
    row = dict(zip(r["results"][0]["series"][0]["columns"], r["results"][0]["series"][0]["values"][0], strict=True))
    assert row == {"time": ts, "town": town, "sensor": sensor, "temperature": body["temperature"],
                   "humidity": body["humidity"], "source": "json"}

    # Every sensor the registry did not know is registered, unplaced, in the town its topic names.
    from pathlib import Path

    from heatwatch.core.registry import Registry

    expected = {(t, s) for _, _, (t, s, _ts) in stream}
    with Registry(Path(ingester.env["HEATWATCH_DATA_DIR"]) / "registry.sqlite", towns=("vitre", "saint-omer")) as reg:
        deadline = time.monotonic() + 30
        while {(x.town, x.id) for x in reg.list()} != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        sensors = reg.list()
    assert {(x.town, x.id) for x in sensors} == expected
    assert {x.site_class for x in sensors} == {"unplaced"}


def test_array_payload_and_malformed_messages_do_not_stop_the_consumer(ingester, influxd, mosquitto, db_name):
    now = int(time.time() * 1000)
    backlog = [{"ts": now - 60_000 * i, "temperature": 20.0 + i, "humidity": 50} for i in range(10)]
    messages = [
        ("heat/vitre/backlog-1", json.dumps(backlog).encode()),
        ("heat/vitre/bad", b"{not json"),
        ("heat/vitre/bad", b'{"temperature": "hot"}'),
        ("heat/vitre/bad", json.dumps({"ts": now, "temperature": 99}).encode()),
        ("heat/nowhere/x", json.dumps({"ts": now, "temperature": 20}).encode()),
        ("heat/vitre/ok-1", json.dumps({"ts": now, "temperature": 21.5, "humidity": 60}).encode()),
    ]
    assert publish_all(mosquitto.url, messages) == len(messages)
    assert wait_count(influxd.url, db_name, 11) == 11
    ingester.wait_for("ingest.rejected")
    log = ingester.log_text()
    for reason in ("invalid_json", "non_numeric", "temperature_range", "unknown_town"):
        assert reason in log


def _restart_mid_stream(ingester: ServiceProcess, influxd, mosquitto, db_name: str, *, kill: bool) -> None:
    stream = native_stream(n_sensors=100, per_sensor=100)
    published: list[int] = []
    t = threading.Thread(target=lambda: published.append(publish_all(mosquitto.url, [(a, b) for a, b, _ in stream])))
    t.start()
    # Interrupt once part of the stream is stored, so the restart really happens mid-stream.
    deadline = time.monotonic() + 60
    while count_readings(influxd.url, db_name) < len(stream) // 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    if kill:
        ingester.kill()
    else:
        assert ingester.stop() == 0  # SIGTERM: flush what is pending, ack it, exit 0
    assert count_readings(influxd.url, db_name) < len(stream), "stream ended before the restart"
    time.sleep(1)
    ingester.start(ready_marker="mqtt.subscribed")
    t.join()
    assert published == [len(stream)]
    assert wait_count(influxd.url, db_name, len(stream)) == len(stream)
    assert sorted(stored_keys(influxd.url, db_name)) == sorted(k for _, _, k in stream)


def test_sigterm_mid_stream_loses_nothing(ingester, influxd, mosquitto, db_name):
    _restart_mid_stream(ingester, influxd, mosquitto, db_name, kill=False)


def test_sigkill_mid_stream_loses_nothing(ingester, influxd, mosquitto, db_name):
    _restart_mid_stream(ingester, influxd, mosquitto, db_name, kill=True)


def test_acknowledged_messages_are_not_redelivered(ingester, influxd, mosquitto, db_name, ingest_env):
    """Acks really reach the broker: after a clean stop, the session holds nothing to redeliver.

    Without this, lost acks would go unnoticed elsewhere: redelivered readings overwrite themselves.
    """
    import threading as _threading

    from heatwatch.core.mqtt import connect_properties, make_client
    from heatwatch.core.settings import MqttUrl

    stream = native_stream(n_sensors=50, per_sensor=40)
    assert publish_all(mosquitto.url, [(t, p) for t, p, _ in stream]) == len(stream)
    assert wait_count(influxd.url, db_name, len(stream)) == len(stream)
    assert ingester.stop() == 0

    redelivered: list[str] = []
    connected = _threading.Event()
    url = MqttUrl.parse(mosquitto.url)
    client = make_client(url, ingest_env["HEATWATCH_MQTT_CLIENT_ID"], manual_ack=True)
    client.on_connect = lambda c, _u, flags, _rc, _p: (redelivered.append(f"present={flags.session_present}"),
                                                      connected.set())
    client.on_message = lambda _c, _u, m: redelivered.append(m.topic)
    client.connect(url.host, url.port, clean_start=False, properties=connect_properties(session_expiry_s=60,
                                                                                        receive_maximum=5000))
    client.loop_start()
    try:
        assert connected.wait(10)
        time.sleep(2)
    finally:
        client.disconnect()
        client.loop_stop()
    assert redelivered == ["present=True"]


def test_stored_readings_feed_the_live_topic_in_one_shape(ingester, influxd, mosquitto, db_name):
    """heatwatch/live/<town>: the newest stored reading per sensor, whatever the payload format."""
    from support.mqtt import subscribed

    with subscribed(mosquitto.url, "heatwatch/live/#", decode=json.loads) as got:
        now = int(time.time() * 1000)
        senml = [{"bn": "urn:dev:heatwatch:sm-1:", "bt": now / 1000 - 60, "n": "temperature", "u": "Cel",
                  "v": 24.5}, {"n": "humidity", "u": "%RH", "v": 51.0}]
        native = [{"ts": now - 120_000, "temperature": 20.0}, {"ts": now - 60_000, "temperature": 21.0}]
        publish_all(mosquitto.url, [("senml/vitre/sm-1", json.dumps(senml).encode()),
                                    ("heat/vitre/js-1", json.dumps(native).encode()),
                                    ("heat/vitre/bad", b"not json")])
        deadline = time.monotonic() + 20
        seen: dict[str, dict] = {}
        while time.monotonic() < deadline and {"sm-1", "js-1"} - seen.keys():
            for msg in list(got):
                assert msg["town"] == "vitre"
                seen |= {r["sensor"]: r for r in msg["readings"]}
            time.sleep(0.1)
    assert seen["sm-1"]["temperature"] == 24.5 and seen["sm-1"]["humidity"] == 51.0
    assert seen["sm-1"]["source"] == "senml"
    assert seen["js-1"]["temperature"] == 21.0 and seen["js-1"]["ts"] == now - 60_000  # newest of the array
    assert "bad" not in seen
