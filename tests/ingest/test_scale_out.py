"""Scale-out with shared subscriptions, and the production broker configuration in deploy/."""

from __future__ import annotations

import json
import pwd
import shutil
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from heatwatch.cli.sensors import mqtt_user
from heatwatch.core.model import Sensor
from heatwatch.core.registry import Registry
from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import MOSQUITTO_LIMITS, Mosquitto, free_port
from support.faults import ResilientPublisher, deadletter_counts, ingester_env, scrape, wait_count
from support.influx import stored_keys
from support.streams import native_stream
from support.wait import wait_until

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_shared_subscription_splits_the_stream_between_three_ingesters(influxd, db_name, tmp_path):
    # A broker of its own: persistent shared-group sessions left by other tests would take a share.
    broker = Mosquitto(tmp_path / "mosquitto").start()
    names = ["a", "b", "c"]
    ports = {n: free_port() for n in names}
    procs = {
        n: ServiceProcess(
            ["ingest"],
            ingester_env(broker.url, influxd.url, db_name, tmp_path / f"var-{n}", f"scale-{n}-{db_name}",
                         metrics_port=ports[n], mqtt_shared_group="heatwatch"),
            tmp_path / f"ingest-{n}.log", name=f"ingest-{n}",
        ).start(ready_marker="mqtt.subscribed")
        for n in names
    }
    try:
        for p in procs.values():
            assert "$share/heatwatch/heat/+/+" in p.log_text()
        stream = native_stream(n_sensors=300, per_sensor=60)
        assert ResilientPublisher(broker.url, [(t, b) for t, b, _ in stream]).run() == len(stream)
        assert wait_count(influxd.url, db_name, len(stream)) == len(stream)
        assert sorted(stored_keys(influxd.url, db_name)) == sorted(k for _, _, k in stream)

        received = {n: scrape(ports[n])["heatwatch_ingest_messages_received_total"] for n in names}
        stored = {n: scrape(ports[n])["heatwatch_ingest_readings_stored_total"] for n in names}
        assert all(v > 0 for v in received.values()), received  # every member took a share
        assert sum(received.values()) == len(stream)  # each message went to exactly one member
        assert sum(stored.values()) == len(stream)
        for n in names:
            assert deadletter_counts(tmp_path / f"var-{n}") == {}
    finally:
        for p in procs.values():
            p.stop()
        broker.stop()


# --- deploy/mosquitto.conf ------------------------------------------------------------------------


def _deploy_limits() -> dict[str, str]:
    conf = (DEPLOY / "mosquitto.conf").read_text()
    return {k: v for k, v in (line.split(None, 1) for line in conf.splitlines() if line and line[0] != "#")}


def test_deploy_conf_limits_match_the_ones_tests_run_with():
    deploy = _deploy_limits()
    for line in MOSQUITTO_LIMITS.splitlines():
        key, value = line.split(None, 1)
        assert deploy.get(key) == value, f"{key}: deploy {deploy.get(key)!r} vs tests {value!r}"
    assert deploy["persistence"] == "true"
    assert deploy["allow_anonymous"] == "false"


def _adapted_conf(tmp: Path, port: int) -> Path:
    """deploy/mosquitto.conf with its port, files and log moved into ``tmp``; everything else as shipped."""
    owner = pwd.getpwuid(tmp.stat().st_uid).pw_name
    out = [f"user {owner}"]  # run as root, mosquitto would drop to a user that cannot write tmp
    listeners = 0
    for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
        key = line.split(None, 1)[0] if line.strip() and not line.startswith("#") else ""
        if (key == "listener" and line.split()[1] == "8883") or key in ("certfile", "keyfile", "tls_version"):
            continue  # the TLS listener: tests/stack/test_deploy_broker.py runs it with a development certificate
        if key == "listener":
            listeners += 1
            line = f"listener {port} 127.0.0.1"
        elif key == "password_file":
            line = f"password_file {tmp / 'passwd'}"
        elif key == "acl_file":
            line = f"acl_file {tmp / 'acl'}"
        elif key == "persistence_location":
            line = f"persistence_location {tmp}/"
        elif key == "log_dest":
            continue
        out.append(line)
    assert listeners == 1, "the adapted config expects one active listener"
    out.append("log_dest stdout")
    conf = tmp / "mosquitto.conf"
    conf.write_text("\n".join(out) + "\n")
    shutil.copy(DEPLOY / "mosquitto.acl", tmp / "acl")
    return conf


@pytest.fixture
def deploy_broker(tmp_path: Path):
    if not shutil.which("mosquitto_passwd"):
        pytest.fail("mosquitto_passwd is not installed (Debian package mosquitto)")
    d = tmp_path / "broker"
    d.mkdir()
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(d / "passwd"), "ingest", "ingest-secret"], check=True)
    users = {"ingest": "ingest-secret"}
    # Sensor accounts the documented way: from the registry, user name <town>/<sensor id>.
    with Registry(tmp_path / "var" / "registry.sqlite", towns={"vitre", "saint-omer"}) as registry:
        registry.upsert_many([Sensor(id="s-a", town="vitre"), Sensor(id="s-b", town="vitre"),
                              Sensor(id="s-c", town="saint-omer")])
        for sensor in ("s-a", "s-b", "s-c"):
            user, password = mqtt_user(registry, sensor, d / "passwd")
            users[sensor] = (user, password)
    port = free_port()
    conf = _adapted_conf(d, port)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with open(d / "mosquitto.log", "ab") as log:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _port_open(port) or proc.poll() is not None, 10, "mosquitto listening")
        assert proc.poll() is None, (d / "mosquitto.log").read_text()
        yield port, users, d
    finally:
        proc.terminate()
        proc.wait(10)


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _client(port: int, user: str | None, password: str | None) -> tuple[mqtt.Client, object]:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    if user:
        c.username_pw_set(user, password)
    result: dict[str, object] = {}
    done = threading.Event()

    def on_connect(_c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        result["rc"] = rc
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert done.wait(5)
    return c, result["rc"]


def _publish(port: int, user: str, password: str, items: list[tuple[str, bytes]]) -> list[int]:
    """Publish at QoS 1 as ``user``; the MQTT 5 PUBACK reason code of each message, in order."""
    c, rc = _client(port, user, password)
    codes: dict[int, int] = {}

    def on_publish(_c: object, _u: object, mid: int, reason: object, _p: object) -> None:
        codes[mid] = int(getattr(reason, "value", 0))

    c.on_publish = on_publish
    try:
        assert not rc.is_failure  # type: ignore[attr-defined]
        mids = [c.publish(t, p, qos=1).mid for t, p in items]
        wait_until(lambda: len(codes) == len(mids), 10, "PUBACKs")
        return [codes[m] for m in mids]
    finally:
        c.disconnect()
        c.loop_stop()


def test_deploy_conf_acl_sensor_publishes_only_its_own_topic(deploy_broker, influxd, db_name, tmp_path):
    port, users, _d = deploy_broker
    # Anonymous clients and wrong passwords are refused outright.
    for user, password in ((None, None), (users["s-a"][0], "wrong"), ("s-a", users["s-a"][1])):
        c, rc = _client(port, user, password)
        c.loop_stop()
        assert rc.is_failure, (user, rc)  # type: ignore[attr-defined]

    # The real ingester, as the ingest user, on a shared subscription as in production.
    ingest = ServiceProcess(
        ["ingest"],
        ingester_env(f"mqtt://ingest:{users['ingest']}@127.0.0.1:{port}", influxd.url, db_name,
                     tmp_path / "var", f"acl-{db_name}", mqtt_shared_group="heatwatch"),
        tmp_path / "ingest.log",
    ).start(ready_marker="mqtt.subscribed")
    try:
        now = int(time.time() * 1000)

        def reading(ts: int) -> bytes:
            return json.dumps({"ts": ts, "temperature": 21.0, "humidity": 50.0}).encode()

        assert users["s-a"][0] == "vitre/s-a"
        codes = _publish(port, *users["s-a"], [
            ("heat/vitre/s-a", reading(now - 2000)),
            ("heat/vitre/s-b", reading(now - 1500)),      # sensor B's topic: refused
            ("senml/vitre/s-b", b"[]"),                   # B's SenML topic too
            ("heat/saint-omer/s-a", reading(now - 1000)),  # its own id under another town: refused
            ("heat/alerts/vitre", b"{}"),                 # forging an alert: refused
            ("senml/vitre/s-a", json.dumps([{"bn": "s-a:", "bt": (now - 1000) / 1000, "n": "t", "u": "Cel",
                                             "v": 21.0}]).encode()),
        ])
        not_authorized = 0x87
        assert codes == [0, not_authorized, not_authorized, not_authorized, not_authorized, 0]
        assert _publish(port, *users["s-b"], [("heat/vitre/s-b", reading(now - 500))]) == [0]
        assert _publish(port, *users["s-c"], [("heat/saint-omer/s-c", reading(now - 500)),
                                              ("heat/vitre/s-c", reading(now - 400))]) == [0, not_authorized]

        assert wait_count(influxd.url, db_name, 4) == 4
        assert sorted(stored_keys(influxd.url, db_name)) == sorted([
            ("vitre", "s-a", now - 2000), ("vitre", "s-a", now - 1000), ("vitre", "s-b", now - 500),
            ("saint-omer", "s-c", now - 500)])
        assert deadletter_counts(tmp_path / "var") == {}
    finally:
        ingest.stop()
