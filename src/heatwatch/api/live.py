"""The MQTT → server-sent events hub behind ``/v1/live`` and the dashboard's live updates.

One paho client per api process subscribes to two topics of :mod:`heatwatch.core.topics`:

* ``heatwatch/live/<town>``: what the ingester stored (:class:`~heatwatch.core.topics.LiveBatch`),
  the newest reading per sensor of each durable batch, one shape whatever the sensor's payload
  format. The hub never decodes sensor payloads itself: the live view shows validated, stored
  readings only, and every format alike.
* ``heat/alerts/<town>``: alert events published by analytics
  (:class:`~heatwatch.core.topics.AlertEvent`), passed through as they are.

It is a plain, non-persistent subscriber: the live view only cares about what happens from now on;
what is durable lives in InfluxDB and the REST endpoints.

Two kinds of events, two policies:

* readings are coalesced per sensor: at most one event per sensor every ``coalesce_s`` seconds,
  carrying the newest value (a trailing flush sends the last one of a burst, so the map never
  stays on a stale value). Readings carry no SSE id, so the browser's Last-Event-ID only ever
  names an alert.
* alerts are never coalesced and are kept in a bounded ring buffer with increasing integer ids.
  A client reconnecting with ``Last-Event-ID`` gets every buffered alert after that id. Ids start
  at the process start time in ms, so a restarted api hands out ids above the previous run's and
  a client coming from the old process is told, by a ``gap`` event, that alerts may have been
  missed (it should refetch the open alerts over REST), instead of silently missing them.

paho runs its network loop in its own thread; every message is parsed there and handed to the
event loop with ``call_soon_threadsafe``, so all hub state is touched by the event loop only and
needs no lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from heatwatch.core.mqtt import make_client
from heatwatch.core.settings import LiveOptions, MqttUrl
from heatwatch.core.timestamps import iso_ms
from heatwatch.core.topics import last_level, parse_alert, parse_live

log = logging.getLogger("heatwatch.api.live")



# Events and subscribers ---------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Event:
    kind: str
    town: str | None
    data: dict[str, Any]
    id: int | None = None

    def encode(self) -> bytes:
        head = f"id: {self.id}\n" if self.id is not None else ""
        body = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        return f"{head}event: {self.kind}\ndata: {body}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    """One open stream. Events queue here; a client that stops reading is cut off rather than
    letting its queue grow: its browser reconnects and the alert replay covers the gap."""

    town: str | None
    limit: int
    events: deque[Event] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    reason: str = ""

    def push(self, event: Event) -> None:
        if self.closed:
            return
        if len(self.events) >= self.limit:
            self.close("client too slow")
            return
        self.events.append(event)
        self.wake.set()

    def close(self, reason: str) -> None:
        self.closed = True
        self.reason = reason
        self.wake.set()

    def wants(self, event: Event) -> bool:
        return self.town is None or event.town is None or event.town == self.town


@dataclass
class Stats:
    messages: int = 0
    readings: int = 0
    reading_events: int = 0
    coalesced: int = 0
    alerts: int = 0
    rejected: int = 0
    clients_cut: int = 0


# The hub -----------------------------------------------------------------------------------------


class LiveHub:
    def __init__(self, url: MqttUrl, towns: Iterable[str], config: LiveOptions) -> None:
        self.config = config
        self._url = url
        self._towns = set(towns)
        self.stats = Stats()
        self.connected = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._subs: set[Subscriber] = set()
        self._latest: dict[tuple[str, str], dict[str, Any]] = {}
        self._last_sent: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._alerts: deque[Event] = deque()
        # Ids above any a previous run of this api handed out (see module doc). ``_floor``: every
        # alert with a greater id is still in the buffer, so a client at or above it missed nothing.
        self._next_id = time.time_ns() // 1_000_000
        self._floor = self._next_id

    # Life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self.config.enabled:
            return
        # Readable in the broker's log; random suffix so two api replicas never kick each other off.
        client_id = f"heatwatch-api-live-{socket.gethostname()[:20]}-{os.getpid()}-{os.urandom(3).hex()}"
        client = make_client(self._url, client_id)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        # Asynchronous connect: an unreachable broker must not stop the api from serving data;
        # paho keeps retrying in its thread and on_connect subscribes again every time.
        client.connect_async(self._url.host, self._url.port, keepalive=30, clean_start=True)
        client.loop_start()
        self._client = client

    async def stop(self) -> None:
        for sub in list(self._subs):
            sub.close("server shutting down")
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            # loop_stop joins paho's thread: off the event loop, it can take a moment.
            await asyncio.to_thread(client.loop_stop)

    # paho thread -------------------------------------------------------------------------------

    def _call(self, fn: Any, *args: Any) -> None:
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
            log.warning("live: MQTT connection refused: %s", reason_code)
            return
        client.subscribe([(self.config.topic, self.config.qos), (self.config.alerts_topic, self.config.qos)])
        log.info("live: subscribed to %s and %s on %s:%s", self.config.topic, self.config.alerts_topic,
                 self._url.host, self._url.port)
        self._call(self._set_connected, True)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _props: Any = None) -> None:
        log.info("live: MQTT disconnected (%s)", reason_code)
        self._call(self._set_connected, False)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        received = time.time_ns() // 1_000_000
        topic = msg.topic
        town = last_level(topic)
        if mqtt.topic_matches_sub(self.config.alerts_topic, topic):
            if town in self._towns:
                self._call(self._on_alerts, town, parse_alert(msg.payload, received))
            else:
                self._call(self._count_rejected)
        elif mqtt.topic_matches_sub(self.config.topic, topic):
            if town in self._towns:
                self._call(self._on_readings, town, parse_live(msg.payload, town, received))
            else:
                self._call(self._count_rejected)

    # Event loop --------------------------------------------------------------------------------

    def _count_rejected(self) -> None:
        self.stats.messages += 1
        self.stats.rejected += 1

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self._broadcast(Event("status", None, {"mqtt_connected": connected}))

    def _on_readings(self, town: str, readings: list[tuple[str, dict[str, Any]]] | None) -> None:
        self.stats.messages += 1
        if readings is None:
            self.stats.rejected += 1
            return
        for sensor, reading in readings:
            self._on_reading(town, sensor, reading)

    def _on_reading(self, town: str, sensor: str, reading: dict[str, Any]) -> None:
        key = (town, sensor)
        previous = self._latest.get(key)
        if previous is None and len(self._latest) >= self.config.max_sensors:
            self.stats.rejected += 1
            return
        if previous is not None and previous["ts"] > reading["ts"]:
            return  # a backlog flush arriving late must not move the marker back in time
        self.stats.readings += 1
        self._latest[key] = reading
        if key in self._pending:
            self.stats.coalesced += 1  # the scheduled flush will carry this newer value
            return
        assert self._loop is not None
        due = self._last_sent.get(key, -math.inf) + self.config.coalesce_s
        now = self._loop.time()
        if now >= due:
            self._emit_reading(key)
        else:
            self.stats.coalesced += 1
            self._pending[key] = self._loop.call_at(due, self._flush, key)

    def _flush(self, key: tuple[str, str]) -> None:
        if self._pending.pop(key, None) is not None:
            self._emit_reading(key)

    def _reading_event(self, key: tuple[str, str]) -> Event:
        town, sensor = key
        r = self._latest[key]
        return Event("reading", town, {"town": town, "sensor": sensor, "time": iso_ms(r["ts"]), "ts": r["ts"],
                                       "temperature": r["temperature"], "humidity": r["humidity"],
                                       "battery_v": r["battery_v"], "battery_pct": r.get("battery_pct"),
                                       "rssi": r["rssi"], "source": r["source"]})

    def _emit_reading(self, key: tuple[str, str]) -> None:
        assert self._loop is not None
        self._last_sent[key] = self._loop.time()
        self.stats.reading_events += 1
        self._broadcast(self._reading_event(key))

    def _on_alerts(self, town: str, alerts: list[dict[str, Any]]) -> None:
        self.stats.messages += 1
        if not alerts:
            self.stats.rejected += 1
        for alert in alerts:
            self.publish_alert(town, alert)

    def publish_alert(self, town: str, alert: dict[str, Any]) -> Event:
        """Number, buffer and fan out one alert (also the entry point for alerts not from MQTT)."""
        self._next_id += 1
        ts = int(alert.get("ts") or time.time_ns() // 1_000_000)
        data = {**alert, "id": self._next_id, "town": town, "ts": ts, "time": iso_ms(ts)}
        event = Event("alert", town, data, self._next_id)
        self._alerts.append(event)
        while len(self._alerts) > self.config.alert_buffer:
            dropped = self._alerts.popleft()
            self._floor = dropped.id or self._floor
        self.stats.alerts += 1
        self._broadcast(event)
        return event

    def _broadcast(self, event: Event) -> None:
        for sub in list(self._subs):
            if sub.wants(event):
                sub.push(event)
            if sub.closed:
                self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        if sub in self._subs:
            self._subs.discard(sub)
            if sub.reason == "client too slow":
                self.stats.clients_cut += 1

    # Streams -----------------------------------------------------------------------------------

    @property
    def last_alert_id(self) -> int:
        return self._next_id

    def latest(self, town: str | None) -> list[dict[str, Any]]:
        """The newest reading of every sensor heard since start (of one town, or all)."""
        return [self._reading_event(k).data for k in sorted(self._latest) if town is None or k[0] == town]

    def subscribe(self, town: str | None, last_event_id: int | None) -> tuple[Subscriber, list[Event]]:
        """Register a stream and return what it must send first. Synchronous on purpose: no alert
        can slip between the replay taken here and the live queue that starts here."""
        sub = Subscriber(town, self.config.client_buffer)
        first: list[Event] = [Event("hello", town, {
            "town": town, "mqtt_connected": self.connected, "coalesce_s": self.config.coalesce_s,
            "last_alert_id": self._next_id, "server_time": iso_ms(time.time_ns() // 1_000_000)})]
        if last_event_id is not None:
            if last_event_id < self._floor:
                # Alerts after that id may have been dropped from the buffer or raised while this
                # process was not running: say so, the client refetches open alerts over REST.
                first.append(Event("gap", town, {"last_event_id": last_event_id, "oldest_id": self._floor + 1}))
            first.extend(e for e in self._alerts if (e.id or 0) > last_event_id and sub.wants(e))
        first.extend(self._reading_event(k) for k in sorted(self._latest) if town is None or k[0] == town)
        self._subs.add(sub)
        return sub, first

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    @property
    def clients(self) -> int:
        return len(self._subs)

    async def stream(self, town: str | None, last_event_id: int | None) -> AsyncIterator[bytes]:
        """The SSE byte stream of one client, until it disconnects or the server stops."""
        sub, first = self.subscribe(town, last_event_id)
        try:
            yield f"retry: {self.config.retry_ms}\n\n".encode() + b"".join(e.encode() for e in first)
            while not sub.closed:
                try:
                    await asyncio.wait_for(sub.wake.wait(), self.config.ping_s)
                except TimeoutError:
                    yield b": ping\n\n"  # keeps proxies from closing an idle stream, detects dead peers
                    continue
                sub.wake.clear()
                batch = b"".join(e.encode() for e in sub.events)
                sub.events.clear()
                if batch:
                    yield batch
            if sub.reason:
                log.info("live: closing a stream: %s", sub.reason)
        finally:
            self.unsubscribe(sub)
