"""A resident's MQTT account works on the real broker with the shipped ACL (docs/citizens.md, "Publishing"):

registration → ``heatwatch contributors mqtt-sync`` writes the account into mosquitto's password file and SIGHUPs
the broker → the resident publishes with the credentials of the registration answer → ingest stores the reading
and every output shows the sensor citizen and provisional; publishing under another sensor's topic is refused;
after the withdrawal the next sync removes the account and the broker refuses it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from heatwatch.api.app import create_app
from heatwatch.cli import main
from heatwatch.core.contributors import CHARTER_VERSION
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import Mosquitto
from heatwatch.stack.mqttauth import read_passwd, set_password
from support.apps import NO_LIMITS, with_api
from support.wait import wait_until

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NOT_AUTHORIZED = 0x87
SERVICES = {"ingest": "pw-ingest", "api": "pw-api"}


class Client:
    """One MQTT 5 connection recording its CONNACK and the PUBACK reason code of each publication."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
        self.c.username_pw_set(user, password)
        self.connack: Any = None
        self.pubacks: dict[int, int] = {}
        self.ready = threading.Event()
        self.c.on_connect = lambda _c, _u, _f, rc, _p: (setattr(self, "connack", rc), self.ready.set())
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self.pubacks.__setitem__(mid, int(getattr(rc, "value", 0)))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.ready.wait(10), "no CONNACK"

    @property
    def refused(self) -> bool:
        return bool(getattr(self.connack, "is_failure", True))

    def publish(self, topic: str, payload: bytes) -> int:
        mid = self.c.publish(topic, payload, qos=1).mid
        wait_until(lambda: mid in self.pubacks, 10, f"PUBACK for {topic}", interval=0.02)
        return self.pubacks[mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def connects(port: int, user: str, password: str) -> bool:
    c = Client(port, user, password)
    try:
        return not c.refused
    finally:
        c.close()


@pytest.fixture(scope="module")
def stack(influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """mosquitto with a password file and the shipped ACL (deploy/mosquitto.acl), the ingester with its own
    account, and the api."""
    root = tmp_path_factory.mktemp("contributor_mqtt")
    data_dir = root / "var"
    passwd = root / "broker" / "passwd"
    passwd.parent.mkdir()
    for user, password in SERVICES.items():
        set_password(passwd, user, password)
    broker = Mosquitto(root / "broker", passwd=passwd, acl=DEPLOY / "mosquitto.acl").start()
    db = f"contribmqtt_{os.getpid()}"
    with Registry(data_dir / "registry.sqlite", towns=["vitre", "saint-omer"]) as registry:
        registry.load_examples()
    env = {"HEATWATCH_MQTT_URL": broker.url, "HEATWATCH_MQTT_USERNAME": "ingest",
           "HEATWATCH_MQTT_PASSWORD": SERVICES["ingest"], "HEATWATCH_INFLUX_URL": influxd.url,
           "HEATWATCH_INFLUX_DB": db, "HEATWATCH_DATA_DIR": str(data_dir), "HEATWATCH_MQTT_CLIENT_ID": f"ingest-{db}",
           "HEATWATCH_BATCH_INTERVAL_S": "0.2"}
    ingester = ServiceProcess(["ingest"], env, root / "ingest.log", name="ingest")
    try:
        ingester.start(ready_marker="mqtt.subscribed")
        settings = Settings.load(influx_url=influxd.url, influx_db=db, mqtt_url=broker.url, mqtt_username="api",
                                 mqtt_password=SERVICES["api"], data_dir=data_dir)
        with TestClient(create_app(with_api(settings, **NO_LIMITS))) as client:
            yield {"broker": broker, "passwd": passwd, "client": client, "data_dir": data_dir, "db": db,
                   "influx": influxd.url}
    finally:
        ingester.stop()
        broker.stop()


def sync(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEATWATCH_DATA_DIR", str(stack["data_dir"]))
    code = main(["contributors", "mqtt-sync", "--passwd", str(stack["passwd"]),
                 "--hup-pid", str(stack["broker"].proc.pid)])
    assert code == 0


def stored(stack: dict[str, Any], sensor: str) -> int:
    r = httpx.post(f"{stack['influx']}/query", data={"db": stack["db"], "q": 'SELECT COUNT("temperature") FROM '
                                                     f'"raw"."reading" WHERE "sensor" = \'{sensor}\''}, timeout=30)
    series = r.json()["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


def test_a_residents_account_publishes_on_its_own_topic_only(stack: dict[str, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    c: TestClient = stack["client"]
    broker: Mosquitto = stack["broker"]
    r = c.post("/v1/contribute", json={
        "town": "vitre", "pseudonym": "Jo", "contact": "jo@exemple.fr", "device_model": "SHT31 + ESP32",
        "latitude": 48.1241, "longitude": -1.2093, "height_m": 2.0, "setting": "garden", "shade": "shade",
        "licence": "etalab-2.0", "consent": True, "charter_version": CHARTER_VERSION})
    assert r.status_code == 201, r.text
    joined = r.json()
    sensor, account = joined["sensor"], joined["mqtt"]
    assert account["username"] == f"vitre/{sensor}" and account["topic"] == f"heat/vitre/{sensor}"
    # Registered, not yet in the broker's file: the broker does not know the account.
    assert not connects(broker.port, account["username"], account["password"])

    sync(stack, monkeypatch)
    users = read_passwd(stack["passwd"])
    assert account["username"] in users and set(SERVICES) <= set(users)  # the services' accounts are kept
    wait_until(lambda: connects(broker.port, account["username"], account["password"]), 20,
               "the broker to take the resident's account after its SIGHUP", interval=0.2)

    resident = Client(broker.port, account["username"], account["password"])
    try:
        now = int(time.time())
        ok = resident.publish(account["topic"], json.dumps({"ts": now, "temperature": 24.5, "humidity": 51.0}).encode())
        assert ok in (0, 0x10)  # success (0x10: no subscriber matched, never the case with ingest running)
        assert resident.publish(f"senml/vitre/{sensor}", json.dumps(
            [{"bn": f"{sensor}:", "bt": now + 60, "n": "temperature", "u": "Cel", "v": 24.7}]).encode()) in (0, 0x10)
        # Another sensor's topic, the same id under another town, alerts, heatwatch's own topics: refused.
        for topic in ("heat/vitre/vitre-centre-01", f"heat/saint-omer/{sensor}", "heat/alerts/vitre",
                      "heatwatch/recompute"):
            assert resident.publish(topic, b'{"temperature": 99}') == NOT_AUTHORIZED, topic
    finally:
        resident.close()

    wait_until(lambda: stored(stack, sensor) == 2, 30, "the resident's readings stored")
    assert stored(stack, "vitre-centre-01") == 0  # the refused publication never reached ingest
    latest = c.get("/v1/latest", params={"town": "vitre"}).json()["data"]
    row = next(x for x in latest if x["sensor"] == sensor)
    assert (row["network"], row["trust"]) == ("citizen", "provisional")
    assert datetime.fromisoformat(row["time"].replace("Z", "+00:00")) == datetime.fromtimestamp(now + 60, UTC)

    # Withdrawal: the token and the account are revoked in the store; the next sync removes the account.
    r = c.post("/v1/contribute/me/withdraw", headers={"Authorization": f"Bearer {joined['token']}"})
    assert r.status_code == 202, r.text
    sync(stack, monkeypatch)
    assert account["username"] not in read_passwd(stack["passwd"])
    wait_until(lambda: not connects(broker.port, account["username"], account["password"]), 20,
               "the broker to refuse the withdrawn account")
    sync(stack, monkeypatch)  # nothing left to do: no rewrite, no reload
    assert set(read_passwd(stack["passwd"])) == set(SERVICES)
