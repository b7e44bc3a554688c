"""The ingester's MQTT client against the real mosquitto's protocol edge cases.

Each test drives :class:`heatwatch.ingest.client.MqttClient` directly (no InfluxDB): session present
after a broker restart, Receive Maximum honoured, oversized packets, a broker-side disconnect in the
middle of a batch, credentials.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from heatwatch.core.settings import MqttUrl
from heatwatch.ingest.client import MqttClient, Received
from heatwatch.stack.embedded import Mosquitto
from support.mqtt import publish_all

pytestmark = pytest.mark.slow


def client(url: str, client_id: str, topic: str = "edge/#", **kw) -> MqttClient:
    kw.setdefault("receive_maximum", 1000)
    return MqttClient(MqttUrl.parse(url), client_id, [topic], session_expiry_s=600, **kw)


async def until(cond: Callable[[], bool], what: str = "condition", within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


async def publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    assert await asyncio.to_thread(publish_all, url, messages) == len(messages)


def payloads(groups: list[Received]) -> list[bytes]:
    return [p.payload for g in groups for p in g.packets]


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 120))


def test_session_present_after_a_broker_restart_and_queued_messages_delivered(tmp_path: Path):
    broker = Mosquitto(tmp_path / "mosquitto").start()

    async def main() -> None:
        c = client(broker.url, "edge-session")
        c.start()
        await until(lambda: c.subscribed, what="subscribed")
        assert c.session_present is False
        await c.stop()
        # The session outlives the connection and the broker: messages queue for it meanwhile.
        msgs = [(f"edge/s/{i}", b"%d" % i) for i in range(200)]
        await publish(broker.url, msgs)
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start)
        c = client(broker.url, "edge-session")
        c.start()
        await until(lambda: c.pending.messages == 200, what="queued messages delivered")
        assert c.session_present is True
        groups = c.take(1000)
        assert payloads(groups) == [p for _, p in msgs]  # in publish order
        assert c.ack(c.pubacks(groups)) == 200
        await c.stop()

    try:
        run(main)
    finally:
        broker.stop()


def test_receive_maximum_is_honoured(mosquitto):
    """The broker stops at the client's Receive Maximum while nothing is acknowledged.

    Once acknowledgements come, mosquitto 2.0.11 (Debian 12's) sends its whole queue at once rather than a
    window at a time (its quota is not charged for queued messages it moves in flight): the client takes
    them all, in order, and its read bound (``max_buffered_bytes``) is what bounds its memory then."""

    async def main() -> None:
        c = client(mosquitto.url, "edge-rmax", "edge/rmax/#", receive_maximum=50)
        c.start()
        await until(lambda: c.subscribed, what="subscribed")
        await publish(mosquitto.url, [(f"edge/rmax/{i % 7}", b"%d" % i) for i in range(300)])
        await until(lambda: c.pending.messages >= 50, what="a window of deliveries")
        await asyncio.sleep(0.5)  # the broker would overshoot now if it ignored the Receive Maximum
        assert c.pending.messages == 50
        got: list[bytes] = []
        while len(got) < 300:
            groups = c.take(1000)
            got += payloads(groups)
            assert c.ack(c.pubacks(groups)) == len(payloads(groups))
            if len(got) < 300:
                await until(lambda: c.pending.messages > 0, what="more deliveries")
        assert got == [b"%d" % i for i in range(300)]
        await c.stop()

    run(main)


def test_oversized_packets(mosquitto):
    """A packet larger than one read is put together; one above the client's Maximum Packet Size is
    discarded by the broker (MQTT 5 §3.1.2.11.4) and the stream goes on behind it."""

    async def main() -> None:
        c = client(mosquitto.url, "edge-size", "edge/size/#", max_packet_size=900 * 1024)
        c.start()
        await until(lambda: c.subscribed, what="subscribed")
        big = bytes(range(256)) * 3000  # 768 000 bytes: many socket reads
        await publish(mosquitto.url, [("edge/size/a", b"first"), ("edge/size/b", big),
                                      ("edge/size/c", b"x" * 1_000_000), ("edge/size/d", b"last")])
        await until(lambda: c.pending.messages >= 3, what="deliveries")
        await asyncio.sleep(0.5)
        groups = c.take(1000)
        assert payloads(groups) == [b"first", big, b"last"]
        assert c.ack(c.pubacks(groups)) == 3
        await c.stop()

    run(main)


def test_broker_side_disconnect_mid_batch(mosquitto):
    """The broker drops the connection (here: a session take-over) while a batch is unacknowledged: those
    deliveries are not acknowledged on the next connection (their packet ids may name other messages
    there); the broker redelivers them, and they are acknowledged once, on the connection they came on."""

    async def main() -> None:
        c = client(mosquitto.url, "edge-drop", "edge/drop/#")
        c.start()
        await until(lambda: c.subscribed, what="subscribed")
        msgs = [(f"edge/drop/{i % 5}", b"%d" % i) for i in range(100)]
        await publish(mosquitto.url, msgs)
        await until(lambda: c.pending.messages == 100, what="first deliveries")
        first = c.take(1000)
        before = c.connects
        # Another connection with the same client id takes the session over: mosquitto closes this one.
        # The intruder leaves without acknowledging anything.
        intruder = client(mosquitto.url, "edge-drop", "edge/drop/#")
        intruder.start()
        await until(lambda: intruder.connects == 1, what="take-over")
        await intruder.stop()
        await until(lambda: c.connects > before and c.pending.messages == 100, what="reconnect and redelivery")
        assert c.ack(c.pubacks(first)) == 0  # the old connection's deliveries: not acknowledged on this one
        again = c.take(1000)
        assert sorted(payloads(again)) == sorted(p for _, p in msgs)
        assert all(p.duplicate for g in again for p in g.packets)
        assert c.ack(c.pubacks(again)) == 100
        await c.stop()  # right after the acks: they must reach the broker all the same
        # Nothing is left unacknowledged in the session: a new connection gets no redelivery.
        c = client(mosquitto.url, "edge-drop", "edge/drop/#")
        c.start()
        await until(lambda: c.subscribed, what="subscribed again")
        await asyncio.sleep(0.5)
        assert c.pending.messages == 0 and c.session_present
        await c.stop()

    run(main)


def test_credentials(tmp_path: Path):
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "ingest", "s3cret:/@"], check=True)
    broker = Mosquitto(tmp_path / "mosquitto", extra_conf=f"allow_anonymous false\npassword_file {passwd}\n").start()
    port = broker.port

    async def main() -> None:
        wrong = client(f"mqtt://ingest:nope@127.0.0.1:{port}", "edge-auth")
        wrong.start()
        await asyncio.sleep(1.5)
        assert wrong.connects == 0 and not wrong.subscribed
        await wrong.stop()
        right = client(f"mqtt://ingest:s3cret%3A%2F%40@127.0.0.1:{port}", "edge-auth")
        right.start()
        await until(lambda: right.subscribed, what="subscribed with the right password")
        await right.stop()

    try:
        run(main)
    finally:
        broker.stop()
