"""The live fan-out: readings coalesced per sensor, alerts buffered for replay, one SSE stream per client.

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
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from heatwatch.core.logging import get_logger
from heatwatch.core.settings import LiveOptions, MqttUrl
from heatwatch.core.timestamps import iso_ms

from .events import Event, Stats, Subscriber
from .feed import Handlers, MqttFeed

log = get_logger("heatwatch.api.live")


class LiveHub:
    def __init__(self, url: MqttUrl, towns: Iterable[str], config: LiveOptions,
                 describe: Callable[[str], dict[str, Any]] | None = None,
                 on_reading: Callable[[str, str, dict[str, Any]], None] | None = None,
                 on_connected: Callable[[bool], None] | None = None) -> None:
        self.config = config
        # Told of every stored reading announced and of the feed's state: what keeps latest's recent readings.
        self._on_reading_cb = on_reading
        self._on_connected_cb = on_connected
        #: sensor id -> the public columns every event about it carries (network, trust: core/trust.py)
        self._describe = describe or (lambda _sensor: {"network": "town", "trust": "official"})
        self.stats = Stats()
        self.connected = False
        self._feed = MqttFeed(url, towns, config, Handlers(self._on_readings, self._on_alerts, self._set_connected,
                                                            self._count_rejected))
        self._loop: asyncio.AbstractEventLoop | None = None
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
        if self.config.enabled:
            self._feed.start(self._loop)

    async def stop(self) -> None:
        for sub in list(self._subs):
            sub.close("server shutting down")
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        await self._feed.stop()

    # From the feed (event loop) ----------------------------------------------------------------

    def _count_rejected(self) -> None:
        self.stats.messages += 1
        self.stats.rejected += 1

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        if self._on_connected_cb is not None:
            self._on_connected_cb(connected)
        self._broadcast(Event("status", None, {"mqtt_connected": connected}))

    def _on_readings(self, town: str, readings: list[tuple[str, dict[str, Any]]] | None) -> None:
        self.stats.messages += 1
        if readings is None:
            self.stats.rejected += 1
            return
        for sensor, reading in readings:
            if self._on_reading_cb is not None:
                self._on_reading_cb(town, sensor, reading)
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
                                       "rssi": r["rssi"], "source": r["source"], **self._describe(sensor)})

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
                log.info("live.stream_closed", reason=sub.reason)
        finally:
            self.unsubscribe(sub)
