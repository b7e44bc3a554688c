"""Real devices end to end, on the real broker and database: the replay of a Dragino LHT65's uplink after the
town adds the device profile its registry entry names, and a ChirpStack uplink found by its DevEUI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import orjson
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.core.model import Sensor, SiteClass
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings
from heatwatch.stack.children import ServiceProcess
from support.apps import with_api
from support.faults import deadletter_counts, wait_count
from support.influx import count_readings
from support.mqtt import publish_all
from support.wait import wait_until

DATA = Path(__file__).parent / "decoders" / "data"
TOKEN = "e2e-admin-token-0123456789-abcdefghij"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}456789Z"


def stored(influx_url: str, db: str) -> list[dict]:
    r = httpx.post(f"{influx_url}/query", data={"db": db, "epoch": "ms", "q": 'SELECT * FROM "raw"."reading"'})
    series = r.json()["results"][0].get("series") or []
    return [dict(zip(s["columns"], v, strict=True)) for s in series for v in s["values"]]


def registry(env: dict[str, str]) -> Registry:
    return Registry(Path(env["HEATWATCH_DATA_DIR"]) / "registry.sqlite", towns={"vitre", "saint-omer"})


def test_lht65_dead_lettered_until_its_profile_is_added_then_stored_by_replay(
        ingest_env, mosquitto, influxd, db_name, tmp_path):
    # Vitré's LHT65 units measure the street with the external DS18B20 probe in a radiation shield, so the
    # registry names the town's own profile "dragino-lht65-ds18b20" — which nobody has written yet.
    profiles = tmp_path / "profiles.toml"
    profiles.write_text("# Vitré's own device profiles\n", encoding="utf-8")
    env = ingest_env | {"HEATWATCH_DEVICE_PROFILES_FILE": str(profiles)}
    with registry(env) as reg:
        reg.upsert(Sensor(id="vitre-gare-03", town="vitre", latitude=48.1236, longitude=-1.2096,
                          site_class=SiteClass.urban, device_profile="dragino-lht65-ds18b20",
                          mqtt_identity="A8:40:41:00:01:81:C3:5A"))
    ingest = ServiceProcess(["ingest"], env, tmp_path / "ingest.log", name="ingest").start(
        ready_marker="mqtt.subscribed")
    try:
        # The uplink as TTS publishes it with Dragino's stock formatter (numbers as strings).
        case = json.loads((DATA / "tts-dragino-lht65-strings.json").read_text(encoding="utf-8"))
        now = int(time.time() * 1000) - 60_000
        msg = case["message"]
        msg["uplink_message"]["received_at"] = iso(now)
        msg["received_at"] = iso(now + 100)
        assert publish_all(mosquitto.url, [(case["topic"], orjson.dumps(msg))]) == 1
        data_dir = Path(env["HEATWATCH_DATA_DIR"])
        wait_until(lambda: deadletter_counts(data_dir) == {"unknown_profile": 1}, 60, "the unknown_profile dead letter")
        assert count_readings(influxd.url, db_name) == 0

        settings = Settings.load(mqtt_url=mosquitto.url, influx_url=influxd.url, influx_db=db_name,
                                 data_dir=data_dir, admin_token=TOKEN)
        with TestClient(create_app(with_api(settings, rate_limit_per_s=0))) as api:
            summary = api.get("/v1/admin/deadletters/summary", headers=AUTH).json()
            [device] = summary["by_device"]
            assert (device["network"], device["device"], device["reasons"]) == \
                ("tts", "lht65-mairie", {"unknown_profile": 1})
            assert "dragino-lht65-ds18b20" in device["last_detail"]

            # The town adds the profile: no release, no restart.
            profiles.write_text(
                '[dragino-lht65-ds18b20]\n'
                'description = "LHT65 with the DS18B20 probe in a radiation shield: air temperature from the probe"\n'
                'temperature = "TempC_DS"\nhumidity = "Hum_SHT"\nbattery = { field = "BatV", unit = "V" }\n',
                encoding="utf-8")
            ingest.wait_for("profiles.reloaded", timeout=30)

            r = api.post("/v1/admin/deadletters/replay", json={"device": "lht65-mairie", "reason": "unknown_profile"},
                         headers=AUTH)
            assert r.status_code == 200, r.text
            assert len(r.json()["replayed"]) == 1
            assert wait_count(influxd.url, db_name, 1) == 1
            assert api.get("/v1/admin/deadletters/summary", headers=AUTH).json()["total"] == 0
        [row] = stored(influxd.url, db_name)
        assert (row["town"], row["sensor"], row["time"]) == ("vitre", "vitre-gare-03", now)
        assert (row["temperature"], row["humidity"], row["battery_v"], row["source"]) == (27.81, 88.6, 3.062, "tts")
        assert deadletter_counts(data_dir) == {}
    finally:
        ingest.stop()


def test_chirpstack_uplink_by_deveui_and_town_binding(ingest_env, mosquitto, influxd, db_name, tmp_path):
    with registry(ingest_env) as reg:
        reg.upsert(Sensor(id="so-em300-02", town="saint-omer", mqtt_identity="24e124136b502217",
                          device_profile="milesight-em300-th"))
        reg.upsert(Sensor(id="vitre-centre-01", town="vitre"))
    ingest = ServiceProcess(["ingest"], ingest_env, tmp_path / "ingest.log", name="ingest").start(
        ready_marker="mqtt.subscribed")
    try:
        _chirpstack_and_town_binding(ingest_env, mosquitto, influxd, db_name)
    finally:
        ingest.stop()


def _chirpstack_and_town_binding(ingest_env, mosquitto, influxd, db_name) -> None:
    case = json.loads((DATA / "chirpstack-v4-milesight-em300-th.json").read_text(encoding="utf-8"))
    msg = case["message"]
    now = int(time.time() * 1000) - 30_000
    msg["time"] = iso(now).replace("Z", "+00:00")
    msg["deviceInfo"].update(deviceName="em300 rue de Dunkerque", applicationName="Réseau LoRa mairie")
    wrong_town = json.dumps({"ts": now, "temperature": 22.0, "humidity": 50}).encode()
    assert publish_all(mosquitto.url, [(case["topic"], orjson.dumps(msg)),
                                       ("heat/saint-omer/vitre-centre-01", wrong_town),
                                       ("heat/vitre/vitre-centre-01", wrong_town)]) == 3
    assert wait_count(influxd.url, db_name, 2) == 2
    rows = {(r["town"], r["sensor"]): r for r in stored(influxd.url, db_name)}
    assert set(rows) == {("saint-omer", "so-em300-02"), ("vitre", "vitre-centre-01")}
    em300 = rows[("saint-omer", "so-em300-02")]
    assert (em300["temperature"], em300["humidity"], em300["battery_pct"], em300["rssi"], em300["source"],
            em300["time"]) == (20.0, 30.0, 50.0, -101.0, "chirpstack", now)
    wait_until(lambda: deadletter_counts(Path(ingest_env["HEATWATCH_DATA_DIR"])) == {"town_mismatch": 1}, 30,
               "the town_mismatch dead letter")
