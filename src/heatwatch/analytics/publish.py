"""MQTT publisher of alert events: one long-lived paho client, QoS 1.

paho keeps QoS 1 messages published while disconnected and sends them once its network loop
has reconnected, so a broker restart delays alerts instead of dropping them; a broker that never
comes back only loses notifications, since every alert is stored in InfluxDB first.
"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from heatwatch.core.logging import get_logger
from heatwatch.core.mqtt import make_client
from heatwatch.core.settings import MqttUrl

log = get_logger("heatwatch.analytics.publish")


class MqttPublisher:
    def __init__(self, url: MqttUrl, client_id: str = "heatwatch-analytics") -> None:
        self.url = url
        self.client = make_client(url, client_id)
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self._pending: list[mqtt.MQTTMessageInfo] = []

    def _on_connect(self, _c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("alerts.mqtt_refused", reason=str(rc))
            return
        self.connected.set()
        log.info("alerts.mqtt_connected", host=self.url.host, port=self.url.port)

    def _on_disconnect(self, *_a: object) -> None:
        self.connected.clear()

    def start(self, wait_s: float = 5.0) -> MqttPublisher:
        # connect_async + loop_start: the loop keeps retrying while the broker is down.
        self.client.connect_async(self.url.host, self.url.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(wait_s):
            log.warning("alerts.mqtt_not_connected", host=self.url.host, port=self.url.port)
        return self

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        self._pending = [i for i in self._pending if not i.is_published()] + [info]

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait for the broker to acknowledge what was published; False if some are still pending."""
        for info in self._pending:
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                return False
        done = all(i.is_published() for i in self._pending)
        self._pending = [i for i in self._pending if not i.is_published()]
        return done

    def close(self, timeout: float = 5.0) -> None:
        if not self.flush(timeout):
            log.warning("alerts.mqtt_unacknowledged", pending=len(self._pending))
        self.client.disconnect()
        self.client.loop_stop()
