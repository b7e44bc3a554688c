"""The MQTT side of ingest: a persistent QoS 1 session with manual acknowledgements.

paho's network thread only appends each message to :attr:`MqttConsumer.inbox`, so it is
never held up by decoding or writing. Acknowledgements go back in arrival order, and only
for messages of the current connection: after a reconnect the broker redelivers whatever
was not acknowledged, and acknowledging an old packet id on the new connection could
acknowledge a different, not yet durable, message that reuses the id.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..core.logging import get_logger
from ..core.mqtt import connect_properties, make_client
from ..core.settings import MqttUrl

log = get_logger("heatwatch.ingest.mqtt")


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
        self.generation = 0
        self.subscribed = False
        self._on_event = on_event or (lambda _e: None)
        self._props = connect_properties(session_expiry_s=session_expiry_s, receive_maximum=receive_maximum)
        self._client = make_client(url, client_id, manual_ack=True)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_subscribe = self._subscribed
        self._client.on_message = self._message

    # paho callbacks (network thread) -----------------------------------------------------

    def _connected(self, client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, rc: object, _p: object) -> None:
        if getattr(rc, "is_failure", False):
            log.error("mqtt.connect_refused", reason=str(rc))
            return
        self.generation += 1
        log.info("mqtt.connected", session_present=flags.session_present, generation=self.generation)
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
            Message(msg.mid, msg.qos, msg.topic, msg.payload, int(time.time() * 1000), self.generation)
        )

    # Service side ---------------------------------------------------------------------------

    def start(self) -> None:
        self._client.connect_async(
            self.url.host, self.url.port, keepalive=30, clean_start=False, properties=self._props
        )
        self._client.loop_start()

    def ack(self, messages: Iterable[Message]) -> int:
        """Acknowledge, in order, the messages of the current connection; returns how many."""
        n = 0
        current = self.generation
        for m in messages:
            if m.qos > 0 and m.generation == current:
                self._client.ack(m.mid, m.qos)
                n += 1
        return n

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
