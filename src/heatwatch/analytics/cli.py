"""``heatwatch analytics``: the scheduler alone, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal

from heatwatch.core.influx import InfluxClient
from heatwatch.core.logging import get_logger
from heatwatch.core.registry import Registry
from heatwatch.core.settings import AnalyticsSettings

from .metrics import serve_metrics
from .publish import MqttPublisher
from .scheduler import AnalyticsService

log = get_logger("heatwatch.analytics")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true",
                        help="catch up and evaluate alerts once, then exit (cron-style use, diagnostics)")
    parser.add_argument("--no-mqtt", action="store_true",
                        help="no MQTT at all: store alerts without publishing them, and take no recompute "
                             "requests (heatwatch/recompute)")


async def serve(settings: AnalyticsSettings, *, once: bool = False, mqtt: bool = True) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    publisher = MqttPublisher(settings.mqtt, settings.analytics_mqtt_client_id).start() if mqtt else None
    registry = Registry.from_settings(settings)
    listener = None
    client = InfluxClient.from_settings(settings, max_connections=4)
    try:
        # Creates the database and policies if analytics starts before anything else wrote.
        await client.setup(settings.raw_retention)
        service = AnalyticsService(settings, client, registry, publisher)
        if settings.analytics_metrics_port is not None and not once:
            listener = serve_metrics(service.metrics, settings.analytics_metrics_host, settings.analytics_metrics_port)
        if once:
            service.without_startup_grace()
            await service.once()
            if service.notify is not None:
                await service.notify.close()  # the webhook client (run() closes it on its way out)
        else:
            await service.run(stop, requests=mqtt)
    finally:
        if listener is not None:
            listener[0].shutdown()
            listener[0].server_close()
        await client.aclose()
        if publisher is not None:
            publisher.close()
        registry.close()


def run(args: argparse.Namespace, settings: AnalyticsSettings) -> int:
    asyncio.run(serve(settings, once=args.once, mqtt=not args.no_mqtt))
    return 0
