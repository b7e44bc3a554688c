"""paho-mqtt client construction shared by the ingester, the alert publisher and the simulator."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .settings import MqttUrl


def make_client(url: MqttUrl, client_id: str = "", *, manual_ack: bool = False,
                client_class: type[mqtt.Client] = mqtt.Client) -> mqtt.Client:
    client = client_class(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack
    )
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.tls:
        # The broker's certificate is always verified, against HEATWATCH_MQTT_CA_FILE when set (a private or
        # self-signed CA: deploy/gen-dev-cert.sh) or the system's CAs.
        client.tls_set(ca_certs=url.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


def connect_properties(*, session_expiry_s: int = 0, receive_maximum: int | None = None) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    if session_expiry_s:
        props.SessionExpiryInterval = session_expiry_s
    if receive_maximum:
        # Without it mosquitto caps unacknowledged deliveries at max_inflight_messages (20 by
        # default), and manual acks in batches would stall at 20.
        props.ReceiveMaximum = min(receive_maximum, 65535)
    return props


class Delivery(Protocol):
    """A message received with manual acknowledgement, stamped with the connection it came on."""

    mid: int
    qos: int
    generation: int


class Connections:
    """Numbers the connections of one MQTT client, so that a delivery is acknowledged only on the
    connection it arrived on.

    After a reconnect the broker redelivers whatever was not acknowledged, and the packet id of a
    message from the old connection may by then name another message of the new one: acknowledging
    it would acknowledge a message that is not handled (or not durable) yet. Call :meth:`connected`
    from ``on_connect``, stamp each delivery with :attr:`generation`, and ack only :meth:`ackable`.
    """

    __slots__ = ("generation",)

    def __init__(self) -> None:
        self.generation = 0

    def connected(self) -> int:
        self.generation += 1
        return self.generation

    def ackable(self, deliveries: Iterable[Delivery]) -> list[int]:
        """Packet ids of the deliveries to acknowledge now, in order: QoS > 0, this connection's."""
        current = self.generation
        return [d.mid for d in deliveries if d.qos > 0 and d.generation == current]
