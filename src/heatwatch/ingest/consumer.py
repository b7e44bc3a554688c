"""The MQTT side of ingest: a persistent QoS 1 session with manual acknowledgements.

paho's network thread only appends each message to :attr:`MqttConsumer.inbox`, so it is
never held up by decoding or writing. Acknowledgements go back in arrival order, and only
for messages of the current connection (:class:`heatwatch.core.mqtt.Connections`).
"""

from __future__ import annotations

import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..core.logging import get_logger
from ..core.mqtt import Connections, connect_properties, make_client
from ..core.settings import MqttUrl

log = get_logger("heatwatch.ingest.mqtt")
_PUBACK = struct.Struct("!BBH")


class _BufferedSocket:
    """A plain TCP socket read 64 KiB at a time.

    paho reads each packet's fixed header byte by byte, one ``recv`` system call each, which
    was a good part of the ingester's CPU. It checks ``pending()`` (as on TLS sockets) before
    waiting in ``select``, so bytes held here are never left waiting.
    """

    __slots__ = ("_buf", "_pos", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        if self._pos >= len(self._buf):
            self._buf = self._sock.recv(65536)  # BlockingIOError when empty, b"" at end of stream
            self._pos = 0
        data = self._buf[self._pos:self._pos + n]
        self._pos += len(data)
        return data

    def pending(self) -> int:
        return len(self._buf) - self._pos

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class _Client(mqtt.Client):
    """paho's client with the per-message costs of the ingest hot path cut down.

    These use paho 2.x internals, pinned by the <3 bound in pyproject and exercised by every
    ingest test: reads are buffered (plain TCP only; TLS and websocket sockets are left as
    paho makes them) and each wake-up of the network thread handles every whole packet
    already read instead of one; a batch's PUBACKs leave as one write instead of one queue
    entry, one wake-up and one ``send`` each; and messages go straight to ``on_message``
    without the per-message topic-trie walk for ``message_callback_add``, which ingest never uses.
    """

    def _create_socket(self):  # type: ignore[no-untyped-def]
        sock = super()._create_socket()
        return _BufferedSocket(sock) if type(sock) is socket.socket else sock

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        sock = self._sock
        if isinstance(sock, _BufferedSocket):
            # A partial packet left in the buffer ends the loop: its read raises "again".
            for _ in range(10_000):
                if rc != mqtt.MQTT_ERR_SUCCESS or not sock.pending() or self._sock is not sock:
                    break
                rc = super().loop_read(max_packets)
        return rc

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        on_message = self.on_message
        if on_message is not None:
            with self._in_callback_mutex:
                on_message(self, self._userdata, message)

    def ack_many(self, mids: list[int]) -> None:
        if mids:
            # PUBACK with remaining length 2 means reason "success" in MQTT 5 as in 3.1.1.
            blob = b"".join(_PUBACK.pack(0x40, 2, mid) for mid in mids)
            self._packet_queue(PUBACK, blob, 0, 0)


@dataclass(slots=True)
class Message:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int
    generation: int


class MqttConsumer:
    def __init__(
        self,
        url: MqttUrl,
        client_id: str,
        filters: Iterable[str],
        *,
        session_expiry_s: int,
        receive_maximum: int,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.filters = list(filters)
        self.inbox: deque[Message] = deque()
        self.connections = Connections()
        self.subscribed = False
        self._on_event = on_event or (lambda _e: None)
        self._props = connect_properties(session_expiry_s=session_expiry_s, receive_maximum=receive_maximum)
        self._client = make_client(url, client_id, manual_ack=True, client_class=_Client)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_subscribe = self._subscribed
        self._client.on_message = self._message

    # paho callbacks (network thread) -----------------------------------------------------

    def _connected(self, client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, rc: object, _p: object) -> None:
        if getattr(rc, "is_failure", False):
            log.error("mqtt.connect_refused", reason=str(rc))
            return
        generation = self.connections.connected()
        log.info("mqtt.connected", session_present=flags.session_present, generation=generation)
        self._on_event("connect")
        # Re-subscribing on a present session is harmless, and covers an expired one.
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.filters])

    def _subscribed(self, _c: mqtt.Client, _u: object, _mid: int, codes: list, _p: object) -> None:
        bad = [str(c) for c in codes if getattr(c, "is_failure", False)]
        if bad:
            log.error("mqtt.subscribe_refused", filters=self.filters, codes=bad)
            return
        self.subscribed = True
        log.info("mqtt.subscribed", filters=self.filters)

    def _disconnected(self, _c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        self.subscribed = False
        log.warning("mqtt.disconnected", reason=str(rc))
        self._on_event("disconnect")

    def _message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.inbox.append(
            Message(msg.mid, msg.qos, msg.topic, msg.payload, int(time.time() * 1000),
                    self.connections.generation)
        )

    # Service side ---------------------------------------------------------------------------

    def start(self) -> None:
        self._client.connect_async(
            self.url.host, self.url.port, keepalive=30, clean_start=False, properties=self._props
        )
        self._client.loop_start()

    def ack(self, messages: Iterable[Message]) -> int:
        """Acknowledge, in order, the messages of the current connection; returns how many."""
        # QoS 2 never arrives: subscriptions are made at QoS 1, so the broker downgrades it.
        mids = self.connections.ackable(messages)
        self._client.ack_many(mids)  # type: ignore[attr-defined]
        return len(mids)

    def publish(self, topic: str, payload: bytes) -> None:
        """Fire-and-forget (QoS 0) on the ingester's own connection: for the live feed only."""
        self._client.publish(topic, payload, qos=0)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
