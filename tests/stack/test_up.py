"""``heatwatch up [--demo]`` end to end (issue 2, item 5): the real command, as a user runs it.

The demo starts mosquitto and influxd under the data folder, then ingest, the api, analytics and the
simulator (two past days, then live); it says where the API listens; Ctrl-C stops every process it
started and exits 0; a second ``up`` on the same folder serves what the first one stored.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from heatwatch.core.contributors import CHARTER_VERSION
from heatwatch.core.registry import Registry
from heatwatch.stack.embedded import free_port
from stack.upstack import alive, children_of, stack_processes, wait_ready
from support.wait import wait_until

TOWN = "vitre"
PROBE = "vitre-centre-01"  # an example site publishing native JSON


def get(url: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, timeout=10)


def placed_sensors(data_dir: Path, town: str) -> set[str]:
    """The active, placed sensors the stack's own registry holds for ``town``."""
    with Registry(data_dir / "registry.sqlite") as reg:
        return {s.id for s in reg.list(town) if s.latitude is not None and s.longitude is not None}


def latest(url: str, town: str) -> dict[str, dict[str, Any]]:
    r = get(url, "/v1/latest", town=town)
    assert r.status_code == 200, r.text
    return {row["sensor"]: row for row in r.json()["data"]}


def when(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["time"].replace("Z", "+00:00"))


def wait_fresh_latest(url: str, sensors: set[str], timeout: float = 90) -> dict[str, dict[str, Any]]:
    """/v1/latest once every sensor of ``sensors`` has a reading of the last quarter of an hour (the demo
    sends one every 5 minutes per sensor, after replaying the two past days)."""
    rows: dict[str, dict[str, Any]] = {}

    def fresh() -> dict[str, dict[str, Any]] | None:
        nonlocal rows
        rows = latest(url, TOWN)
        recent = datetime.now(UTC) - timedelta(minutes=15)
        return rows if sensors <= {s for s, row in rows.items() if when(row) >= recent} else None

    try:
        return wait_until(fresh, timeout, "a recent reading of every example sensor", interval=1)
    except TimeoutError:
        stale = {s: rows.get(s, {}).get("time") for s in sorted(sensors)}
        pytest.fail(f"not every example sensor has a recent reading: {stale}")


def readings_of(url: str, sensor: str) -> dict[str, Any]:
    """The oldest stored reading of ``sensor`` over the last three days, with the total count."""
    start = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = get(url, "/v1/readings", town=TOWN, sensor=sensor, **{"from": start}, limit=1, count="true")
    assert r.status_code == 200, r.text
    body = r.json()
    return {"count": body["meta"]["count"], "oldest": body["data"][0] if body["data"] else None}


def resident_publishes(url: str, mqtt_url: str) -> None:
    """A resident registered on the stack publishes with the MQTT account of the registration answer: ``up`` puts
    it into its broker's password file by itself (docs/citizens.md); the reading is stored, provisional."""
    r = httpx.post(f"{url}/v1/contribute", timeout=10, json={
        "town": TOWN, "pseudonym": "Jo", "contact": "jo@exemple.fr", "device_model": "DHT22", "latitude": 48.1241,
        "longitude": -1.2093, "height_m": 2.0, "setting": "garden", "shade": "shade", "licence": "etalab-2.0",
        "consent": True, "charter_version": CHARTER_VERSION})
    assert r.status_code == 201, r.text
    joined = r.json()
    account, port = joined["mqtt"], int(mqtt_url.rsplit(":", 1)[1])

    def published() -> bool:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.username_pw_set(account["username"], account["password"])
        try:
            if c.connect("127.0.0.1", port) != 0:
                return False
            c.loop_start()
            info = c.publish(account["topic"], json.dumps({"ts": int(time.time()), "temperature": 23.0}), qos=1)
            info.wait_for_publish(5)
            return info.is_published()
        except (OSError, RuntimeError, ValueError):
            return False  # refused until up's next sync has reloaded the broker
        finally:
            c.loop_stop()
            c.disconnect()

    wait_until(published, 30, "the resident's MQTT account to work on up's broker", interval=0.5)
    row = wait_until(lambda: latest(url, TOWN).get(joined["sensor"]), 30, "the resident's reading in latest")
    assert (row["network"], row["trust"]) == ("citizen", "provisional")


def assert_all_gone(data_dir: Path, children: dict[int, str]) -> None:
    left = {pid: cmd for pid, cmd in children.items() if alive(pid, cmd)}
    assert left == {}, f"children of heatwatch up still running: {left}"
    others = stack_processes(data_dir)
    assert others == {}, f"processes still using {data_dir}: {others}"


def test_demo_then_ctrl_c_then_second_up_on_the_same_data(heatwatch_up, tmp_path):
    data = (tmp_path / "var").resolve()
    port = free_port()

    # First run: the demo. -------------------------------------------------------------------------
    up = heatwatch_up(data, ["--demo"], {"HEATWATCH_API_PORT": str(port)})
    url, mqtt = up.wait_up()
    assert url == f"http://127.0.0.1:{port}"  # where the API listens: the port asked for
    assert re.fullmatch(r"mqtt://127\.0\.0\.1:\d+", mqtt)
    assert wait_ready(url).json()

    # Every child runs and belongs to this data folder: brokers by their config, services by their env.
    children = children_of(up.pid)
    commands = " | ".join(children.values())
    for what in ("mosquitto", "influxd", "heatwatch ingest", "heatwatch api", "heatwatch analytics",
                 "heatwatch simulate"):
        assert what in commands, f"no {what} among the children of up: {children}"
    assert set(children) <= set(stack_processes(data))
    assert (data / "mosquitto").is_dir() and (data / "influxdb").is_dir()

    # The simulator's readings arrive: every example site of the town, just now, after two past days.
    sensors = placed_sensors(data, TOWN)
    assert PROBE in sensors and len(sensors) >= 10
    first = wait_fresh_latest(url, sensors)
    assert all(first[s]["status"] == "ok" for s in sensors), {s: first[s]["status"] for s in sensors}
    history = readings_of(url, PROBE)
    age = datetime.now(UTC) - when(history["oldest"])
    assert timedelta(hours=47) <= age <= timedelta(hours=49), history["oldest"]
    assert history["count"] >= 2 * 24 * 12 - 12  # a reading every 5 minutes

    # Ctrl-C: exit 0, nothing left running.
    assert up.interrupt() == 0, up.output()
    assert "up.stopped" in up.stderr
    assert_all_gone(data, children)

    # Second run on the same folder, without the simulator: what the first one stored is served. ------
    again = heatwatch_up(data, [], {"HEATWATCH_API_PORT": str(free_port())})
    url2, mqtt2 = again.wait_up()
    wait_ready(url2)
    second = latest(url2, TOWN)
    assert set(second) >= sensors
    for s in sensors:
        # Equal, or a reading that reached the first run between our look and the Ctrl-C.
        assert when(second[s]) >= when(first[s]), (s, first[s], second[s])
        if second[s]["time"] == first[s]["time"]:
            assert second[s]["temperature"] == first[s]["temperature"]
    assert placed_sensors(data, TOWN) == sensors  # the registry too
    kept = readings_of(url2, PROBE)
    assert kept["oldest"] == history["oldest"]
    assert kept["count"] >= history["count"]
    resident_publishes(url2, mqtt2)
    children = children_of(again.pid)
    assert again.interrupt() == 0, again.output()
    assert_all_gone(data, children)


def test_ctrl_c_during_start_up_leaves_nothing_running(heatwatch_up, tmp_path):
    """Interrupted while it waits for the ingester, ``up`` still stops what it had started.

    A broker that never answers keeps the start-up waiting for the ingester's subscription, with the
    embedded influxd and the ingester already running: that is when the Ctrl-C comes.
    """
    data = (tmp_path / "var").resolve()
    nobody = free_port()  # nothing listens there
    up = heatwatch_up(data, [], {"HEATWATCH_MQTT_URL": f"mqtt://127.0.0.1:{nobody}",
                                 "HEATWATCH_API_PORT": str(free_port())})
    deadline = time.monotonic() + 60
    children: dict[int, str] = {}
    while time.monotonic() < deadline:
        children = children_of(up.pid)
        cmds = " ".join(children.values())
        if "influxd" in cmds and "heatwatch ingest" in cmds:
            break
        assert up.proc.poll() is None, up.output()
        time.sleep(0.1)
    else:
        pytest.fail(f"influxd and the ingester never both ran under up: {children}\n{up.output()}")
    assert "heatwatch is up" not in up.stdout  # still starting

    code = up.interrupt()
    assert_all_gone(data, children)
    assert code == 130, up.output()  # interrupted, as any command stopped by Ctrl-C
    assert "up.stopped" in up.stderr
