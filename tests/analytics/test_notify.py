"""Alerts that reach people, end to end: analytics evaluates real readings on the real influxd (and announces on the
real mosquitto), its dispatcher sends e-mail through a real SMTP server (aiosmtpd: STARTTLS with a certificate of a
throwaway CA, AUTH required) and signed webhooks to a real HTTP receiver that verifies them with the Standard
Webhooks reference library; a technician acknowledges through the api. One summer day and night of Vitré is driven
with an injected clock: no sleeps.

What it shows (docs/alerts.md, "How an alert reaches people"): an alert → e-mail and webhook delivered, signature
verified; a failing webhook retried with back-off, then dead-lettered and listed; an unacknowledged alert re-notified,
an acknowledged one not; quiet hours hold a night alert until morning; the end of an alert told; the daily digest
sent once, in season.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import ssl
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fastapi.testclient import TestClient

from heatwatch.analytics.notify import Dispatcher
from heatwatch.analytics.notify.senders import EmailSender, SendError
from heatwatch.analytics.publish import MqttPublisher
from heatwatch.analytics.scheduler import AnalyticsService
from heatwatch.api.app import create_app
from heatwatch.core.influx import InfluxClient
from heatwatch.core.model import Reading, Sensor, SiteClass
from heatwatch.core.notifications import NotificationStore, SubscriptionIn, verify
from heatwatch.core.registry import Registry
from heatwatch.core.settings import MqttUrl, Settings
from heatwatch.stack.embedded import free_port
from support.apps import NO_LIMITS, with_api
from support.mqtt import subscribed
from support.wait import wait_until

TOKEN = "notify-test-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SMTP_USER, SMTP_PASSWORD = "heatwatch", "s3cret-smtp-password"
T0 = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)  # 14:00 in Vitré, in the vigilance season
STEP = timedelta(minutes=5)
SENSORS = {"vitre-rural-01": SiteClass.rural_reference, "u1": SiteClass.urban, "u2": SiteClass.urban}


def ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def readings(start: datetime, end: datetime, values: dict[str, tuple[float, float]]) -> list[Reading]:
    out, t = [], start
    while t <= end:
        # Dry air: 38 °C stays under the heat-index threshold, so one kind of alert opens.
        out += [Reading("vitre", s, ms(t), temp, 20.0, volts) for s, (temp, volts) in values.items()]
        t += STEP
    return out


# A real SMTP server -----------------------------------------------------------------------------------

class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage, bool, Any]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg, tls,
                                  getattr(session.auth_data, "login", None)))
        return "250 OK"

    def all(self) -> list:
        with self.lock:
            return list(self.messages)


def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        SMTP_USER.encode(), SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def smtp(ca, tmp_path_factory):
    """STARTTLS required before AUTH, AUTH required before mail: what a submission server (587) enforces."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    box = Mailbox()
    ctl = Controller(box, hostname="127.0.0.1", port=free_port(), tls_context=tls, require_starttls=True,
                     auth_required=True, auth_require_tls=True, authenticator=authenticate)
    ctl.start()
    ca_file = tmp_path_factory.mktemp("smtp") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yield ctl, box, ca_file
    ctl.stop()


# A real webhook receiver ------------------------------------------------------------------------------

class Receiver:
    """Loopback HTTP server: /ok answers 204 to a request whose signature verifies (401 otherwise), /fail always
    answers 500."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = False
                secret = outer.secrets.get(self.path)
                if secret:
                    try:
                        standardwebhooks.Webhook(secret).verify(body, headers)
                        verified = True
                    except standardwebhooks.WebhookVerificationError:
                        verified = False
                with outer.lock:
                    outer.got.append({"path": self.path, "headers": headers, "body": body, "verified": verified})
                status = 500 if self.path == "/fail" else (204 if verified else 401)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [g for g in self.got if g["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "registry.sqlite")
    reg.upsert_many([Sensor(id=s, town="vitre", site_class=c, latitude=48.12, longitude=-1.21)
                     for s, c in SENSORS.items()])
    yield reg
    reg.close()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_alerts_reach_people_by_mail_and_signed_webhook(influxd, mosquitto, db_name, tmp_path, registry, smtp,
                                                         receiver):
    ctl, box, ca_file = smtp
    settings = Settings.load(
        influx_url=influxd.url, influx_db=db_name, data_dir=tmp_path / "var", admin_token=TOKEN,
        mqtt_url=mosquitto.url, alert_grace_s=0, notify_smtp_host="127.0.0.1", notify_smtp_port=ctl.port,
        notify_smtp_security="starttls", notify_smtp_username=SMTP_USER, notify_smtp_password=SMTP_PASSWORD,
        notify_smtp_ca_file=ca_file, notify_smtp_from="Heatwatch Vitré <alertes@vitre.example>",
        notify_attempts=4, notify_backoff_s=30, notify_renotify_s=3600,
        notify_dashboard_url="https://heatwatch.vitre.example/")
    clock = Clock(T0)
    store = NotificationStore.for_data_dir(settings.data_dir)
    with TestClient(create_app(with_api(settings, **NO_LIMITS))) as api:
        _scenario(api, settings, clock, store, influxd, mosquitto, db_name, registry, box, receiver)


def _scenario(api, settings, clock, store, influxd, mosquitto, db_name, registry, box, receiver) -> None:

    def subscribe(**body: Any) -> dict[str, Any]:
        r = api.post("/v1/notifications/subscriptions", json={"town": "vitre", **body}, headers=AUTH)
        assert r.status_code == 201, r.text
        return r.json()

    mail = subscribe(channel="email", target="astreinte@vitre.example", kinds=["temperature", "battery"],
                     quiet_start="22:00", quiet_end="07:00", name="Astreinte")
    hook = subscribe(channel="webhook", target=receiver.url("/ok"), digest=False, renotify_s=0)
    broken = subscribe(channel="webhook", target=receiver.url("/fail"), kinds=["temperature"], digest=False,
                       send_resolved=False, renotify_s=0)
    receiver.secrets["/ok"] = hook["secret"]
    # A technician checks the e-mail set-up first: the test message goes at the dispatcher's first run.
    assert api.post(f"/v1/notifications/subscriptions/{mail['id']}/test", headers=AUTH).status_code == 202

    publisher = MqttPublisher(MqttUrl.parse(mosquitto.url), "test-notify-analytics").start()

    async def scene() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with InfluxClient(influxd.url, db_name) as c:
            await c.setup()
            service = AnalyticsService(settings, c, registry, publisher=publisher, clock=clock)

            async def at(when: datetime, values: dict[str, tuple[float, float]] | None = None) -> None:
                clock.now = when
                if values:
                    await c.write_lines([r.to_line() for r in readings(when - timedelta(minutes=40), when, values)])
                    await service.evaluate_alerts()
                await service.dispatch()

            # 14:00: u1 in the sun of a car park, 38 °C: a temperature alert opens.
            hot = {"vitre-rural-01": (30.0, 3.1), "u1": (38.0, 3.1), "u2": (31.0, 3.1)}
            await at(T0, hot)
            seen["opened"] = (len(box.all()), len(receiver.at("/ok")), len(receiver.at("/fail")))
            # The failing receiver: retried after 30 s, then 60 s, then 120 s; nothing before each is due.
            await at(T0 + timedelta(seconds=29))
            seen["before_backoff"] = len(receiver.at("/fail"))
            for s in (30, 90, 210):
                await at(T0 + timedelta(seconds=s))
            seen["tries"] = len(receiver.at("/fail"))
            await at(T0 + timedelta(seconds=600))
            seen["after_dead"] = len(receiver.at("/fail"))
            # 15:00: still hot and nobody acknowledged: a reminder.
            await at(T0 + timedelta(hours=1))
            seen["reminded"] = len(box.all())
            seen["open_alerts"] = api.get("/v1/alerts", params={"town": "vitre", "status": "open"}).json()["data"]
            # A technician acknowledges from the dashboard; the next reminder is not sent.
            a = seen["open_alerts"][0]
            r = api.post("/v1/notifications/acks", headers=AUTH, json={
                "town": "vitre", "sensor": a["sensor"], "kind": a["kind"], "started": a["started"],
                "by": "Camille Martin", "note": "ombrage posé"})
            seen["ack"] = (r.status_code, r.json())
            await at(T0 + timedelta(hours=2, minutes=5))
            seen["after_ack"] = len(box.all())
            # 23:30: the evening is cool, u1's alert ends; u2's battery sags: a battery alert in quiet hours.
            night = T0 + timedelta(hours=9, minutes=30)
            await at(night, {"vitre-rural-01": (19.0, 3.1), "u1": (20.0, 3.1), "u2": (20.0, 2.45)})
            seen["night"] = (len(box.all()), [json.loads(g["body"])["type"] for g in receiver.at("/ok")])
            await at(datetime(2026, 7, 16, 4, 59, tzinfo=UTC))  # 06:59 local: still quiet
            seen["06:59"] = len(box.all())
            await at(datetime(2026, 7, 16, 5, 0, tzinfo=UTC))  # 07:00 local: what waited goes out
            seen["07:00"] = len(box.all())
            # 08:00 local: the digest, and a reminder of the battery alert nobody acknowledged since 07:00.
            await at(datetime(2026, 7, 16, 6, 0, tzinfo=UTC))
            await at(datetime(2026, 7, 16, 6, 30, tzinfo=UTC))  # one digest a day
            seen["digest"] = len(box.all())
            await service.notify.close()
        return seen

    try:
        with subscribed(mosquitto.url, "heat/alerts/vitre") as announced:
            seen = asyncio.run(scene())
            wait_until(lambda: len(announced) >= 3, 10, "the alerts announced on MQTT")
    finally:
        publisher.close()

    # The opening: one e-mail (STARTTLS, authenticated), one signed webhook, one failed attempt.
    assert seen["opened"] == (2, 1, 1)
    # (sent in the same run, concurrently: in either order)
    test_mail, opening = sorted(box.all()[:2], key=lambda m: "Chaleur" in m[2]["Subject"])
    assert test_mail[2]["Subject"] == "[heatwatch] Vitré — message d'essai"
    sender, rcpt, first, tls, login = opening
    assert (sender, rcpt, tls, login) == ("alertes@vitre.example", ["astreinte@vitre.example"], True,
                                          SMTP_USER.encode())
    assert "Vitré" in first["Subject"] and "Chaleur" in first["Subject"] and "u1" in first["Subject"]
    body = first.get_content()
    assert "38 °C (seuil 35 °C)" in body and "https://heatwatch.vitre.example/" in body
    assert first["Auto-Submitted"] == "auto-generated"

    ok = receiver.at("/ok")[0]
    assert ok["verified"]  # by the Standard Webhooks reference library, against the real clock
    payload = json.loads(ok["body"])
    assert payload["type"] == "alert.open" and payload["alert"]["sensor"] == "u1"
    assert payload["alert"]["kind"] == "temperature" and payload["alert"]["value"] == pytest.approx(38.0)
    # The signature covers the timestamp and the body: changing either breaks it, so a replay cannot be freshened.
    ts = int(ok["headers"]["webhook-timestamp"])
    assert verify(hook["secret"], ok["headers"], ok["body"], ts)
    assert not verify(hook["secret"], ok["headers"], ok["body"].replace(b"38", b"18"), ts)
    assert not verify(hook["secret"], {**ok["headers"], "webhook-timestamp": str(ts + 600)}, ok["body"], ts + 600)
    assert not verify(hook["secret"], ok["headers"], ok["body"], ts + 3600)  # too old for the receiver

    # The failing webhook: 4 attempts (t0, +30 s, +90 s, +210 s), the same message id each time, then dead.
    assert seen["before_backoff"] == 1 and seen["tries"] == 4 and seen["after_dead"] == 4
    assert len({g["headers"]["webhook-id"] for g in receiver.at("/fail")}) == 1
    dead = store.deliveries(status="dead")
    assert [(d.subscription, d.attempts) for d in dead] == [(broken["id"], 4)]
    assert "HTTP 500" in (dead[0].last_error or "")

    # Unacknowledged after the delay: a reminder in the same thread; acknowledged: no more.
    assert seen["reminded"] == 3
    reminder = box.all()[2][2]
    assert reminder["Subject"].startswith("[heatwatch] Vitré — Rappel")
    assert reminder["In-Reply-To"] == first["Message-ID"]
    code, ack = seen["ack"]
    assert code == 201 and ack["by"] == "Camille Martin"
    assert seen["after_ack"] == 3

    # Night: the webhook (no quiet hours) hears the end and the battery alert at once; the e-mail waits for 07:00.
    assert seen["night"][0] == 3
    assert sorted(seen["night"][1]) == ["alert.close", "alert.open", "alert.open"]
    assert seen["06:59"] == 3 and seen["07:00"] == 5
    morning = {m[2]["Subject"] for m in box.all()[3:5]}
    assert any("Fin d'alerte" in s and "Chaleur" in s for s in morning)
    assert any("Batterie faible" in s and "u2" in s for s in morning)

    # The digest at 08:00, once: both alerts of the last 24 hours, with who acknowledged.
    assert seen["digest"] == 7
    last = {m[2]["Subject"]: m[2] for m in box.all()[5:7]}
    assert any("Rappel" in s and "u2" in s for s in last)
    digest = next(m for s, m in last.items() if "Synthèse quotidienne" in s)
    text = digest.get_content()
    assert "Alertes en cours (1)" in text and "Alertes terminées (1)" in text
    assert "acquittée par Camille Martin" in text and "batterie à 2,45 V" in text

    # The dead letter is visible to technicians, and sent again on request.
    listed = api.get("/v1/notifications/deliveries", params={"status": "dead"}, headers=AUTH).json()["data"]
    assert [d["id"] for d in listed] == [dead[0].id]
    assert len(announced) >= 3  # analytics announced the opens and the close on MQTT as before


def test_implicit_tls_and_a_refused_login(ca, tmp_path):
    """Port 465 style (TLS from the first byte), and a wrong password: a SendError the dispatcher retries."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    box = Mailbox()
    # aiosmtpd counts only STARTTLS as TLS for AUTH; here the whole connection is TLS from its first byte.
    ctl = Controller(box, hostname="127.0.0.1", port=free_port(), ssl_context=tls, auth_required=True,
                     auth_require_tls=False, authenticator=authenticate)
    ctl.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        good = EmailSender("127.0.0.1", ctl.port, "tls", "alertes@vitre.example", SMTP_USER, SMTP_PASSWORD, ca_file)
        asyncio.run(good.send(good.message("a@vitre.example", "Essai", "corps", "<essai-1@vitre.example>")))
        assert len(box.all()) == 1 and box.all()[0][3]
        bad = EmailSender("127.0.0.1", ctl.port, "tls", "alertes@vitre.example", SMTP_USER, "wrong", ca_file)
        with pytest.raises(SendError, match="SMTP"):
            asyncio.run(bad.send(bad.message("a@vitre.example", "Essai", "corps", "<essai-2@vitre.example>")))
        untrusted = EmailSender("127.0.0.1", ctl.port, "tls", "alertes@vitre.example", SMTP_USER, SMTP_PASSWORD)
        with pytest.raises(SendError):  # the system's CAs do not know the test CA: no mail to an impostor
            asyncio.run(untrusted.send(untrusted.message("a@vitre.example", "Essai", "corps", "<e-3@vitre.example>")))
        assert len(box.all()) == 1
    finally:
        ctl.stop()


def test_what_is_due_is_sent_while_influxdb_is_down(tmp_path, receiver):
    """Reconciling needs InfluxDB; sending what is already planned (retries, reminders, digests) does not."""
    settings = Settings.load(influx_url="http://127.0.0.1:9", data_dir=tmp_path / "var", notify_attempts=2)
    store = NotificationStore.for_data_dir(settings.data_dir)
    sub = store.add_subscription(SubscriptionIn(town="vitre", channel="webhook", target=receiver.url("/ok"),
                                                digest=False))
    receiver.secrets["/ok"] = sub.secret
    did = store.add_delivery(sub.id, "digest", ms(T0), ms(T0), day="2026-07-15",
                             payload={"subject": "s", "text": "t", "json": {"type": "digest", "town": "vitre"}})

    async def go():
        async with InfluxClient(settings.influx_base_url, settings.influx_db, timeout=2) as c:
            d = Dispatcher.from_settings(c, settings)
            try:
                return await d.run(T0)
            finally:
                await d.close()

    report = asyncio.run(go())
    assert report.sent == 1 and store.delivery(did).status == "sent"
    got = receiver.at("/ok")
    assert len(got) == 1 and got[0]["verified"] and json.loads(got[0]["body"])["type"] == "digest"
