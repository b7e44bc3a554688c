"""``heatwatch`` command line: each subcommand wires parts together and nothing more."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .. import __version__
from ..core.errors import ConfigError
from ..core.logging import configure_logging, get_logger
from ..core.settings import AnalyticsSettings, ApiSettings, CoreSettings, IngestSettings, Settings

log = get_logger("heatwatch")
S = TypeVar("S", bound=CoreSettings)


def _settings(group: type[S]) -> S:
    """The command's settings, validated before it starts anything; logging configured from them."""
    settings = group.load()
    configure_logging(settings.log_level, settings.log_json)
    return settings


async def _until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


def cmd_ingest(args: argparse.Namespace) -> int:
    import uvloop

    from ..core.registry import Registry
    from ..ingest.service import IngestService

    settings = _settings(IngestSettings)
    with Registry.from_settings(settings) as registry:
        service = IngestService(settings, registry=registry)
        # uvloop: its transports hand the MQTT client each socket read with less overhead per wake-up.
        uvloop.run(_until_signal(service.run))
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from ..api.server import serve

    settings = _settings(ApiSettings)
    settings.check_listen(args.host or settings.api.host)  # before anything starts: the public URL it needs
    serve(settings, args.host, args.port)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from ..stack.up import up

    settings = _settings(Settings)
    settings.check_listen(args.host or settings.api.host)
    return up(settings, demo=args.demo, host=args.host, port=args.port)


def _delegate(module: str, group: type[CoreSettings]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return int(importlib.import_module(module).run(args, _settings(group)) or 0)

    return run


# Subcommands living in their own modules: (name, module, help, settings group). A module is imported
# only when its command runs, so `heatwatch ingest` does not load pandas for nothing.
DELEGATED: list[tuple[str, str, str, type[CoreSettings]]] = [
    ("simulate", "heatwatch.simulate.cli", "publish simulated readings for both towns", CoreSettings),
    ("sensors", "heatwatch.cli.sensors", "sensor registry import/export", IngestSettings),
    ("analytics", "heatwatch.analytics.cli", "run the analytics scheduler", AnalyticsSettings),
    ("backfill", "heatwatch.analytics.backfill_cli", "recompute analytics over a range", AnalyticsSettings),
    ("archives", "heatwatch.analytics.archives_cli", "monthly archives: build a range, list", AnalyticsSettings),
    ("reference", "heatwatch.analytics.reference_cli", "official reference stations (Météo-France hourly files)",
     AnalyticsSettings),
    ("sensor-community", "heatwatch.analytics.sensorcommunity_cli",
     "sensor.community stations as citizen sensors: archive files, the data API", AnalyticsSettings),
    ("layers", "heatwatch.cli.layers", "a town's geographic layers: import, list, remove, site context", CoreSettings),
    ("report", "heatwatch.cli.report", "seasonal report of a town (HTML, optional PDF)", ApiSettings),
    ("contributors", "heatwatch.cli.contributors", "participatory science: the contributors' MQTT accounts into "
     "the broker's password file", CoreSettings),
    ("db", "heatwatch.cli.db", "InfluxDB set-up with one least-privilege user per service (as the admin)",
     CoreSettings),
]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s own module (if delegated) is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="heatwatch", description="Urban heat island measurement for French towns")
    parser.add_argument("--version", action="version", version=f"heatwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="local stack: embedded mosquitto + influxd when none configured, then all services")
    p.add_argument("--demo", action="store_true", help="also run the simulator feeding both towns")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("ingest", help="MQTT → InfluxDB ingester")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("api", help="open-data API and dashboard")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=cmd_api)

    for name, module, helptext, group in DELEGATED:
        p = sub.add_parser(name, help=helptext)
        if name == command:
            importlib.import_module(module).add_arguments(p)
            p.set_defaults(func=_delegate(module, group))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"heatwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
