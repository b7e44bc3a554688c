"""``heatwatch up``: the whole stack on one machine, for a demo or a small town.

Embedded mosquitto and influxd start as children, with their data under the data folder,
unless ``HEATWATCH_MQTT_URL`` / ``HEATWATCH_INFLUX_URL`` name external ones. The services
then run as the same child processes production runs (``heatwatch ingest`` and so on), so
the demo exercises exactly what is deployed; with ``--demo``, a past summer is loaded and
analysed before live readings go on (:mod:`.demo`). Ctrl-C stops producers first, then consumers,
then the databases, so nothing in flight is lost; a second ``up`` reuses the data.

The embedded services are set up as production should be (SECURITY.md): influxd with authentication on, an
admin only ``up`` uses, and one user per service with only its grants (:mod:`.influxusers`); mosquitto with
no anonymous access, one account per service and the shipped ACL (:mod:`.mqttauth`). Passwords are made once,
kept 0600 under ``<data>/secrets/`` and handed to each service as ``*_FILE`` settings.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import time
from pathlib import Path

from ..core.contributors import ContributorStore
from ..core.errors import ConfigError
from ..core.influx import InfluxClient
from ..core.logging import get_logger
from ..core.registry import Registry
from ..core.settings import Settings
from .children import ServiceProcess
from .demo import (
    LIVE_BACKFILL,
    DemoSummer,
    load_marker,
    save_marker,
    today_local,
    wait_live,
    wait_stored,
    where_to_look,
)
from .embedded import Influxd, Mosquitto, free_port
from .influxusers import ROLES, ServiceUser, ensure_admin, provision, stored_password
from .mqttauth import SERVICE_ACL, acl_text, set_password, sync_contributors

INFLUX_ADMIN = "admin"
#: How often the embedded broker's password file is brought up to date with the contributors' MQTT accounts.
ACCOUNTS_SYNC_S = 2.0
#: The demo's simulator publishes for every example sensor from one connection, like a gateway.
SIMULATOR_ACL = {"simulator": SERVICE_ACL["replay"]}

log = get_logger("heatwatch.up")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port(preferred: int, avoid: frozenset[int] = frozenset()) -> int:
    """The usual port when it is free, else any free one other than ``avoid`` (a port promised to the api but not
    bound yet: the kernel may hand it out again to the broker or the database in between)."""
    if preferred not in avoid and _free(preferred):
        return preferred
    while (port := free_port()) in avoid:
        pass
    return port


def _api_port(settings: Settings, asked: int | None) -> int:
    """A port the user asked for (``--port`` or ``HEATWATCH_API_PORT``) is kept or refused, never swapped for
    another: the printed URL must be the one they expect. The default moves to a free port when taken."""
    if asked is None and "port" not in settings.api.model_fields_set:
        return _port(settings.api.port)
    port = settings.api.port if asked is None else asked
    if not _free(port):
        raise ConfigError(f"the api's port {port} is already in use on 127.0.0.1; choose another "
                          "(--port or HEATWATCH_API_PORT)")
    return port


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
        broker = next((e for e in embedded if isinstance(e, Mosquitto)), None)
        synced = 0.0
        while not stopping:
            if broker is not None and time.monotonic() - synced >= ACCOUNTS_SYNC_S:
                _sync_accounts(data, broker)
                synced = time.monotonic()
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


def _sync_accounts(data: Path, broker: Mosquitto) -> None:
    """Residents' MQTT accounts (``POST /v1/contribute``) into the embedded broker's password file, and a SIGHUP
    when it changed: an account works a few seconds after its registration, with no manual step (production runs
    ``heatwatch contributors mqtt-sync``: docs/citizens.md)."""
    store = ContributorStore.for_data_dir(data)
    if broker.passwd is None or broker.proc is None or not store.path.exists():
        return
    try:
        result = sync_contributors(store, broker.passwd)
        if result.changed and broker.running:
            broker.proc.send_signal(signal.SIGHUP)
            log.info("up.contributor_accounts", active=result.active, added=len(result.added),
                     removed=len(result.removed))
    except (OSError, ValueError, sqlite3.Error) as exc:  # retried at the next round; the stack keeps running
        log.error("up.contributor_accounts_failed", error=str(exc))


async def _provision_influx(settings: Settings, url: str, admin_password: str, users: list[ServiceUser]) -> None:
    """The embedded influxd's admin, databases and per-service users (idempotent: a second ``up`` keeps them)."""
    await ensure_admin(url, INFLUX_ADMIN, admin_password)
    async with InfluxClient(url, settings.influx_db, agg_database=settings.influx_agg_database,
                            username=INFLUX_ADMIN, password=admin_password) as admin:
        await provision(admin, users, settings.raw_retention)


def _start(settings: Settings, data: Path, embedded: list[Mosquitto | Influxd], services: list[ServiceProcess],
           *, demo: bool, host: str | None, port: int | None) -> None:
    """Start the stack, appending each child to ``embedded`` or ``services`` as soon as it exists."""
    env = {"HEATWATCH_DATA_DIR": str(data)}
    secrets = data / "secrets"
    api_port = _api_port(settings, port)
    promised = frozenset({api_port})
    # Each service's own credentials (command -> variables), added to env when it starts.
    own: dict[str, dict[str, str]] = {name: {} for name in ("ingest", "analytics", "api", "simulate")}
    if settings.mqtt_url is None:
        broker_dir = data / "mosquitto"
        broker_dir.mkdir(parents=True, exist_ok=True)
        passwd, acl = broker_dir / "passwd", broker_dir / "acl"
        accounts = {"ingest": "ingest", "analytics": "analytics", "api": "api", "simulate": "simulator"}
        for service, user in accounts.items():
            secret = secrets / f"mqtt-{user}"
            set_password(passwd, user, stored_password(secret))
            own[service] |= {"HEATWATCH_MQTT_USERNAME": user, "HEATWATCH_MQTT_PASSWORD": "",
                             "HEATWATCH_MQTT_PASSWORD_FILE": str(secret)}
        replay = secrets / "mqtt-replay"
        set_password(passwd, "replay", stored_password(replay))
        own["api"] |= {"HEATWATCH_REPLAY_MQTT_USERNAME": "replay", "HEATWATCH_REPLAY_MQTT_PASSWORD": "",
                       "HEATWATCH_REPLAY_MQTT_PASSWORD_FILE": str(replay)}
        acl.write_text(acl_text(SIMULATOR_ACL), encoding="utf-8")
        broker = Mosquitto(broker_dir, port=_port(1883, promised), passwd=passwd, acl=acl)
        embedded.append(broker)
        broker.start()
        env["HEATWATCH_MQTT_URL"] = broker.url
        log.info("up.mosquitto", url=broker.url, data=str(broker.data_dir), accounts=sorted(accounts.values()))
    if settings.influx_url is None:
        db = Influxd(data / "influxdb", port=_port(8086, promised), auth=True)
        embedded.append(db)
        db.start()
        env["HEATWATCH_INFLUX_URL"] = db.url
        users = [ServiceUser(role, f"heatwatch_{role}", stored_password(secrets / f"influx-{role}")) for role in ROLES]
        asyncio.run(_provision_influx(settings, db.url, stored_password(secrets / "influx-admin"), users))
        for u in users:
            own[u.role] |= {"HEATWATCH_INFLUX_USER": u.name, "HEATWATCH_INFLUX_TOKEN": "",
                            "HEATWATCH_INFLUX_PASSWORD": "",
                            "HEATWATCH_INFLUX_PASSWORD_FILE": str(secrets / f"influx-{u.role}")}
        log.info("up.influxd", url=db.url, data=str(db.data_dir), users=[u.name for u in users])

    api_host = host or settings.api.host
    logs = data / "logs"
    shown = settings.base_url(api_host, api_port)

    def start(service: ServiceProcess, ready_marker: str | None = None, timeout: float = 30.0) -> None:
        services.append(service)
        service.start(ready_marker=ready_marker, timeout=timeout)

    summer = DemoSummer.before(today_local()) if demo else None
    ingest_env = dict(own["ingest"])
    if summer is not None:
        # The summer's readings are months old: the ingester must accept them as a backlog.
        window = max(settings.backlog_window, summer.backlog_window(today_local()))
        ingest_env["HEATWATCH_BACKLOG_WINDOW"] = f"PT{int(window.total_seconds())}S"
    # Consumers first, so the persistent session exists before anything is published.
    start(ServiceProcess(["ingest"], env | ingest_env, logs / "ingest.log", name="ingest"), "mqtt.subscribed", 60)
    start(ServiceProcess(["api", "--host", api_host, "--port", str(api_port)], env | own["api"], logs / "api.log",
                         name="api"))
    analytics = ServiceProcess(["analytics"], env | own["analytics"], logs / "analytics.log", name="analytics")
    live = ServiceProcess(["simulate", "--live", "--backfill", LIVE_BACKFILL], env | own["simulate"],
                          logs / "simulate.log", name="simulate")
    if summer is None:
        start(analytics)
        _announce(settings, env, shown, logs, secrets)
        return
    _announce(settings, env, shown, logs, secrets, demo=True)
    _place_example_sensors(settings)
    influx_env = env | own["api"]  # a reader: the api's user

    def reader() -> InfluxClient:
        if settings.influx_url is None:
            return InfluxClient(env["HEATWATCH_INFLUX_URL"], settings.influx_db,
                                agg_database=settings.influx_agg_database, username=INFLUX_ADMIN,
                                password=stored_password(secrets / "influx-admin"))
        return InfluxClient.from_settings(settings)

    marker = summer.marker(data)
    loaded = load_marker(marker) or {}
    if not loaded.get("analysed"):
        print(f"demo: loading the summer of {summer.season} (1 June – 15 September, a heat wave from "
              f"{summer.heatwave_start}) for both towns, as the sensors' loggers would upload it…", flush=True)
        result = marker.with_name(f"summer-{summer.season}-published.json")
        _run_once(services, ServiceProcess(summer.simulate_args(result), env | own["simulate"],
                                           logs / "simulate-summer.log", name="simulate-summer"))
        loaded = load_marker(result) or {}
    start(live)  # the live day streams in while the summer is stored and analysed
    if not loaded.get("analysed"):
        first, end = summer.utc_range
        stored = wait_stored(reader, first, end, int(loaded.get("readings", 0)))
        log.info("up.demo.stored", readings=stored, published=loaded.get("readings"))
        print(f"demo: {stored:,} readings of the summer stored; computing its aggregates, indices and quality "
              "control…", flush=True)
        _run_once(services, ServiceProcess(summer.backfill_args(), env | own["analytics"], logs / "backfill.log",
                                           name="backfill"))
        loaded["analysed"] = True
        save_marker(marker, loaded)
    if not wait_live(reader, set(settings.towns)):
        log.warning("up.demo.live_late", hint=f"see {logs / 'simulate.log'} and {logs / 'ingest.log'}")
    start(analytics)
    report_env = {"HEATWATCH_DATA_DIR": str(data), "HEATWATCH_INFLUX_URL": influx_env.get("HEATWATCH_INFLUX_URL",
                                                                                        settings.influx_base_url)}
    for key in ("HEATWATCH_INFLUX_USER", "HEATWATCH_INFLUX_PASSWORD_FILE"):
        if influx_env.get(key):
            report_env[key] = influx_env[key]
    print(where_to_look(shown, summer, loaded, report_env), flush=True)


def _run_once(services: list[ServiceProcess], child: ServiceProcess) -> None:
    """A one-shot command of the demo: listed with the services while it runs (so a Ctrl-C stops it), waited for,
    then dropped from the list (its exit is not a service dying)."""
    services.append(child)
    child.start()
    code = child.wait()
    services.remove(child)
    if code != 0:
        raise RuntimeError(f"{' '.join(child.command)} exited with {code}; log {child.log_path}:\n"
                           f"{child.log_text()[-2000:]}")


def _announce(settings: Settings, env: dict[str, str], shown: str, logs: Path, secrets: Path,
              demo: bool = False) -> None:
    print(f"heatwatch is up: API and dashboard on {shown}/  (docs: /docs)", flush=True)
    # Never a password on the terminal: the URL is shown without its credentials.
    mqtt_shown = settings.mqtt.redacted() if settings.mqtt_url is not None else env["HEATWATCH_MQTT_URL"]
    print(f"  MQTT {mqtt_shown}  InfluxDB {env.get('HEATWATCH_INFLUX_URL', settings.influx_url)}  logs {logs}/",
          flush=True)
    if settings.mqtt_url is None:
        print(f"  the broker takes no anonymous client: accounts' passwords in {secrets}/mqtt-* (publish as "
              "'simulator', or add sensor accounts with `heatwatch sensors mqtt-user`; residents' accounts from "
              "/v1/contribute are added by up itself)", flush=True)
    print("  Ctrl-C stops everything.", flush=True)
