"""The MQTT side of the live stream: a plain (non-persistent) subscriber to stored readings and alerts.

The live view only cares about what happens from now on; what is durable lives in InfluxDB and the
REST endpoints. paho runs its network loop in its own thread: every message is parsed there (pure
functions of :mod:`heatwatch.core.topics`) and handed to the event loop with ``call_soon_threadsafe``,
so the hub's state is touched by the event loop only and needs no lock.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from heatwatch.core.logging import get_logger
from heatwatch.core.mqtt import make_client
from heatwatch.core.settings import LiveOptions, MqttUrl
from heatwatch.core.topics import last_level, parse_alert, parse_live

log = get_logger("heatwatch.api.live")


@dataclass(frozen=True, slots=True)
class Handlers:
    """What the feed calls on the event loop."""

    readings: Callable[[str, list[tuple[str, dict[str, Any]]] | None], None]
    alerts: Callable[[str, list[dict[str, Any]]], None]
    connected: Callable[[bool], None]
    rejected: Callable[[], None]


class MqttFeed:
    def __init__(self, url: MqttUrl, towns: Iterable[str], options: LiveOptions, handlers: Handlers) -> None:
        self.url = url
        self.towns = frozenset(towns)
        self.options = options
        self.handlers = handlers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # Readable in the broker's log; random suffix so two api replicas never kick each other off.
        client_id = f"heatwatch-api-live-{socket.gethostname()[:20]}-{os.getpid()}-{os.urandom(3).hex()}"
        client = make_client(self.url, client_id)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        # Asynchronous connect: an unreachable broker must not stop the api from serving data;
        # paho keeps retrying in its thread and on_connect subscribes again every time.
        client.connect_async(self.url.host, self.url.port, keepalive=30, clean_start=True)
        client.loop_start()
        self._client = client

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            # loop_stop joins paho's thread: off the event loop, it can take a moment.
            await asyncio.to_thread(client.loop_stop)

    # paho thread -------------------------------------------------------------------------------

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed between the check and the call: shutting down
            pass

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                    _props: Any = None) -> None:
        if reason_code.is_failure:
            log.warning("live.connect_refused", reason=str(reason_code))
            return
        o = self.options
        client.subscribe([(o.topic, o.qos), (o.alerts_topic, o.qos)])
        log.info("live.subscribed", topics=[o.topic, o.alerts_topic], host=self.url.host, port=self.url.port)
        self._call(self.handlers.connected, True)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _props: Any = None) -> None:
        log.info("live.disconnected", reason=str(reason_code))
        self._call(self.handlers.connected, False)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        received = time.time_ns() // 1_000_000
        topic = msg.topic
        town = last_level(topic)
        if mqtt.topic_matches_sub(self.options.alerts_topic, topic):
            if town in self.towns:
                self._call(self.handlers.alerts, town, parse_alert(msg.payload, received))
            else:
                self._call(self.handlers.rejected)
        elif mqtt.topic_matches_sub(self.options.topic, topic):
            if town in self.towns:
                self._call(self.handlers.readings, town, parse_live(msg.payload, town, received))
            else:
                self._call(self.handlers.rejected)
