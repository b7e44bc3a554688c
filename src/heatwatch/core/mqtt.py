"""paho-mqtt client construction shared by the ingester, the alert publisher and the simulator."""

from __future__ import annotations

import ssl

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
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
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
