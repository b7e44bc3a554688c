"""The ingester's MQTT 5 client: asyncio transport, packets by the ``mqtt5`` codec (Rust, sans-I/O).

What it guarantees is what the delivery guarantee needs and nothing more (docs/ingest.md):

* a persistent session: fixed client id, ``clean_start`` false, a session expiry interval; subscriptions
  at QoS 1 (``$share/<group>/...`` filters work as any other);
* a Receive Maximum, so the broker keeps at most that many deliveries unacknowledged;
* manual acknowledgements: nothing is acknowledged on receipt. :meth:`MqttClient.ack` sends the PUBACKs of
  a batch, in the order given, as one write, and only for deliveries of the connection that is still up:
  after a reconnect the broker redelivers whatever was not acknowledged, and a packet id of the old
  connection may by then name another message of the new one;
* reconnection with exponential backoff (1 s doubling to 10 s, with jitter), TLS (``mqtts://``) and
  username/password from the URL; a keep-alive PINGREQ.

Received PUBLISH packets are handed over as :class:`Received` groups, one per read from the socket: the
time of receipt and the connection are stamped once per group, not once per message. Reading stops
(TCP back-pressure) while a Receive Maximum of messages or more than ``max_buffered_bytes`` of received data
wait to be processed.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import mqtt5

from ..core.logging import get_logger
from ..core.settings import MqttUrl

log = get_logger("heatwatch.ingest.mqtt")

_PUBLISH = mqtt5.PublishPacket
_QOS1 = mqtt5.QoS.AT_LEAST_ONCE
_PINGREQ = mqtt5.PingReqPacket().write()
CONNECT_TIMEOUT_S = 15.0
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 10.0


class MqttProtocolError(Exception):
    """The broker sent something this client cannot accept: the connection is dropped and made again."""


@dataclass(slots=True)
class Received:
    """The PUBLISH packets one read from the socket brought, on one connection, at one time."""

    received_ms: int
    packets: list[mqtt5.PublishPacket]
    connection: object = None  # the _Connection they came on: acknowledged only on that one
    nbytes: int = 0


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to the broker: bytes in, packets out, nothing else."""

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[mqtt5.ConnAckPacket] = asyncio.get_running_loop().create_future()
        self.connack.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "never retrieved" noise
        self.closed: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._rest = b""  # the start of a packet the next read completes
        self._need = 0  # bytes the partial packet needs in all (0: not known yet)
        self.last_rx = time.monotonic()
        self.paused = False

    # asyncio.Protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.client.connect_packet())  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            self.connack.set_exception(exc or ConnectionError("connection closed before CONNACK"))
        if not self.closed.done():
            self.closed.set_result(exc)
        self.client._lost(self, exc)

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        if self._rest:
            data = self._rest + data
            if len(data) < self._need:  # a large packet still arriving: wait for all of it before parsing
                self._rest = data
                return
            self._rest = b""
            self._need = 0
        read = mqtt5.read
        view = memoryview(data)
        end = len(data)
        pos = 0
        publishes: list[mqtt5.PublishPacket] = []
        append = publishes.append
        try:
            while pos < end:
                try:
                    packet, k = read(view[pos:])
                except IndexError:  # a partial packet: keep it for the next read
                    self._rest = data[pos:]
                    self._need = _packet_length(self._rest)
                    break
                pos += k
                if type(packet) is _PUBLISH:
                    append(packet)
                else:
                    self.client._control(self, packet)
        except (ValueError, MqttProtocolError) as exc:  # malformed packet: drop the connection, reconnect
            log.error("mqtt.protocol_error", error=str(exc)[:200])
            self.close()
        finally:
            view.release()
        if publishes:
            self.client._deliver(Received(int(time.time() * 1000), publishes, self, pos))

    # Service side --------------------------------------------------------------------------------------

    def write(self, data: bytes) -> bool:
        t = self.transport
        if t is None or t.is_closing():
            return False
        t.write(data)
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(frozen=True, slots=True)
class PubAcks:
    """The PUBACK packets, end to end, of messages received on ``connection``."""

    connection: object
    data: bytes
    count: int


def _packet_length(head: bytes) -> int:
    """Total length of the packet ``head`` starts (fixed header + remaining length); 0 while unknown.

    Only used to avoid re-parsing a large packet at every read while it arrives; ``mqtt5.read`` still
    decodes it."""
    mult, value = 1, 0
    for i in range(1, min(len(head), 5)):
        b = head[i]
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return 1 + i + value
        mult *= 128
    return 0


@dataclass
class _Pending:
    """Received groups not yet taken by the collector, and how many messages and bytes they hold."""

    groups: deque[Received] = field(default_factory=deque)
    messages: int = 0
    nbytes: int = 0


class MqttClient:
    """A persistent QoS 1 subscriber with manual, batched acknowledgements (see the module docstring)."""

    def __init__(
        self,
        url: MqttUrl,
        client_id: str,
        filters: Iterable[str],
        *,
        session_expiry_s: int,
        receive_maximum: int,
        max_packet_size: int | None = None,
        keepalive_s: int = 30,
        max_buffered_bytes: int = 16 * 1024 * 1024,
        on_event: Callable[[str], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.filters = list(filters)
        self.session_expiry_s = session_expiry_s
        # mosquitto otherwise caps unacknowledged deliveries at max_inflight_messages (20 by default), and
        # acknowledging in batches would stall at 20.
        self.receive_maximum = max(1, min(receive_maximum, 65535))
        self.max_packet_size = max_packet_size
        self.keepalive_s = keepalive_s
        self.max_buffered_bytes = max_buffered_bytes
        self._on_event = on_event or (lambda _e: None)
        if ssl_context is None and url.tls:  # verified against HEATWATCH_MQTT_CA_FILE when set, else the system's CAs
            ssl_context = ssl.create_default_context(cafile=url.ca_file)
        self._ssl = ssl_context
        self.pending = _Pending()
        self.connection: _Connection | None = None  # the connection that is up, CONNACK received
        self.subscribed = False
        self.session_present: bool | None = None
        self.connects = 0
        self.arrived = asyncio.Event()  # set when pending holds `wake_at` messages (see wait_for)
        self.wake_at = 1
        self._packet_id = 0
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    # Packets -------------------------------------------------------------------------------------------

    def connect_packet(self) -> bytes:
        return mqtt5.ConnectPacket(
            self.client_id,
            username=self.url.username,
            password=self.url.password.encode() if self.url.password is not None else None,
            clean_start=False,
            keep_alive=self.keepalive_s,
            session_expiry_interval=self.session_expiry_s,
            receive_max=self.receive_maximum,
            max_packet_size=self.max_packet_size,
        ).write()

    def _next_id(self) -> int:
        self._packet_id = self._packet_id % 65535 + 1
        return self._packet_id

    def _control(self, conn: _Connection, packet: object) -> None:
        """Every packet but PUBLISH, as the protocol reads it."""
        if isinstance(packet, mqtt5.ConnAckPacket):
            if not conn.connack.done():
                conn.connack.set_result(packet)
        elif isinstance(packet, mqtt5.SubAckPacket):
            bad = [c.name for c in packet.reason_codes if int(c) >= 0x80]
            if bad:
                log.error("mqtt.subscribe_refused", filters=self.filters, codes=bad, reason=packet.reason_str)
            else:
                self.subscribed = True
                log.info("mqtt.subscribed", filters=self.filters)
        elif isinstance(packet, mqtt5.DisconnectPacket):
            log.warning("mqtt.disconnected_by_broker", reason=packet.reason_code.name, detail=packet.reason_str)
            conn.close()
        elif isinstance(packet, mqtt5.PingRespPacket | mqtt5.UnsubAckPacket | mqtt5.PubAckPacket):
            pass
        else:
            raise MqttProtocolError(f"unexpected {type(packet).__name__} from the broker")

    def _deliver(self, received: Received) -> None:
        p = self.pending
        p.groups.append(received)
        p.messages += len(received.packets)
        p.nbytes += received.nbytes
        if p.messages >= self.wake_at:
            self.arrived.set()
        conn = received.connection
        if (p.messages >= self.receive_maximum or p.nbytes > self.max_buffered_bytes) \
                and isinstance(conn, _Connection) and not conn.paused:
            # The collector is behind: stop reading, and TCP makes the broker wait. Counting messages matters
            # too: mosquitto 2.0 sends its whole queue past the Receive Maximum once acknowledgements come.
            conn.paused = True
            conn.transport.pause_reading()  # type: ignore[union-attr]

    def _lost(self, conn: _Connection, exc: BaseException | None) -> None:
        if conn is self.connection:
            self.connection = None
            self.subscribed = False
            log.warning("mqtt.disconnected", reason=str(exc) if exc else "closed")
            self._on_event("disconnect")

    # Collector side ------------------------------------------------------------------------------------

    def wait_for(self, messages: int) -> None:
        """Arm :attr:`arrived` to be set once ``messages`` are pending (already set if they are)."""
        self.wake_at = messages
        if self.pending.messages >= messages:
            self.arrived.set()
        else:
            self.arrived.clear()

    def take(self, limit: int) -> list[Received]:
        """At most ``limit`` pending messages, oldest first, in their groups."""
        p = self.pending
        out: list[Received] = []
        n = 0
        while p.groups and n < limit:
            g = p.groups[0]
            k = len(g.packets)
            if n + k > limit:  # split the group: the rest stays first in line
                cut = limit - n
                head = Received(g.received_ms, g.packets[:cut], g.connection, g.nbytes * cut // k)
                g.packets = g.packets[cut:]
                g.nbytes -= head.nbytes
                g = head
                k = cut
            else:
                p.groups.popleft()
            out.append(g)
            n += k
            p.nbytes -= g.nbytes
        p.messages -= n
        conn = self.connection
        if conn is not None and conn.paused and p.nbytes <= self.max_buffered_bytes // 2 \
                and p.messages <= self.receive_maximum // 2:
            conn.paused = False
            conn.transport.resume_reading()  # type: ignore[union-attr]
        return out

    @staticmethod
    def pubacks(groups: Sequence[Received]) -> list[PubAcks]:
        """The PUBACKs of the QoS 1 messages of ``groups``, by connection, made before they are due: a batch
        waiting for its write then holds 4 bytes per message, not the messages."""
        puback = mqtt5.PubAckPacket
        out: list[PubAcks] = []
        for g in groups:
            acks = [puback(pid).write() for p in g.packets if (pid := p.packet_id)]
            if acks:
                out.append(PubAcks(g.connection, b"".join(acks), len(acks)))
        return out

    def ack(self, pubacks: Sequence[PubAcks]) -> int:
        """Send, in order and in one write, the PUBACKs of messages that came on the connection still up;
        returns how many. The others will be redelivered by the broker."""
        conn = self.connection
        if conn is None:
            return 0
        mine = [a for a in pubacks if a.connection is conn]
        if mine:
            conn.write(b"".join(a.data for a in mine))
        return sum(a.count for a in mine)

    def publish(self, topic: str, payload: bytes) -> None:
        """Fire-and-forget (QoS 0) on the ingester's own connection: for the live feed only."""
        conn = self.connection
        if conn is not None:
            conn.write(_PUBLISH(topic, payload).write())

    # Lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt")

    async def stop(self) -> None:
        """DISCONNECT (the session stays, for its expiry interval) and close."""
        self._closing = True
        conn = self.connection
        if conn is not None and conn.write(mqtt5.DisconnectPacket().write()):
            # The broker closes the connection on DISCONNECT. Closing first would reset it (RST) if a delivery
            # is still unread on this side, and the broker would drop the last PUBACKs with it.
            t = conn.transport
            if t is not None and t.can_write_eof():
                t.write_eof()
            try:
                await asyncio.wait_for(asyncio.shield(conn.closed), 5)
            except TimeoutError:
                conn.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = BACKOFF_MIN_S
        while not self._closing:
            conn: _Connection | None = None
            try:
                _t, conn = await asyncio.wait_for(
                    loop.create_connection(lambda: _Connection(self), self.url.host, self.url.port, ssl=self._ssl),
                    CONNECT_TIMEOUT_S)
                connack = await asyncio.wait_for(asyncio.shield(conn.connack), CONNECT_TIMEOUT_S)
                if connack.reason_code != mqtt5.ConnAckReasonCode.SUCCESS:
                    log.error("mqtt.connect_refused", reason=connack.reason_code.name, detail=connack.reason_str)
                    conn.close()
                else:
                    delay = BACKOFF_MIN_S
                    await self._session(conn, connack)
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                log.warning("mqtt.connect_failed", host=self.url.host, port=self.url.port, error=str(exc) or repr(exc),
                            retry_s=delay)
                if conn is not None:
                    conn.close()
            if self._closing:
                break
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _session(self, conn: _Connection, connack: mqtt5.ConnAckPacket) -> None:
        self.connection = conn
        self.connects += 1
        self.session_present = connack.session_present
        log.info("mqtt.connected", session_present=connack.session_present, generation=self.connects,
                 receive_maximum=self.receive_maximum, broker_receive_maximum=connack.receive_max)
        self._on_event("connect")
        # Re-subscribing on a present session is harmless and covers an expired one; retained messages are
        # sent again only to a new subscription.
        conn.write(mqtt5.SubscribePacket(self._next_id(), [
            mqtt5.TopicFilter(f, max_qos=_QOS1, retain_handling=mqtt5.RetainHandling.SEND_IF_SUBSCRIPTION_NOT_EXISTS)
            for f in self.filters]).write())
        keepalive = connack.server_keep_alive or self.keepalive_s
        while not conn.closed.done():
            try:
                await asyncio.wait_for(asyncio.shield(conn.closed), keepalive / 2)
            except TimeoutError:
                if not conn.paused and time.monotonic() - conn.last_rx > keepalive * 1.5:
                    log.warning("mqtt.keepalive_timeout", silent_s=round(time.monotonic() - conn.last_rx, 1))
                    conn.close()
                    break
                conn.write(_PINGREQ)
        await asyncio.shield(conn.closed)
