"""InfluxDB users per service, with authentication on (the embedded ``up`` set-up and ``heatwatch db init``):
each service can do what it does and is refused what its role forbids; the real services run with them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from heatwatch.core.errors import InfluxAuthError
from heatwatch.core.influx import InfluxClient
from heatwatch.core.measurements import AGG_RP, RAW_RP
from heatwatch.stack.embedded import Influxd
from heatwatch.stack.influxusers import ROLES, ServiceUser, ensure_admin

DB = "heatwatch"
ADMIN = ("admin", "admin-password-for-the-test")
USERS = [ServiceUser(role, f"heatwatch_{role}", f"{role}-password-xyz") for role in ROLES]
T0 = 1_720_000_000_000


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """influxd with authentication on and no user, set up by the real ``heatwatch db init`` (twice: idempotent)."""
    tmp = tmp_path_factory.mktemp("influxd-auth")
    server = Influxd(tmp / "influxd", auth=True).start()
    (tmp / "admin").write_text(ADMIN[1] + "\n")
    args = []
    for u in USERS:
        (tmp / u.role).write_text(u.password)
        args += [f"--{u.role}-user", u.name, f"--{u.role}-password-file", str(tmp / u.role)]
    env = {**os.environ, "HEATWATCH_INFLUX_URL": server.url, "HEATWATCH_INFLUX_DB": DB,
           "HEATWATCH_INFLUX_USER": ADMIN[0], "HEATWATCH_INFLUX_PASSWORD_FILE": str(tmp / "admin"),
           "HEATWATCH_DATA_DIR": str(tmp / "var")}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "heatwatch", "db", "init", *args, "--wait", "30"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "heatwatch_ingest (ingest)" in done.stdout
        assert ADMIN[1] not in done.stdout + done.stderr
    # A wrong admin password: refused, exit 1, the password not shown.
    (tmp / "wrong").write_text("not-the-password")
    bad = subprocess.run([sys.executable, "-m", "heatwatch", "db", "init", *args],
                         env=env | {"HEATWATCH_INFLUX_PASSWORD_FILE": str(tmp / "wrong")}, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1 and "refused" in bad.stderr and "not-the-password" not in bad.stderr

    async def seed() -> None:
        await ensure_admin(server.url, *ADMIN)  # a second `up`: the admin exists, its password checks
        async with InfluxClient(server.url, DB, username=ADMIN[0], password=ADMIN[1]) as admin:
            await admin.write_lines([f"reading,town=vitre,sensor=a temperature=21.5 {T0}"], rp=RAW_RP)
            await admin.write_lines([f"daily,town=vitre,sensor=a tn=15.0 {T0}"], rp=AGG_RP)

    asyncio.run(seed())
    yield server
    server.stop()


def client(server: Influxd, role: str) -> InfluxClient:
    user = next(u for u in USERS if u.role == role)
    return InfluxClient(server.url, DB, username=user.name, password=user.password, timeout=10)


async def outcome(coro) -> str:  # type: ignore[no-untyped-def]
    try:
        await coro
    except InfluxAuthError:
        return "refused"
    return "ok"


def test_nobody_gets_in_without_credentials(secured: Influxd) -> None:
    r = httpx.post(f"{secured.url}/query", data={"q": f'SELECT * FROM "{DB}"."raw"."reading"'})
    assert r.status_code == 401
    r = httpx.post(f"{secured.url}/write", params={"db": DB}, content=b"reading,town=vitre,sensor=x temperature=1 1")
    assert r.status_code == 401


@pytest.mark.parametrize("role, expected", [
    # what each statement is:  write raw, read raw, write agg, read agg, delete agg, delete raw, admin statement
    ("ingest", ["ok", "refused", "refused", "refused", "refused", "ok", "refused"]),
    # analytics may DELETE raw readings (a contributor's withdrawal), hence WRITE there too (no DELETE-only grant)
    ("analytics", ["ok", "ok", "ok", "ok", "ok", "ok", "refused"]),
    ("api", ["refused", "ok", "refused", "ok", "refused", "refused", "refused"]),
])
def test_each_service_is_refused_what_its_role_forbids(secured: Influxd, role: str, expected: list[str]) -> None:
    async def go() -> list[str]:
        async with client(secured, role) as c:
            raw, agg = c.qualified("reading", RAW_RP), c.qualified("daily", AGG_RP)
            return [
                await outcome(c.write_lines([f"reading,town=vitre,sensor={role} temperature=20.0 {T0 + 1}"],
                                            rp=RAW_RP)),
                await outcome(c.query_records(f"SELECT * FROM {raw} WHERE time >= 0 LIMIT 1")),
                await outcome(c.write_lines([f"daily,town=vitre,sensor={role} tn=1.0 {T0 + 1}"], rp=AGG_RP)),
                await outcome(c.query_records(f"SELECT * FROM {agg} WHERE time >= 0 LIMIT 1")),
                # A recompute deletes its range first (analytics); nobody else may touch published aggregates.
                await outcome(c.query(f'DELETE FROM "daily" WHERE "sensor" = \'{role}\'', epoch=None,
                                      db=c.agg_database)),
                # InfluxDB 1.x's WRITE includes DELETE in that database: ingest could delete raw readings.
                await outcome(c.query(f'DELETE FROM "reading" WHERE "sensor" = \'{role}\'', epoch=None)),
                await outcome(c.command(f'CREATE DATABASE "{role}_own"')),
            ]

    assert asyncio.run(go()) == expected
    # The published aggregate of the set-up is still there whatever the others tried.
    async def published() -> list[dict]:
        async with client(secured, "api") as c:
            return await c.query_records(f'SELECT "tn" FROM {c.qualified("daily", AGG_RP)} WHERE "sensor" = \'a\'')

    assert [r["tn"] for r in asyncio.run(published())] == [15.0]


def test_a_service_user_does_not_need_to_create_anything(secured: Influxd) -> None:
    # The services call setup() at start; with their own users it is refused and skipped, not fatal.
    async def go() -> list[bool]:
        out = []
        for role in ROLES:
            async with client(secured, role) as c:
                out.append(await c.setup("30d"))
        return out

    assert asyncio.run(go()) == [False, False, False]


def test_the_api_reads_with_its_user_and_the_ingester_writes_with_its_own(secured: Influxd, tmp_path: Path,
                                                                          mosquitto) -> None:
    from fastapi.testclient import TestClient

    from heatwatch.api.app import create_app
    from heatwatch.core.settings import Settings
    from support.apps import NO_LIMITS, with_api

    api_user = next(u for u in USERS if u.role == "api")
    settings = Settings.load(influx_url=secured.url, influx_db=DB, influx_user=api_user.name,
                             influx_password=api_user.password, data_dir=tmp_path / "var", mqtt_url=mosquitto.url)
    with TestClient(create_app(with_api(settings, **NO_LIMITS))) as c:
        r = c.get("/v1/daily", params={"town": "vitre", "from": "2024-07-01", "to": "2024-07-10"})
        assert r.status_code == 200, r.text
        assert [row["tn"] for row in r.json()["data"] if row["sensor"] == "a"] == [15.0]
        assert c.get("/readyz").json() == {"status": "ready"}

    # The real ingester, as its own user: it stores what the broker hands it.
    from heatwatch.stack.children import ServiceProcess
    from support.mqtt import publish_all

    ingest_user = next(u for u in USERS if u.role == "ingest")
    secret = tmp_path / "influx-ingest"
    secret.write_text(ingest_user.password)
    env = {"HEATWATCH_MQTT_URL": mosquitto.url, "HEATWATCH_INFLUX_URL": secured.url, "HEATWATCH_INFLUX_DB": DB,
           "HEATWATCH_INFLUX_USER": ingest_user.name, "HEATWATCH_INFLUX_PASSWORD_FILE": str(secret),
           "HEATWATCH_DATA_DIR": str(tmp_path / "ingest-var"), "HEATWATCH_MQTT_CLIENT_ID": "least-privilege-ingest",
           "HEATWATCH_BATCH_INTERVAL_S": "0.1"}
    ingest = ServiceProcess(["ingest"], env, tmp_path / "ingest.log").start(ready_marker="mqtt.subscribed", timeout=60)
    try:
        now = int(time.time() * 1000) // 1000 * 1000
        publish_all(mosquitto.url, [("heat/vitre/lp-probe",
                                     json.dumps({"ts": now, "temperature": 22.25, "humidity": 50.0}).encode())])

        async def stored() -> list[dict]:
            async with client(secured, "analytics") as c:
                return await c.query_records(f'SELECT "temperature" FROM {c.qualified("reading", RAW_RP)} '
                                             f"WHERE \"sensor\" = 'lp-probe' AND time >= 0")

        deadline = time.monotonic() + 60
        while not (rows := asyncio.run(stored())) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [r["temperature"] for r in rows] == [22.25]
        assert "influx.write_failed_spooling" not in ingest.log_text()  # written at once, as its own user
    finally:
        ingest.stop()
