"""Services report their own health: ``heatwatch ingest``, ``analytics`` and ``api`` as processes on the session's
mosquitto and influxd, each with its /metrics listener, scraped after real traffic (readings over MQTT, a malformed
message, requests, a live stream). The Grafana dashboard in deploy/ uses only metrics they expose, and a real
Prometheus scraping them with deploy/prometheus/prometheus.yml answers every query of it; the Prometheus and Grafana
files agree with docker-compose.yml."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from heatwatch.stack.children import ServiceProcess
from heatwatch.stack.embedded import free_port, terminate
from support.mqtt import publish_all
from support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "heatwatch.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
#: Series Prometheus makes itself for every target, not exposed by any service.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


class Stack:
    def __init__(self, api: str, metrics: dict[str, str], tmp: Path) -> None:
        self.api = api
        self.metrics = metrics  # service -> its /metrics URL
        self.tmp = tmp

    def scrape(self, service: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        r = httpx.get(self.metrics[service], timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(r.text) for s in family.samples}

    def value(self, service: str, name: str, **labels: str) -> float | None:
        return self.scrape(service).get((name, tuple(sorted(labels.items()))))


def readings(sensor: str, now_ms: int, base: float) -> bytes:
    """A data logger's upload: native JSON array, a reading every 10 minutes over the last two hours."""
    return json.dumps([{"ts": now_ms - k * 600_000, "temperature": round(base + 0.1 * k, 2), "humidity": 61,
                        "battery_v": 3.1} for k in range(12, -1, -1)]).encode()


@pytest.fixture(scope="module")
def stack(mosquitto, influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("monitoring")
    db = f"mon_{int(time.time())}"
    ports = {name: free_port() for name in ("ingest", "analytics", "api", "public")}
    common = {"HEATWATCH_MQTT_URL": mosquitto.url, "HEATWATCH_INFLUX_URL": influxd.url, "HEATWATCH_INFLUX_DB": db,
              "HEATWATCH_DATA_DIR": str(tmp / "var")}
    procs: list[ServiceProcess] = []
    try:
        ingest = ServiceProcess(["ingest"], {**common, "HEATWATCH_METRICS_PORT": str(ports["ingest"]),
                                             "HEATWATCH_MQTT_CLIENT_ID": f"{db}-ingest"}, tmp / "ingest.log")
        procs.append(ingest.start(ready_marker="ingest.started", timeout=60))
        api_env = {**common, "HEATWATCH_API_METRICS_PORT": str(ports["api"]), "HEATWATCH_API_RATE_LIMIT_PER_S": "0",
                   "HEATWATCH_LIVE_PING_S": "1"}
        api = ServiceProcess(["api", "--host", "127.0.0.1", "--port", str(ports["public"])], api_env, tmp / "api.log",
                             name="api")
        procs.append(api.start(ready_marker="live.subscribed", timeout=60))
        api.wait_for("Application startup complete", timeout=30)

        now = int(time.time() * 1000) // 60_000 * 60_000 - 60_000
        messages = [(f"heat/vitre/vitre-mon-{i}", readings(f"vitre-mon-{i}", now, 24 + i)) for i in range(3)]
        messages += [(f"heat/saint-omer/so-mon-{i}", readings(f"so-mon-{i}", now, 19 + i)) for i in range(2)]
        messages.append(("heat/vitre/vitre-mon-0", b'{"ts": 1, "temperature": "warm"}'))  # dead-lettered
        assert publish_all(mosquitto.url, messages) == len(messages)
        metrics = {name: f"http://127.0.0.1:{ports[name]}/metrics" for name in ("ingest", "analytics", "api")}
        s = Stack(f"http://127.0.0.1:{ports['public']}", metrics, tmp)
        wait_until(lambda: (s.value("ingest", "heatwatch_ingest_readings_stored_total") or 0) >= 5 * 13, 60,
                   "readings stored")

        # Analytics once the readings are in: its start-up run computes their hours and evaluates the alerts.
        analytics_env = {**common, "HEATWATCH_ANALYTICS_METRICS_PORT": str(ports["analytics"]),
                         "HEATWATCH_ANALYTICS_MQTT_CLIENT_ID": f"{db}-analytics", "HEATWATCH_ALERT_GRACE_S": "0",
                         "HEATWATCH_ANALYTICS_LAST_INTERVAL_S": "5"}
        analytics = ServiceProcess(["analytics"], analytics_env, tmp / "analytics.log")
        procs.append(analytics.start(ready_marker="analytics.started", timeout=60))
        analytics.wait_for("analytics.alerts.done", timeout=120)
        yield s
    finally:
        for p in reversed(procs):
            p.stop()


def test_metrics_have_a_listener_of_their_own_never_the_public_port(stack: Stack) -> None:
    assert httpx.get(f"{stack.api}/metrics", timeout=10).status_code == 404
    for service in ("ingest", "analytics", "api"):
        assert any(name.startswith(f"heatwatch_{service}_") for name, _ in stack.scrape(service))


def test_an_sse_client_is_counted_while_it_is_connected(stack: Stack) -> None:
    assert stack.value("api", "heatwatch_api_live_clients") == 0
    opened, done = threading.Event(), threading.Event()

    def listen() -> None:
        with httpx.Client(timeout=httpx.Timeout(10, read=30)) as c, c.stream("GET", f"{stack.api}/v1/live") as r:
            for line in r.iter_lines():
                if line.startswith("event: hello"):
                    opened.set()
                if done.is_set():
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert opened.wait(15)
    assert stack.value("api", "heatwatch_api_live_clients") == 1
    assert stack.value("api", "heatwatch_api_live_mqtt_connected") == 1
    done.set()  # the reader returns at the next line (a ping, every second here) and closes the stream
    t.join(30)
    wait_until(lambda: stack.value("api", "heatwatch_api_live_clients") == 0, 30, "stream released")


def test_requests_are_timed_by_route_template_and_refusals_by_class(stack: Stack) -> None:
    before = stack.value("api", "heatwatch_api_responses_total", method="GET", route="/v1/towns/{town}",
                         status="4xx") or 0
    for path in ("/v1/towns/vitre", "/v1/towns/saint-omer", "/v1/towns/atlantis"):
        httpx.get(stack.api + path, timeout=10)
    assert (stack.value("api", "heatwatch_api_responses_total", method="GET", route="/v1/towns/{town}",
                        status="4xx") or 0) == before + 1
    scraped = stack.scrape("api")
    assert not any("atlantis" in v for _, labels in scraped for _, v in labels)
    assert (stack.value("api", "heatwatch_api_request_duration_seconds_count", method="GET",
                        route="/v1/towns/{town}") or 0) >= 3


def test_analytics_reports_its_jobs_lag_qc_and_alerts(stack: Stack) -> None:
    started = stack.value("analytics", "heatwatch_analytics_job_last_success_timestamp_seconds", job="catchup")
    assert started is not None and time.time() - started < 600
    lag = stack.value("analytics", "heatwatch_analytics_data_lag_seconds", town="vitre")
    assert lag is not None and 0 <= lag < 900  # the newest reading was ~1 minute old when published
    assert (stack.value("analytics", "heatwatch_analytics_qc_hours", town="vitre") or 0) >= 3
    assert stack.value("analytics", "heatwatch_analytics_alerts_open", town="vitre", kind="offline") is not None


# The Grafana dashboard ------------------------------------------------------------------------------------


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels", [])  # a collapsed row holds its panels


def _names(expr: str) -> set[str]:
    """Metric names of a PromQL expression, from its syntax tree (Grafana's variables replaced by values)."""
    concrete = expr.replace("$__rate_interval", "5m").replace("$town", ".*")
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                found.add(node.name)
            for m in node.matchers.matchers:  # {__name__="..."}
                if m.name == "__name__":
                    found.add(m.value)
            return
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, str | int | float):
                walk(child)
        for arg in getattr(node, "args", None) or []:
            walk(arg)

    walk(promql_parser.parse(concrete))
    return found


def dashboard_metrics() -> dict[str, set[str]]:
    """Every metric name of the dashboard → the panels (and variables) using it."""
    doc = json.loads(DASHBOARD.read_text())
    used: dict[str, set[str]] = {}
    for p in _panels(doc):
        for t in p.get("targets", []):
            for name in _names(t["expr"]):
                used.setdefault(name, set()).add(p["title"])
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["definition"])
            assert m, var
            used.setdefault(m.group(1), set()).add(f"${var['name']}")
    return used


def test_the_dashboard_is_a_grafana_dashboard_whose_queries_parse() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["title"] and isinstance(doc["schemaVersion"], int)
    panels = list(_panels(doc))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 15
    for p in graphs:
        assert p["title"] and set(p["gridPos"]) == {"h", "w", "x", "y"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["refId"] and t["expr"] and t["datasource"]["uid"] == "${datasource}", p["title"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    used = dashboard_metrics()
    # What the issue asks to watch is on it.
    for name in ("heatwatch_api_request_duration_seconds_bucket", "heatwatch_api_live_clients",
                 "heatwatch_api_cache_lookups_total", "heatwatch_api_responses_total",
                 "heatwatch_analytics_job_duration_seconds_sum",
                 "heatwatch_analytics_job_last_success_timestamp_seconds",
                 "heatwatch_analytics_data_lag_seconds", "heatwatch_analytics_qc_flagged_ratio"):
        assert name in used, name


def test_every_metric_the_dashboard_uses_is_exposed_by_a_running_service(stack: Stack) -> None:
    # Traffic that makes every labelled series appear: requests, an expensive answer, a refused one.
    for path in ("/v1/towns", "/v1/towns", "/v1/latest?town=vitre", "/v1/towns/atlantis", "/v1/towns?x=1"):
        httpx.get(stack.api + path, timeout=30)
    exposed = set(itertools.chain.from_iterable(
        {name for name, _ in stack.scrape(service)} for service in ("ingest", "analytics", "api")))
    missing = {name: sorted(panels) for name, panels in dashboard_metrics().items()
               if name not in exposed and name not in PROMETHEUS_SYNTHETIC}
    assert not missing, f"the dashboard uses metrics no service exposes: {missing}"


# Prometheus and Grafana files against docker-compose.yml ---------------------------------------------------


def test_prometheus_scrapes_each_service_where_compose_has_it_listen_unpublished() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    listen_port = {"ingest": "HEATWATCH_METRICS_PORT", "analytics": "HEATWATCH_ANALYTICS_METRICS_PORT",
                   "api": "HEATWATCH_API_METRICS_PORT"}
    expected: dict[str, set[str]] = {}
    for name, svc in services.items():
        if svc.get("build") != "." or svc["command"][0] not in listen_port:
            continue
        env = svc["environment"]
        port = str(env[listen_port[svc["command"][0]]])
        host_key = listen_port[svc["command"][0]].replace("_PORT", "_HOST")
        assert env[host_key] == "0.0.0.0", f"{name}: metrics must listen on the compose network"
        assert not any(port in str(p) for p in svc.get("ports", [])), f"{name}: its metrics port is published"
        expected.setdefault(svc["command"][0], set()).add(f"{name}:{port}")
    config = yaml.safe_load(PROMETHEUS.read_text())
    scraped = {job["job_name"].removeprefix("heatwatch-"): set(job["static_configs"][0]["targets"])
               for job in config["scrape_configs"]}
    assert scraped == expected
    prometheus = services["prometheus"]
    assert "ports" not in prometheus and "monitoring" in prometheus["profiles"]
    assert any(v.startswith("./deploy/prometheus/prometheus.yml:") for v in prometheus["volumes"])


def test_grafana_provisioning_points_at_what_compose_mounts() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    source = yaml.safe_load((PROVISIONING / "datasources" / "heatwatch.yaml").read_text())
    assert source["apiVersion"] == 1
    (ds,) = source["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    doc = json.loads(DASHBOARD.read_text())
    default = next(v for v in doc["templating"]["list"] if v["name"] == "datasource")["current"]["value"]
    assert default == ds["uid"]  # the dashboard opens on the provisioned datasource
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "heatwatch.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["./deploy/grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"


# A real Prometheus scraping the services with the shipped configuration ---------------------------------------

#: Queries of the dashboard that are empty on a healthy stack: no 5xx, no failed job, no QC flag raised.
EMPTY_WHEN_HEALTHY = ('status="5xx"', 'outcome="failure"', ") > 0")


def test_the_shipped_scrape_configuration_passes_promtool() -> None:
    done = subprocess.run(["promtool", "check", "config", str(PROMETHEUS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def prometheus(stack: Stack) -> Iterator[str]:
    """Prometheus (the Debian package, scripts/install.sh --test) with deploy/prometheus/prometheus.yml, its compose
    targets replaced by where the test's services listen and its interval shortened."""
    if not shutil.which("prometheus"):
        pytest.fail("prometheus is not installed: run scripts/install.sh --test")
    config = yaml.safe_load(PROMETHEUS.read_text())
    config["global"]["scrape_interval"] = config["global"]["scrape_timeout"] = "1s"
    for job in config["scrape_configs"]:
        service = job["job_name"].removeprefix("heatwatch-")
        job["static_configs"] = [{"targets": [stack.metrics[service].removeprefix("http://").removesuffix("/metrics")]}]
    folder = stack.tmp / "prometheus"
    folder.mkdir()
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with open(folder / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(["prometheus", f"--config.file={folder / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), 60, "prometheus ready")
        # Every target scraped, and twice at least, so that rate() has two samples.
        wait_until(lambda: len(query(url, 'count_over_time(up{job=~"heatwatch-.*"}[1m]) >= 3')) == 3, 60,
                   "three targets scraped thrice")
        yield url
    finally:
        terminate(proc, 20)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def query(url: str, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def test_every_dashboard_query_runs_on_prometheus_scraping_the_services(stack: Stack, prometheus: str) -> None:
    assert {r["metric"]["job"] for r in query(prometheus, "up == 1")} == {
        "heatwatch-ingest", "heatwatch-analytics", "heatwatch-api"}
    doc = json.loads(DASHBOARD.read_text())
    empty = []
    for p in _panels(doc):
        for t in p.get("targets", []):
            expr = t["expr"].replace("$__rate_interval", "1m").replace("$town", ".*")
            if not query(prometheus, expr) and not any(mark in expr for mark in EMPTY_WHEN_HEALTHY):
                empty.append(f"{p['title']}: {expr}")
    for var in doc["templating"]["list"]:
        if var["type"] == "query":  # label_values(metric, label): what Grafana lists
            metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["definition"]).groups()
            values = {r["metric"][label] for r in query(prometheus, f"group by ({label}) ({metric})")}
            assert values == {"vitre", "saint-omer"}, var["name"]
    assert not empty, "dashboard queries without data on a running stack:\n" + "\n".join(empty)
