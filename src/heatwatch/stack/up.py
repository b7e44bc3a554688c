"""``heatwatch up``: the whole stack on one machine, for a demo or a small town.

Embedded mosquitto and influxd start as children, with their data under the data folder,
unless ``HEATWATCH_MQTT_URL`` / ``HEATWATCH_INFLUX_URL`` name external ones. The services
then run as the same child processes production runs (``heatwatch ingest`` and so on), so
the demo exercises exactly what is deployed. Ctrl-C stops producers first, then consumers,
then the databases, so nothing in flight is lost; a second ``up`` reuses the data.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from ..core.logging import get_logger
from ..core.registry import Registry
from ..core.settings import Settings
from .children import ServiceProcess
from .embedded import Influxd, Mosquitto, free_port

log = get_logger("heatwatch.up")


def _port(preferred: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def _place_example_sensors(settings: Settings) -> None:
    """The demo's simulated sensors are the packaged example sites: register them once."""
    with Registry.from_settings(settings) as registry:
        if not registry.list():
            n = registry.load_examples()
            log.info("up.example_sensors_registered", count=n)


def up(settings: Settings, *, demo: bool = False, host: str | None = None, port: int | None = None) -> int:
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    embedded: list[Mosquitto | Influxd] = []
    services: list[ServiceProcess] = []
    stopping = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # The children run in sessions of their own, so the terminal's Ctrl-C never reaches them: whatever
    # was started must be stopped here, including when a signal or a failure interrupts the start-up.
    # Until everything runs, SIGINT and SIGTERM interrupt the start-up (KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    code = 0
    try:
        _start(settings, data, embedded, services, demo=demo, host=host, port=port)
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stopping:
            dead = [s for s in services if not s.running]
            if dead:
                for s in dead:
                    log.error("up.service_exited", service=s.name, code=s.proc.returncode if s.proc else None,
                              log=str(s.log_path), tail=s.log_text()[-800:])
                code = 1
                break
            time.sleep(0.5)
    finally:
        # A second Ctrl-C must not cut the stopping short.
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        for s in reversed(services):
            s.stop()
        for e in reversed(embedded):
            e.stop()
        log.info("up.stopped")
    return code


def _start(settings: Settings, data: Path, embedded: list[Mosquitto | Influxd], services: list[ServiceProcess],
           *, demo: bool, host: str | None, port: int | None) -> None:
    """Start the stack, appending each child to ``embedded`` or ``services`` as soon as it exists."""
    env = {"HEATWATCH_DATA_DIR": str(data)}
    if settings.mqtt_url is None:
        broker = Mosquitto(data / "mosquitto", port=_port(1883))
        embedded.append(broker)
        broker.start()
        env["HEATWATCH_MQTT_URL"] = broker.url
        log.info("up.mosquitto", url=broker.url, data=str(broker.data_dir))
    if settings.influx_url is None:
        db = Influxd(data / "influxdb", port=_port(8086))
        embedded.append(db)
        db.start()
        env["HEATWATCH_INFLUX_URL"] = db.url
        log.info("up.influxd", url=db.url, data=str(db.data_dir))

    api_host = host or settings.api.host
    api_port = port if port is not None else _port(settings.api.port)
    logs = data / "logs"

    def start(service: ServiceProcess, ready_marker: str | None = None, timeout: float = 30.0) -> None:
        services.append(service)
        service.start(ready_marker=ready_marker, timeout=timeout)

    # Consumers first, so the persistent session exists before anything is published.
    start(ServiceProcess(["ingest"], env, logs / "ingest.log", name="ingest"), "mqtt.subscribed", 60)
    start(ServiceProcess(["api", "--host", api_host, "--port", str(api_port)], env, logs / "api.log", name="api"))
    start(ServiceProcess(["analytics"], env, logs / "analytics.log", name="analytics"))
    if demo:
        _place_example_sensors(settings)
        # Two past days first, so the dashboard and the indices have something to show at once.
        start(ServiceProcess(["simulate", "--live", "--backfill", "2d"], env, logs / "simulate.log", name="simulate"))

    print(f"heatwatch is up: API and dashboard on http://{api_host}:{api_port}/  (docs: /docs)", flush=True)
    print(f"  MQTT {env.get('HEATWATCH_MQTT_URL', settings.mqtt_url)}  "
          f"InfluxDB {env.get('HEATWATCH_INFLUX_URL', settings.influx_url)}  logs {logs}/", flush=True)
    print("  Ctrl-C stops everything.", flush=True)
