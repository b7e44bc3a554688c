"""Admin endpoints: bearer token, registry create/update/retire, recompute requests (published on
MQTT), dead letters."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.core.deadletters import DeadLetter, DeadLetterStore
from heatwatch.stack.embedded import free_port
from support.apps import with_api
from support.mqtt import subscribed
from support.wait import wait_until

TOKEN = "test-admin-token-0123456789-abcdefghijkl"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RECOMPUTE_TOPIC = "heatwatch/recompute"  # the contract with analytics, spelled out on purpose
SENSOR = {"id": "v-halles", "town": "vitre", "name": "Place des Halles", "latitude": 48.1241,
          "longitude": -1.2093, "site_class": "urban", "lcz": "LCZ 2", "height_m": 3.0}


def wait_for(got: list, n: int, timeout: float = 5.0) -> list:
    wait_until(lambda: len(got) >= n, timeout, f"{n} messages", interval=0.02)
    return got


def test_without_token_nothing_changes(client, api_settings, api_config, mosquitto):
    client.app.state.settings = api_settings.model_copy(update={"mqtt_url": mosquitto.url})
    with subscribed(mosquitto.url, RECOMPUTE_TOPIC) as published:
        _refused_everywhere(client)
        # A request with the token, published after the refused ones: once it has arrived, anything
        # the refused ones had published would have arrived before it.
        ok = client.post("/v1/admin/recompute", json={"from": "2024-07-01", "to": "2024-07-02"}, headers=AUTH)
        assert ok.status_code == 202, ok.text
        assert [json.loads(m.payload)["id"] for m in wait_for(published, 1)] == [ok.json()["id"]]
    # No token configured: admin is off altogether, whatever is sent.
    off = api_settings.model_copy(update={"admin_token": None})
    with TestClient(create_app(with_api(off, **api_config))) as c:
        r = c.post("/v1/admin/sensors", json=SENSOR, headers=AUTH)
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"


def _refused_everywhere(client: TestClient) -> None:
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 403),
                            ({"Authorization": f"Basic {TOKEN}"}, 401)):
        r = client.post("/v1/admin/sensors", json=SENSOR, headers=headers)
        assert r.status_code == status, r.text
        assert client.put("/v1/admin/sensors/v-halles", json=SENSOR, headers=headers).status_code == status
        assert client.delete("/v1/admin/sensors/v-halles", headers=headers).status_code == status
        assert client.get("/v1/admin/deadletters", headers=headers).status_code == status
        assert client.post("/v1/admin/recompute", json={"from": "2024-07-01", "to": "2024-07-02"},
                           headers=headers).status_code == status
    assert client.get("/v1/admin/sensors", headers={}).headers.get("www-authenticate", "").startswith("Bearer")
    assert client.get("/v1/sensors", params={"town": "vitre"}).json()["data"] == []


def test_registry_create_update_retire(client, seed):
    r = client.post("/v1/admin/sensors", json=SENSOR, headers=AUTH)
    assert r.status_code == 201, r.text
    assert client.post("/v1/admin/sensors", json=SENSOR, headers=AUTH).status_code == 409
    bad = client.post("/v1/admin/sensors", json=SENSOR | {"latitude": 123}, headers=AUTH)
    assert bad.status_code == 422 and "latitude" in bad.json()["error"]["message"]
    assert client.post("/v1/admin/sensors", json=SENSOR | {"id": "x2", "town": "paris"},
                       headers=AUTH).status_code == 404
    r = client.put("/v1/admin/sensors/v-halles", json=SENSOR | {"name": "Halles (mât)"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["name"] == "Halles (mât)"
    assert client.put("/v1/admin/sensors/other", json=SENSOR, headers=AUTH).status_code == 400

    now = int(time.time() * 1000)
    seed([f"reading,town=vitre,sensor=v-halles temperature=27.5,humidity=41.0 {now}",
          f"reading,town=vitre,sensor=v-ghost temperature=26.0,humidity=45.0 {now}"])
    listing = client.get("/v1/sensors", params={"town": "vitre"}).json()
    by_id = {s["id"]: s for s in listing["data"]}
    assert by_id["v-halles"]["status"] == "ok" and by_id["v-halles"]["latest"]["temperature"] == 27.5
    assert by_id["v-halles"]["lcz"] == "LCZ 2"
    assert by_id["v-ghost"]["status"] == "unregistered" and by_id["v-ghost"]["latitude"] is None
    gj = client.get("/v1/sensors", params={"town": "vitre", "format": "geojson"}).json()
    feature = next(f for f in gj["features"] if f["id"] == "v-halles")
    assert feature["geometry"] == {"type": "Point", "coordinates": [-1.2093, 48.1241]}
    assert next(f for f in gj["features"] if f["id"] == "v-ghost")["geometry"] is None
    latest_gj = client.get("/v1/latest", params={"town": "vitre", "format": "geojson"}).json()
    assert next(f for f in latest_gj["features"] if f["properties"]["sensor"] == "v-halles")["geometry"]

    r = client.delete("/v1/admin/sensors/v-halles", headers=AUTH)
    assert r.status_code == 200 and r.json()["retired"] is True
    assert client.delete("/v1/admin/sensors/nope", headers=AUTH).status_code == 404
    ids = {s["id"] for s in client.get("/v1/sensors", params={"town": "vitre"}).json()["data"]}
    assert "v-halles" not in ids
    retired = client.get("/v1/sensors", params={"town": "vitre", "include_retired": "true"}).json()["data"]
    assert next(s for s in retired if s["id"] == "v-halles")["status"] == "retired"
    everything = client.get("/v1/admin/sensors", headers=AUTH).json()["data"]
    assert [s["id"] for s in everything] == ["v-halles"]


def test_recompute_request_is_published_on_mqtt(client, api_settings, mosquitto):
    client.app.state.settings = api_settings.model_copy(update={"mqtt_url": mosquitto.url})
    with subscribed(mosquitto.url, RECOMPUTE_TOPIC) as published:
        r = client.post("/v1/admin/recompute", json={"from": "2024-07-01", "to": "2024-07-31", "town": "vitre"},
                        headers=AUTH)
        assert r.status_code == 202, r.text
        answer = r.json()
        assert answer["status"] == "queued" and answer["topic"] == RECOMPUTE_TOPIC and answer["id"]
        everywhere = client.post("/v1/admin/recompute", json={"from": "2024-07-05", "to": "2024-07-05"},
                                 headers=AUTH)
        assert everywhere.status_code == 202 and everywhere.json()["id"] != answer["id"]
        # Refused before anything is published.
        assert client.post("/v1/admin/recompute", json={"from": "2024-07-31", "to": "2024-07-01"},
                           headers=AUTH).status_code == 400
        assert client.post("/v1/admin/recompute", json={"from": "2024-07-01", "to": "2024-07-02", "town": "lille"},
                           headers=AUTH).status_code == 404
        assert client.post("/v1/admin/recompute", json={"from": "2000-01-01", "to": "2024-07-02"},
                           headers=AUTH).status_code == 400
        time.sleep(0.3)  # room for anything published by mistake to arrive
        messages = wait_for(published, 2)
    assert len(messages) == 2 and all(m.qos == 1 for m in messages)
    first, second = (json.loads(m.payload) for m in messages)
    assert first == {"id": answer["id"], "town": "vitre", "from": "2024-07-01", "to": "2024-07-31",
                     "requested_at": answer["requested_at"]}
    assert answer["requested_at"].endswith("Z")
    assert (second["id"], second["town"], second["from"], second["to"]) == (everywhere.json()["id"], None,
                                                                            "2024-07-05", "2024-07-05")
    assert not (api_settings.data_dir / "recompute").exists()  # the old file drop is gone


def test_recompute_with_broker_unreachable_is_503(client, api_settings):
    client.app.state.settings = api_settings.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{free_port()}"})
    r = client.post("/v1/admin/recompute", json={"from": "2024-07-01", "to": "2024-07-02"}, headers=AUTH)
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "broker_unavailable" and "MQTT broker" in error["message"]
    assert r.headers["retry-after"]


def test_deadletters_list_and_replay(client, api_settings, mosquitto):
    empty = client.get("/v1/admin/deadletters", headers=AUTH).json()
    assert empty["data"] == [] and empty["counts"] == {}
    store = DeadLetterStore(api_settings.deadletter_path)
    store.add_many([DeadLetter("heat/vitre/v1", b'{"temperature": 99}', "out_of_range", "temperature 99", 1),
                    DeadLetter("heat/vitre/v2", b"\xff\xfe", "bad_json", "not UTF-8", 2),
                    DeadLetter("heat/vitre/v3", b'{"temperature": 21.5}', "unknown_sensor", "", 3)])
    store.close()
    body = client.get("/v1/admin/deadletters", headers=AUTH, params={"limit": 2}).json()
    assert [x["reason"] for x in body["data"]] == ["out_of_range", "bad_json"]
    assert body["data"][1]["payload_text"] is None and body["data"][1]["payload_base64"] == "//4="
    assert body["counts"] == {"out_of_range": 1, "bad_json": 1, "unknown_sensor": 1}
    nxt = client.get("/v1/admin/deadletters", headers=AUTH,
                     params={"after_id": body["next_after_id"]}).json()["data"]
    assert [x["topic"] for x in nxt] == ["heat/vitre/v3"]

    with subscribed(mosquitto.url, "heat/vitre/+") as replayed:
        settings = api_settings.model_copy(update={"mqtt_url": mosquitto.url})
        client.app.state.settings = settings  # the broker of this test session
        r = client.post("/v1/admin/deadletters/replay", json={"ids": [nxt[0]["id"], 999]}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json() == {"replayed": [nxt[0]["id"]], "missing": [999], "failed": [], "truncated": [],
                            "more": False}
        deadline = time.monotonic() + 5
        while not replayed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [(m.topic, m.payload) for m in replayed] == [("heat/vitre/v3", b'{"temperature": 21.5}')]
    left = client.get("/v1/admin/deadletters", headers=AUTH).json()
    assert [x["reason"] for x in left["data"]] == ["out_of_range", "bad_json"]


def test_deadletters_per_reason_and_per_device_and_replay_by_selection(client, api_settings, mosquitto):
    store = DeadLetterStore(api_settings.deadletter_path)
    up = "v3/capteurs-vitre@ttn/devices/lht65-mairie/up"
    cs = "application/17c82e96/device/a84041000181c35a/event/up"
    store.add_many([
        DeadLetter(up, b'{"n": 1}', "unknown_profile", "lht65-mairie: the registry names device profile 'x'", 10),
        DeadLetter(up, b'{"n": 2}', "unknown_profile", "lht65-mairie: the registry names device profile 'x'", 20),
        DeadLetter(up, b'{"n": 3}', "no_measurement", "lht65-mairie: no decoded_payload", 30),
        DeadLetter(cs, b'{"n": 4}', "unknown_device", "device 'a84041000181c35a' ...", 40),
        DeadLetter("heat/saint-omer/vitre-centre-01", b'{"temperature": 21}', "town_mismatch",
                   "sensor 'vitre-centre-01' is registered in 'vitre'", 50),
        DeadLetter("(influx)", b"reading,sensor=so-3,town=saint-omer temperature=1 1", "influx_rejected", "x", 60),
    ])
    store.close()
    r = client.get("/v1/admin/deadletters/summary", headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 6 and body["devices"] == 4
    assert body["by_reason"] == {"unknown_profile": 2, "no_measurement": 1, "unknown_device": 1, "town_mismatch": 1,
                                 "influx_rejected": 1}
    first = body["by_device"][0]
    assert (first["network"], first["device"], first["application"], first["count"]) == \
        ("tts", "lht65-mairie", "capteurs-vitre", 3)
    assert first["reasons"] == {"unknown_profile": 2, "no_measurement": 1}
    assert first["last_detail"] == "lht65-mairie: no decoded_payload" and first["last_received"].endswith("Z")
    devices = {(d["network"], d["device"], d["town"]) for d in body["by_device"]}
    assert devices == {("tts", "lht65-mairie", None), ("chirpstack", "A84041000181C35A", None),
                       ("json", "vitre-centre-01", "saint-omer"), ("influx", "so-3", "saint-omer")}

    listed = client.get("/v1/admin/deadletters", headers=AUTH, params={"device": "a84041000181c35a"}).json()
    assert [x["topic"] for x in listed["data"]] == [cs] and listed["data"][0]["device"] == "A84041000181C35A"

    assert client.post("/v1/admin/deadletters/replay", json={}, headers=AUTH).status_code == 400
    assert client.post("/v1/admin/deadletters/replay", json={"ids": [1], "reason": "x"},
                       headers=AUTH).status_code == 400
    with subscribed(mosquitto.url, "v3/#") as replayed:
        client.app.state.settings = api_settings.model_copy(update={"mqtt_url": mosquitto.url})
        r = client.post("/v1/admin/deadletters/replay", json={"device": "lht65-mairie", "reason": "unknown_profile",
                                                              "limit": 1}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert len(r.json()["replayed"]) == 1 and r.json()["more"] is True
        r = client.post("/v1/admin/deadletters/replay", json={"device": "lht65-mairie", "reason": "unknown_profile"},
                        headers=AUTH)
        assert len(r.json()["replayed"]) == 1 and r.json()["more"] is False
        deadline = time.monotonic() + 5
        while len(replayed) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [m.payload for m in replayed] == [b'{"n": 1}', b'{"n": 2}']
    after = client.get("/v1/admin/deadletters/summary", headers=AUTH).json()
    assert after["by_reason"].get("unknown_profile") is None and after["total"] == 4


def test_registry_identity_and_town_rules_through_the_api(client):
    body = {"id": "vitre-lht65-09", "town": "vitre", "mqtt_identity": "a8-40-41-00-01-81-c3-5a",
            "device_profile": "dragino-lht65"}
    r = client.post("/v1/admin/sensors", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["mqtt_identity"] == "A84041000181C35A"
    other = body | {"id": "vitre-lht65-10", "mqtt_identity": "eui-a84041000181c35a"}
    clash = client.post("/v1/admin/sensors", json=other, headers=AUTH)
    assert clash.status_code == 400 and "already belongs" in clash.json()["error"]["message"]
    for bad in ("saint-omer", "alerts", "live"):
        r = client.post("/v1/admin/sensors", json={"id": bad, "town": "vitre"}, headers=AUTH)
        assert r.status_code in (400, 422) and bad in r.json()["error"]["message"], (bad, r.text)
