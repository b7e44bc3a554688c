"""``heatwatch up --demo`` end to end, as a newcomer runs it (issue 19, item 1; issue 2, item 5).

The real command in a child process: it starts mosquitto and influxd under the data folder, the services, loads the
last summer with its heat wave for both towns, analyses it and goes on live. Within two minutes of the start it
prints where to look; then every card of the dashboard (in Debian's Chromium, tiles blocked as offline) shows that
summer or the live readings, the canicule episodes, the heat-island map, the rankings and ``heatwatch report`` have
it, no alert has opened for what was loaded, and the page has no serious or critical accessibility violation. Ctrl-C
stops every process; a second ``up`` on the same data folder serves what the first one stored, and a resident who
registers on it publishes with the account it gave them.

One test, on purpose: the demo is the heaviest thing the suite starts.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from heatwatch.core.contributors import CHARTER_VERSION
from heatwatch.core.registry import Registry
from heatwatch.stack.demo import DemoSummer
from heatwatch.stack.embedded import free_port
from stack.upstack import alive, children_of, stack_processes, wait_ready
from support.browser import MARKS, TILE_HOST, launch, marker_values
from support.wait import wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "demo"
AXE = Path(__file__).resolve().parents[2] / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
TOWN = "vitre"
PROBE = "vitre-centre-01"  # an example site publishing native JSON
PROMISE_S = 120  # the "within two minutes of start"
READY_LINE = re.compile(r"demo: the summer of (\d{4}) is loaded and analysed")
REPORT_LINE = re.compile(r"seasonal report\s+(.+)$", re.M)

pytestmark = MARKS


def get(url: str, path: str, **params: Any) -> Any:
    r = httpx.get(f"{url}{path}", params=params, timeout=30)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    return r


def placed_sensors(data_dir: Path, town: str) -> set[str]:
    with Registry(data_dir / "registry.sqlite") as reg:
        return {s.id for s in reg.list(town) if s.latitude is not None and s.longitude is not None}


def latest(url: str, town: str) -> dict[str, dict[str, Any]]:
    return {row["sensor"]: row for row in get(url, "/v1/latest", town=town).json()["data"]}


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def readings_of(url: str, sensor: str, start: datetime, end: datetime) -> dict[str, Any]:
    body = get(url, "/v1/readings", town=TOWN, sensor=sensor, limit=1, count="true",
               **{"from": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "to": end.strftime("%Y-%m-%dT%H:%M:%SZ")}).json()
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


def run_axe(pg: Any) -> list[dict[str, Any]]:
    pg.add_script_tag(path=str(AXE))
    found = pg.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                        ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target)}))")
    return [v for v in found if v["impact"] in ("serious", "critical")]


def check_dashboard(url: str, summer: int, sensors: set[str]) -> None:
    """Every card of the page, in Chromium: live map and list, no alert, the 24 h chart, the summer's indices,
    heat-island map and ranking; no console error, no serious accessibility violation."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            pg = browser.new_context(viewport={"width": 1366, "height": 900}, locale="fr-FR").new_page()
            pg.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error"
                  and TILE_HOST not in (m.location or {}).get("url", "") else None)
            pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            pg.route(f"https://{TILE_HOST}/**", lambda route: route.abort("internetdisconnected"))
            pg.goto(f"{url}/#{TOWN}")
            pg.wait_for_selector(f"body[data-ready='{TOWN}']", timeout=30_000)
            # Map and list: every site with a live value.
            values = marker_values(pg)
            assert set(values) == sensors and all(values.values()), values
            # A resident's sensor is marked as such (dotted, its trust in its label), the town's are official.
            trust = {k: m["trust"] for k, m in pg.evaluate("() => heatwatch.markers()").items()}
            assert trust["vitre-centre-01"] == "official" and trust["vitre-sub-02"] in ("provisional", "confirmed")
            rows = pg.eval_on_selector_all("#sensors tbody tr", "els => els.map(e => e.dataset.sensor)")
            assert sensors <= set(rows)
            # No alert opened for what the demo loaded.
            assert pg.inner_text("#alerts-count") == "0"
            # The last 24 h of the selected sensor, from the live day.
            pg.wait_for_function("() => (heatwatch.state.dayData?.own.length || 0) > 100", timeout=30_000)
            # The town's indices: the summer, since the demo runs outside or after it (its chart, its heat wave).
            pg.wait_for_function("y => heatwatch.state.monthChart && heatwatch.state.month.rows.length > 100",
                                 arg=summer, timeout=30_000)
            canicule = pg.evaluate("() => heatwatch.state.month.rows.filter(r => r.canicule).length")
            assert canicule >= 3, canicule
            # Heat-island map of the season and the ranking of its sites.
            pg.wait_for_function("() => { const i = document.querySelector('#insights-map');"
                                 " return i && !i.hidden && i.complete && i.naturalWidth > 0; }", timeout=60_000)
            pg.wait_for_function("() => document.querySelectorAll('#insights-ranking tbody tr td.num').length >= 40",
                                 timeout=30_000)
            ranking = pg.inner_text("#insights-ranking")
            assert "6" in ranking and f"été {summer}" in ranking.lower()
            pg.wait_for_selector("#drivers-title, #drivers", timeout=30_000)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / "demo-vitre.png"), full_page=True)
            if AXE.exists():
                assert run_axe(pg) == []
        finally:
            browser.close()
    assert problems == [], "\n".join(problems)


def test_demo_shows_a_summer_within_two_minutes_then_ctrl_c_then_second_up(heatwatch_up, tmp_path):
    data = (tmp_path / "var").resolve()
    port = free_port()
    summer = DemoSummer.before(datetime.now(UTC).date())

    started = time.monotonic()
    up = heatwatch_up(data, ["--demo"], {"HEATWATCH_API_PORT": str(port)})
    url, mqtt = up.wait_up()
    assert url == f"http://127.0.0.1:{port}"  # where the API listens: the port asked for
    assert re.fullmatch(r"mqtt://127\.0\.0\.1:\d+", mqtt)
    ready = up.wait_for(READY_LINE, PROMISE_S - (time.monotonic() - started))
    took = time.monotonic() - started
    assert int(ready.group(1)) == summer.season
    print(f"demo ready in {took:.0f} s")
    wait_ready(url)

    # Every child runs and belongs to this data folder.
    children = children_of(up.pid)
    commands = " | ".join(children.values())
    for what in ("mosquitto", "influxd", "heatwatch ingest", "heatwatch api", "heatwatch analytics",
                 "heatwatch simulate"):
        assert what in commands, f"no {what} among the children of up: {children}"
    assert set(children) <= set(stack_processes(data))

    # The summer: every day of the season at 10-minute steps, the heat wave's canicule days, the map, the ranking.
    sensors = placed_sensors(data, TOWN)
    assert PROBE in sensors and len(sensors) >= 10
    july = (datetime(summer.season, 7, 1, tzinfo=UTC), datetime(summer.season, 8, 1, tzinfo=UTC))
    stored = readings_of(url, PROBE, *july)  # a month at a time: the api's cap on raw readings
    assert stored["count"] == 31 * 144, stored
    days = get(url, "/v1/daily", town=TOWN, sensor=PROBE, **{"from": summer.first.isoformat(),
                                                             "to": (summer.last + timedelta(days=1)).isoformat()})
    assert len(days.json()["data"]) == (summer.last - summer.first).days + 1
    episodes = get(url, "/v1/canicule-episodes", town=TOWN).json()["data"]
    hot = [e for e in episodes if date.fromisoformat(e["start"]).year == summer.season]
    assert len(hot) == 1 and summer.heatwave_start <= date.fromisoformat(hot[0]["start"]), episodes
    assert hot[0]["days"] >= 3
    png = get(url, f"/v1/towns/{TOWN}/uhi-map", kind="night", date=summer.canicule_night.isoformat(), format="png")
    assert png.headers["content-type"] == "image/png"
    ranked = [r for r in get(url, f"/v1/towns/{TOWN}/rankings", season=summer.season).json()["data"] if r["rank"]]
    assert len(ranked) >= 10 and all(r["tropical_nights"] >= 1 for r in ranked[:5]), ranked[:5]

    # Live: a recent reading of every example site, after a catch-up day (not two: the summer is the history).
    now = datetime.now(UTC)
    rows = latest(url, TOWN)
    assert sensors <= {s for s, r in rows.items() if when(r["time"]) >= now - timedelta(minutes=15)}, rows
    day = readings_of(url, PROBE, now - timedelta(days=3), now)
    assert timedelta(hours=23) <= now - when(day["oldest"]["time"]) <= timedelta(hours=25), day

    # No alert for what was loaded (last July's canicule, the silence while the backlog landed).
    analytics_log = data / "logs" / "analytics.log"
    wait_until(lambda: "analytics.alerts.done" in analytics_log.read_text(), 90, "analytics' first evaluation")
    assert get(url, "/v1/alerts", town=TOWN, status="open").json()["data"] == []
    assert "alert.open" not in analytics_log.read_text()

    check_dashboard(url, summer.season, sensors)

    # The seasonal report, with the command the demo printed.
    command = REPORT_LINE.search(up.stdout).group(1).replace("--out reports/", f"--out {tmp_path / 'reports'}")
    words = shlex.split(command)
    env = dict(os.environ) | dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    argv = [w for w in words if not ("=" in w and not w.startswith("-"))]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    html = (tmp_path / "reports" / f"heatwatch-{TOWN}-{summer.season}.html").read_text()
    assert "canicule" in html.lower() and summer.canicule_night.strftime("%Y-%m-%d") in html

    # Ctrl-C: exit 0, nothing left running.
    assert up.interrupt() == 0, up.output()
    assert "up.stopped" in up.stderr
    assert_all_gone(data, children)

    # Second run on the same folder, without the simulator: what the first one stored is served. ------------
    again = heatwatch_up(data, [], {"HEATWATCH_API_PORT": str(free_port())})
    url2, mqtt2 = again.wait_up()
    wait_ready(url2)
    second = latest(url2, TOWN)
    for s in sensors:
        # Equal, or a reading that reached the first run between our look and the Ctrl-C.
        assert when(second[s]["time"]) >= when(rows[s]["time"]), (s, rows[s], second[s])
    assert placed_sensors(data, TOWN) == sensors  # the registry too
    assert readings_of(url2, PROBE, *july) == stored
    assert get(url2, "/v1/canicule-episodes", town=TOWN).json()["data"] == episodes
    resident_publishes(url2, mqtt2)
    children = children_of(again.pid)
    assert again.interrupt() == 0, again.output()
    assert_all_gone(data, children)
