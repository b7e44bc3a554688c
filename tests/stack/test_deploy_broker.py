"""The shipped broker configuration (deploy/mosquitto.conf and mosquitto.acl) on a real mosquitto: plain MQTT
on loopback only, TLS with the development certificate deploy/gen-dev-cert.sh makes, bounded queues, and each
account refused what its role forbids."""

from __future__ import annotations

import pwd
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from heatwatch.stack.embedded import MOSQUITTO_LIMITS, free_port
from heatwatch.stack.mqttauth import acl_rules, acl_text, check_password, parse_acl, set_password

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NOT_AUTHORIZED = 0x87
ACCOUNTS = {"ingest": "pw-ingest", "analytics": "pw-analytics", "api": "pw-api", "replay": "pw-replay",
            "vitre/s-a": "pw-sensor"}


def _conf() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value.strip())
    return out


def test_the_shipped_acl_is_the_one_up_runs() -> None:
    shipped = parse_acl((DEPLOY / "mosquitto.acl").read_text())
    assert shipped == {user: set(rules) for user, rules in acl_rules().items()}
    assert parse_acl(acl_text()) == shipped


def test_the_shipped_conf_is_safe_by_default() -> None:
    conf = _conf()
    assert conf["allow_anonymous"] == ["false"] and conf["per_listener_settings"] == ["false"]
    # Plain MQTT on loopback only; the only other listener is TLS.
    assert conf["listener"] == ["1883 127.0.0.1", "8883"]
    assert conf["certfile"] and conf["keyfile"] and conf["tls_version"] == ["tlsv1.2"]
    # Bounded queues, the same the tests and `heatwatch up` run with.
    for line in MOSQUITTO_LIMITS.splitlines():
        key, value = line.split(None, 1)
        assert conf[key] == [value], key
    assert int(conf["max_queued_messages"][0]) > 0 and int(conf["max_queued_bytes"][0]) > 0


def test_mosquitto_password_hashes_are_mosquittos(tmp_path: Path) -> None:
    if not shutil.which("mosquitto_passwd"):
        pytest.fail("mosquitto_passwd is not installed (Debian package mosquitto)")
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "tool", "tool-pw"], check=True)
    mode = passwd.stat().st_mode & 0o777
    set_password(passwd, "ingest", "pw-ingest")
    set_password(passwd, "ingest", "pw-ingest-2")  # replaced, not duplicated
    lines = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    assert set(lines) == {"tool", "ingest"}
    assert passwd.stat().st_mode & 0o777 == mode  # an existing file keeps its mode (and owner: the broker's)
    assert check_password(lines["tool"], "tool-pw") and check_password(lines["ingest"], "pw-ingest-2")
    fresh = tmp_path / "fresh"
    set_password(fresh, "api", "pw")
    assert fresh.stat().st_mode & 0o777 == 0o600  # a new one is the owner's only


@dataclass
class Broker:
    plain: int
    tls: int
    ca: Path
    dir: Path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    d = tmp_path_factory.mktemp("deploy-broker")
    certs = d / "certs"
    subprocess.run([str(DEPLOY / "gen-dev-cert.sh"), str(certs)], check=True, capture_output=True)
    for user, password in ACCOUNTS.items():
        set_password(d / "passwd", user, password)
    plain, tls = free_port(), free_port()
    owner = pwd.getpwuid(d.stat().st_uid).pw_name
    out = [f"user {owner}"]
    for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
        key = line.split(None, 1)[0] if line.strip() and not line.startswith("#") else ""
        if line == "listener 1883 127.0.0.1":
            line = f"listener {plain} 127.0.0.1"
        elif line == "listener 8883":
            line = f"listener {tls} 127.0.0.1"
        elif key in ("certfile", "keyfile"):
            line = f"{key} {certs / Path(line.split()[1]).name}"
        elif key == "password_file":
            line = f"password_file {d / 'passwd'}"
        elif key == "acl_file":
            line = f"acl_file {DEPLOY / 'mosquitto.acl'}"
        elif key == "persistence_location":
            line = f"persistence_location {d}/"
        elif key == "log_dest":
            continue
        out.append(line)
    out.append("log_dest stdout")
    (d / "mosquitto.conf").write_text("\n".join(out) + "\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with open(d / "mosquitto.log", "ab") as log:
        proc = subprocess.Popen([binary, "-c", str(d / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not (_open(plain) and _open(tls)):
            assert proc.poll() is None, (d / "mosquitto.log").read_text()
            assert time.monotonic() < deadline, "mosquitto not listening"
            time.sleep(0.05)
        yield Broker(plain, tls, certs / "ca.pem", d)
    finally:
        proc.terminate()
        proc.wait(10)


def _open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Session:
    """A connected MQTT 5 client recording CONNACK, SUBACK and PUBACK reason codes."""

    def __init__(self, port: int, user: str | None, password: str | None, *, ca: Path | None = None) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
        if user:
            self.c.username_pw_set(user, password)
        if ca is not None:
            self.c.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
        self.connack: object = None
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.messages: list[str] = []
        self.event = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda _c, _u, mid, codes, _p: self.subacks.__setitem__(mid, [int(x.value)
                                                                                             for x in codes])
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self.pubacks.__setitem__(mid, int(getattr(rc, "value", 0)))
        self.c.on_message = lambda _c, _u, msg: self.messages.append(msg.topic)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.event.wait(5), "no CONNACK"

    def _on_connect(self, _c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        self.connack = rc
        self.event.set()

    @property
    def refused(self) -> bool:
        return bool(getattr(self.connack, "is_failure", True))

    def subscribe(self, topic: str) -> int:
        _, mid = self.c.subscribe(topic, qos=1)
        _wait(lambda: mid in self.subacks)
        return self.subacks[mid][0]

    def publish(self, topic: str) -> int:
        mid = self.c.publish(topic, b"{}", qos=1).mid
        _wait(lambda: mid in self.pubacks)
        return self.pubacks[mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _wait(cond, timeout: float = 5) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "no answer from the broker"
        time.sleep(0.01)


def test_tls_with_the_development_certificate(broker: Broker) -> None:
    s = Session(broker.tls, "api", ACCOUNTS["api"], ca=broker.ca)
    assert not s.refused
    s.close()
    # The TLS port speaks nothing else, and a client that does not trust the CA does not connect.
    with pytest.raises((ssl.SSLError, OSError, AssertionError)):
        Session(broker.tls, "api", ACCOUNTS["api"])  # no CA file: plain MQTT to the TLS port
    untrusted = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    untrusted.tls_set(cert_reqs=ssl.CERT_REQUIRED)  # the system's CAs only
    with pytest.raises(ssl.SSLError):
        untrusted.connect("127.0.0.1", broker.tls)


def test_heatwatch_connects_over_tls_with_its_ca_setting(broker: Broker) -> None:
    from heatwatch.core.mqtt import make_client
    from heatwatch.core.settings import CoreSettings

    settings = CoreSettings.load(mqtt_url=f"mqtts://localhost:{broker.tls}", mqtt_username="api",
                                 mqtt_password=ACCOUNTS["api"], mqtt_ca_file=broker.ca)
    client = make_client(settings.mqtt)
    assert client.connect(settings.mqtt.host, settings.mqtt.port) == 0
    client.disconnect()


def test_nobody_connects_without_an_account(broker: Broker) -> None:
    for user, password in ((None, None), ("ingest", "wrong"), ("s-a", ACCOUNTS["vitre/s-a"])):
        s = Session(broker.plain, user, password)
        assert s.refused, user
        s.close()


# Who may publish each probe topic, so reads can be checked by what is delivered: mosquitto 2.0 grants every
# SUBACK and enforces read rights when it delivers.
PROBES = {"heat/vitre/s-a": "vitre/s-a", "senml/vitre/s-a": "vitre/s-a", "v3/app/devices/d/up": "replay",
          "heatwatch/recompute": "api", "heatwatch/recompute/done": "analytics", "heat/alerts/vitre": "analytics",
          "heatwatch/live/vitre": "ingest"}


@pytest.mark.parametrize("user, filters, reads, publications", [
    ("ingest", ["$share/heatwatch/heat/+/+", "senml/+/+", "v3/+/devices/+/up", "heatwatch/#"],
     {"heat/vitre/s-a", "senml/vitre/s-a", "v3/app/devices/d/up", "heat/alerts/vitre"},
     {"heatwatch/live/vitre": 0, "heat/vitre/s-a": NOT_AUTHORIZED, "heat/alerts/vitre": NOT_AUTHORIZED,
      "heatwatch/recompute": NOT_AUTHORIZED}),
    ("analytics", ["#"], {"heatwatch/recompute"},
     {"heat/alerts/vitre": 0, "heatwatch/recompute/done": 0, "heat/vitre/s-a": NOT_AUTHORIZED,
      "heatwatch/live/vitre": NOT_AUTHORIZED, "heatwatch/recompute": NOT_AUTHORIZED}),
    ("api", ["#"], {"heatwatch/live/vitre", "heat/alerts/vitre"},
     {"heatwatch/recompute": 0, "heat/vitre/s-a": NOT_AUTHORIZED, "senml/vitre/s-a": NOT_AUTHORIZED,
      "heat/alerts/vitre": NOT_AUTHORIZED, "heatwatch/live/vitre": NOT_AUTHORIZED,
      "v3/app/devices/d/up": NOT_AUTHORIZED, "heatwatch/recompute/done": NOT_AUTHORIZED}),
    ("replay", ["#"], set(),
     {"heat/vitre/s-a": 0, "v3/app@ttn/devices/d/up": 0, "heatwatch/recompute": NOT_AUTHORIZED,
      "heatwatch/live/vitre": NOT_AUTHORIZED, "heat/alerts/vitre": NOT_AUTHORIZED}),
    ("vitre/s-a", ["#"], set(),
     {"heat/vitre/s-a": 0, "senml/vitre/s-a": 0, "heat/vitre/s-b": NOT_AUTHORIZED,
      "heat/saint-omer/s-a": NOT_AUTHORIZED, "heat/alerts/vitre": NOT_AUTHORIZED,
      "heatwatch/recompute": NOT_AUTHORIZED, "heatwatch/live/vitre": NOT_AUTHORIZED}),
])
def test_each_account_is_refused_what_its_role_forbids(broker: Broker, user: str, filters: list[str], reads: set[str],
                                                       publications: dict[str, int]) -> None:
    s = Session(broker.tls, user, ACCOUNTS[user], ca=broker.ca)
    publishers = {u: Session(broker.plain, u, ACCOUNTS[u]) for u in set(PROBES.values())}
    try:
        assert not s.refused
        for f in filters:
            s.subscribe(f)
        # Each probe is published by an account allowed to; its PUBACK means mosquitto (single-threaded) has
        # routed it, so whatever it would deliver is on its way before the next step.
        for topic, publisher in PROBES.items():
            assert publishers[publisher].publish(topic) == 0, topic
        if reads:
            _wait(lambda: reads <= set(s.messages))
            # One more the account reads, published last: once it is here, nothing sent before can still come.
            marker = sorted(reads)[0]
            publishers[PROBES[marker]].publish(marker)
            _wait(lambda: s.messages.count(marker) == 2)
        else:
            time.sleep(1)  # nothing can be read by this account: no later message to wait for
        assert set(s.messages) == reads
        assert {t: s.publish(t) for t in publications} == publications
    finally:
        s.close()
        for p in publishers.values():
            p.close()
