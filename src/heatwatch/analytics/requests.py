"""Recompute requests over MQTT: the analytics end of ``POST /v1/admin/recompute``.

The api publishes a :class:`~heatwatch.core.topics.RecomputeRequest` at QoS 1 on ``heatwatch/recompute``;
the two services never import each other: the topic, the message models and the 3660-day cap are the
kernel's (:mod:`heatwatch.core.topics`).

Delivery: a fixed client id with a persistent MQTT 5 session (``clean_start=False`` and a session
expiry), so the broker queues requests made while analytics is down and hands them over when it
starts. Requests are handled one at a time and acknowledged (manual ack) only once handled: a
request interrupted by a stop or a crash is redelivered at the next start, and since a recompute is
idempotent, running it twice only costs time. The session exists once analytics has connected
once: a request published before analytics ever started has no queue to wait in.

Outcome: logged, and published at QoS 1 on ``heatwatch/recompute/done`` as a
:class:`~heatwatch.core.topics.RecomputeDone` (``id``, ``status``, the range and counts): ``done``,
``failed`` (still failing after retries, e.g. InfluxDB down
for minutes) or ``rejected`` (invalid request; dropped, as redelivering it would never help).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from heatwatch.core.logging import get_logger
from heatwatch.core.mqtt import Connections, connect_properties, make_client
from heatwatch.core.settings import AnalyticsSettings
from heatwatch.core.topics import (
    RECOMPUTE,
    RECOMPUTE_DONE,
    InvalidRequest,
    RecomputeDone,
    RecomputeRequest,
    parse_request,
)

from .jobs import RunStats

log = get_logger("heatwatch.analytics.requests")

RETRY_DELAYS_S = (5.0, 30.0)  # then the request is given up as failed
REMEMBERED_IDS = 1000


def client_id_for(settings: AnalyticsSettings) -> str:
    # Its own id: the alert publisher already connects as analytics_mqtt_client_id, and two clients
    # with one id keep disconnecting each other. Fixed, because the queued session is keyed on it.
    return f"{settings.analytics_mqtt_client_id}-recompute"[:64]


Handler = Callable[[RecomputeRequest], Awaitable[list[RunStats]]]


@dataclass(slots=True)
class _Delivery:
    mid: int
    qos: int
    payload: bytes
    generation: int


class RecomputeRequests:
    """The subscriber: paho's network thread hands each message to the event loop, where
    :meth:`run` handles them in arrival order with ``handler`` and acknowledges each afterwards."""

    def __init__(self, settings: AnalyticsSettings, towns: Collection[str], handler: Handler, *,
                 client_id: str | None = None, retry_delays_s: Sequence[float] = RETRY_DELAYS_S) -> None:
        self.url = settings.mqtt
        self.client_id = client_id or client_id_for(settings)
        self.towns = frozenset(towns)
        self.handler = handler
        self.retry_delays_s = tuple(retry_delays_s)
        self.subscribed = asyncio.Event()
        self._props = connect_properties(session_expiry_s=settings.mqtt_session_expiry_s)
        self._client = make_client(self.url, self.client_id, manual_ack=True)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._message
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections = Connections()
        self._handled: OrderedDict[str, None] = OrderedDict()
        self._pending: list[mqtt.MQTTMessageInfo] = []

    # paho callbacks (network thread) -----------------------------------------------------

    def _connected(self, client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, rc: object, _p: object) -> None:
        if getattr(rc, "is_failure", False):
            log.error("recompute.connect_refused", reason=str(rc))
            return
        self._connections.connected()
        log.info("recompute.connected", session_present=flags.session_present, client_id=self.client_id)
        # Subscribing again on a present session is harmless, and covers an expired one.
        client.subscribe([(RECOMPUTE, SubscribeOptions(qos=1))])

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, codes: list, _p: object) -> None:
        bad = [str(c) for c in codes if getattr(c, "is_failure", False)]
        if bad:
            log.error("recompute.subscribe_refused", topic=RECOMPUTE, codes=bad)
            return
        log.info("recompute.subscribed", topic=RECOMPUTE)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.subscribed.set)

    def _disconnected(self, _c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.subscribed.clear)
        # Our own disconnect at stop is routine; anything else is worth a warning (paho reconnects).
        failed = getattr(rc, "is_failure", True)
        (log.warning if failed else log.info)("recompute.disconnected", reason=str(rc))

    def _message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if self._loop is not None:
            item = _Delivery(msg.mid, msg.qos, msg.payload, self._connections.generation)
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    # Event loop side ------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.url.host, self.url.port, keepalive=30, clean_start=False,
                                   properties=self._props)
        self._client.loop_start()

    def close(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        for info in self._pending:  # the last outcome notices, so a requester is not left waiting
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                break
        self._client.disconnect()
        self._client.loop_stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Handle requests until ``stop`` is set; the one being handled then is finished first
        (the caller may cancel it: it stays unacknowledged and comes back at the next start)."""
        self.start()
        try:
            while (delivery := await self._next(stop)) is not None:
                await self._handle(delivery, stop)
        finally:
            self.close()

    async def _next(self, stop: asyncio.Event) -> _Delivery | None:
        if stop.is_set():
            return None
        get = asyncio.ensure_future(self._queue.get())
        halt = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({get, halt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (get, halt):
                t.cancel()
        # A delivery taken just as the stop came stays unacknowledged: the broker keeps it.
        return None if stop.is_set() or not get.done() or get.cancelled() else get.result()

    def _ack(self, d: _Delivery) -> None:
        for mid in self._connections.ackable([d]):
            self._client.ack(mid, d.qos)

    def _remember(self, rid: str) -> None:
        self._handled[rid] = None
        while len(self._handled) > REMEMBERED_IDS:
            self._handled.popitem(last=False)

    def _notify(self, body: dict[str, Any]) -> None:
        body["finished_at"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        done = RecomputeDone.model_validate(body)
        info = self._client.publish(RECOMPUTE_DONE, done.encode(), qos=1)
        self._pending = [i for i in self._pending if not i.is_published()] + [info]

    async def _handle(self, d: _Delivery, stop: asyncio.Event) -> None:
        try:
            req = parse_request(d.payload, self.towns)
        except InvalidRequest as exc:
            log.warning("recompute.rejected", id=exc.request_id, reason=str(exc), payload=d.payload[:200])
            if exc.request_id is not None:
                self._notify({"id": exc.request_id, "status": "rejected", "error": str(exc)})
            self._ack(d)
            return
        if req.id in self._handled:
            # A redelivery (the ack was lost with a connection): done already, just acknowledge.
            log.info("recompute.duplicate", id=req.id)
            self._ack(d)
            return
        requested = req.requested_at.isoformat() if req.requested_at else None
        log.info("recompute.started", **req.describe(), requested_at=requested)
        t0 = time.perf_counter()
        stats: list[RunStats] | None = None
        error = ""
        for attempt, delay in enumerate((*self.retry_delays_s, None), start=1):
            try:
                stats = await self.handler(req)
                break
            except Exception as exc:  # InfluxDB down, a bug in a job: retried, then reported
                error = repr(exc)
                if delay is None:
                    break
                log.warning("recompute.retrying", id=req.id, attempt=attempt, in_s=delay, error=error)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return  # stopping: unacknowledged, so it runs again at the next start
                except TimeoutError:
                    pass
        seconds = round(time.perf_counter() - t0, 3)
        if stats is None:
            log.error("recompute.failed", **req.describe(), error=error, seconds=seconds)
            self._notify({**req.describe(), "status": "failed", "error": error, "seconds": seconds})
        else:
            readings = sum(s.readings for s in stats)
            points = sum(sum(s.points.values()) for s in stats)
            erased: dict[str, int] = {}
            for s in stats:
                for m, n in s.erased.items():
                    erased[m] = erased.get(m, 0) + n
            more = {"erased": erased} if req.erase else {}
            log.info("recompute.done", **req.describe(), readings=readings, points=points, seconds=seconds, **more)
            self._notify({**req.describe(), "status": "done", "readings": readings, "points": points,
                          "seconds": seconds, **more})
        self._remember(req.id)
        self._ack(d)
