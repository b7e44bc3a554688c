"""/v1/notifications: subscriptions for technicians (admin token), acknowledgements of open alerts (checked
against InfluxDB), deliveries and their dead letters. The sending itself: tests/analytics/test_notify.py."""

from __future__ import annotations

import time

from heatwatch.core.notifications import NotificationStore, secret_key

from .conftest import ADMIN_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EMAIL = {"town": "vitre", "kinds": ["temperature", "battery"], "channel": "email", "target": "astreinte@vitre.example",
         "name": "Astreinte services techniques", "quiet_start": "22:00", "quiet_end": "07:00"}
HOOK = {"town": "vitre", "channel": "webhook", "target": "https://hooks.vitre.example/heatwatch", "digest": False}


def test_subscriptions_need_the_admin_token_and_are_checked(client):
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 403)):
        assert client.get("/v1/notifications/subscriptions", headers=headers).status_code == status
        assert client.post("/v1/notifications/subscriptions", json=EMAIL, headers=headers).status_code == status
        assert client.post("/v1/notifications/acks", json={}, headers=headers).status_code == status
        assert client.get("/v1/notifications/deliveries", headers=headers).status_code == status

    bad = [({**EMAIL, "target": "not an address"}, "e-mail address"), ({**EMAIL, "kinds": ["heat"]}, "unknown"),
           ({**EMAIL, "quiet_start": "25:00"}, "HH:MM"), ({**EMAIL, "quiet_end": None}, "both"),
           ({**HOOK, "target": "ftp://x"}, "URL"), ({**HOOK, "secret": "short"}, "secret"),
           ({**EMAIL, "immediate": False, "digest": False}, "sends something"), ({**EMAIL, "colour": 1}, "colour")]
    for body, words in bad:
        r = client.post("/v1/notifications/subscriptions", json=body, headers=AUTH)
        assert 400 <= r.status_code < 500 and words in r.text, (body, r.status_code, r.text)
    assert client.post("/v1/notifications/subscriptions", json={**EMAIL, "town": "paris"},
                       headers=AUTH).status_code == 404

    r = client.post("/v1/notifications/subscriptions", json=EMAIL, headers=AUTH)
    assert r.status_code == 201, r.text
    mail = r.json()
    assert mail["secret"] is None and mail["kinds"] == ["battery", "temperature"] and mail["lang"] == "fr"
    r = client.post("/v1/notifications/subscriptions", json=HOOK, headers=AUTH)
    hook = r.json()
    # The generated secret is shown in full once, and is 32 random bytes in Standard Webhooks' form.
    assert hook["secret"].startswith("whsec_") and len(secret_key(hook["secret"])) == 32
    listed = client.get("/v1/notifications/subscriptions", params={"town": "vitre"}, headers=AUTH).json()["data"]
    assert [s["id"] for s in listed] == [mail["id"], hook["id"]]
    assert listed[1]["secret"].endswith("…") and len(listed[1]["secret"]) < 20

    # Replacing keeps the webhook's secret (receivers verify with it); deleting removes it.
    r = client.put(f"/v1/notifications/subscriptions/{hook['id']}", json={**HOOK, "kinds": ["offline"]}, headers=AUTH)
    assert r.status_code == 200 and r.json()["kinds"] == ["offline"]
    store = NotificationStore.for_data_dir(client.app.state.settings.data_dir)
    assert store.subscription(hook["id"]).secret == hook["secret"]
    # A test message, queued for analytics' next run (tests/analytics/test_notify.py sends one).
    r = client.post(f"/v1/notifications/subscriptions/{mail['id']}/test", headers=AUTH)
    assert r.status_code == 202 and r.json()["status"] == "pending" and r.json()["reason"] == "test"
    assert r.json()["subject"] == "[heatwatch] Vitré — message d'essai"
    assert client.post("/v1/notifications/subscriptions/999/test", headers=AUTH).status_code == 404
    assert client.delete(f"/v1/notifications/subscriptions/{hook['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/v1/notifications/subscriptions/{hook['id']}", headers=AUTH).status_code == 404
    assert client.get("/v1/notifications/subscriptions", params={"colour": "x"}, headers=AUTH).status_code == 400


def test_an_open_alert_is_acknowledged_once_with_who_and_when(client, seed):
    started = int(time.time() * 1000) - 3600_000
    seed([f'alert,town=vitre,sensor=v-centre,kind=temperature value=36.2,threshold=35.0,message="hot",'
          f'state="open",started={started}i {started}',
          f'alert,town=vitre,kind=offline value=70.0,threshold=60.0,message="town silent",state="open",'
          f'started={started}i {started}'], rp="agg")
    body = {"town": "vitre", "sensor": "v-centre", "kind": "temperature", "started": started, "by": "Camille Martin",
            "note": "pris en charge"}
    before = int(time.time() * 1000)
    r = client.post("/v1/notifications/acks", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    ack = r.json()
    assert ack["by"] == "Camille Martin" and ack["note"] == "pris en charge"
    at_ms = int(time.mktime(time.strptime(ack["at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone) * 1000
    assert before - 1000 <= at_ms <= int(time.time() * 1000) + 1000
    # A second acknowledgement does not overwrite the first: 200 with the one that stands.
    again = client.post("/v1/notifications/acks", json={**body, "by": "Someone Else"}, headers=AUTH)
    assert again.status_code == 200 and again.json()["by"] == "Camille Martin"
    # The town-level alert, with the ISO start the live stream gives.
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started // 1000)) + f".{started % 1000:03d}Z"
    r = client.post("/v1/notifications/acks", json={**body, "sensor": None, "kind": "offline", "started": iso},
                    headers=AUTH)
    assert r.status_code == 201, r.text
    listed = client.get("/v1/notifications/acks", params={"town": "vitre"}, headers=AUTH).json()["data"]
    assert {(a["sensor"], a["kind"], a["by"]) for a in listed} == {("v-centre", "temperature", "Camille Martin"),
                                                                    (None, "offline", "Camille Martin")}
    # No such open alert (another start, another sensor, a closed one): 404; nonsense: 4xx, never 500.
    for wrong in ({"started": started + 1}, {"sensor": "v-parc"}, {"kind": "battery"}, {"started": 2**62}):
        assert client.post("/v1/notifications/acks", json={**body, **wrong}, headers=AUTH).status_code == 404
    for wrong in ({"kind": "no such kind"}, {"started": "yesterday"}, {"by": ""}, {"by": "   "}, {"sensor": "a b"}):
        r = client.post("/v1/notifications/acks", json={**body, **wrong}, headers=AUTH)
        assert 400 <= r.status_code < 500 and r.status_code != 404, (wrong, r.text)


def test_dead_deliveries_are_listed_and_sent_again_on_request(client):
    store = NotificationStore.for_data_dir(client.app.state.settings.data_dir)
    sub = client.post("/v1/notifications/subscriptions", json=HOOK, headers=AUTH).json()
    did = store.add_delivery(sub["id"], "digest", 1_000, 1_000, day="2026-07-01",
                             payload={"subject": "Synthèse", "text": "…", "json": {}})
    store.update_delivery(did, status="dead", attempts=6, last_error="POST https://hooks…: HTTP 503")
    dead = client.get("/v1/notifications/deliveries", params={"status": "dead"}, headers=AUTH).json()["data"]
    assert [(d["id"], d["attempts"], d["subject"]) for d in dead] == [(did, 6, "Synthèse")]
    assert "HTTP 503" in dead[0]["last_error"]
    r = client.post(f"/v1/notifications/deliveries/{did}/retry", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "pending" and r.json()["attempts"] == 0
    assert client.post(f"/v1/notifications/deliveries/{did}/retry", headers=AUTH).status_code == 409
    assert client.post("/v1/notifications/deliveries/999/retry", headers=AUTH).status_code == 404
    assert client.get("/v1/notifications/deliveries", params={"status": "lost"}, headers=AUTH).status_code == 422
