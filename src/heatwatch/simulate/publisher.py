"""Publishing a simulation to an MQTT broker, counting only what the broker acknowledged.

One paho-mqtt 2.x client (MQTT 5, QoS 1 by default). A semaphore bounds unacknowledged
messages (paho would otherwise queue without limit in memory); each PUBACK releases a slot, so
"published" in the result means "the broker has it". The client resumes its session on
reconnect (clean start only the first time), and paho re-sends unacknowledged messages then,
so a broker restart mid-run loses nothing. ``workers`` > 1 runs shards in separate processes,
because one paho client tops out around 4-5k messages/s.
"""

from __future__ import annotations

import os
import pickle
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from heatwatch.core.logging import get_logger
from heatwatch.core.model import Sensor
from heatwatch.core.settings import CoreSettings, MqttUrl

from .formats import Message
from .options import Fault, HeatWave, SimOptions
from .schedule import prepare

log = get_logger("heatwatch.simulate")

Target = CoreSettings | MqttUrl | str


@dataclass
class SimulationResult:
    messages: int = 0          # messages acknowledged by the broker (written, for QoS 0)
    readings: int = 0          # readings inside those messages
    failed: int = 0            # messages the broker refused (PUBACK reason code >= 0x80)
    dropped: int = 0           # readings never sent: LoRaWAN devices lose them while offline
    elapsed_s: float = 0.0
    start: datetime | None = None
    end: datetime | None = None  # exclusive; None for a live run stopped from outside
    sensors: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    heatwave: HeatWave | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def merge(self, other: SimulationResult) -> None:
        self.messages += other.messages
        self.readings += other.readings
        self.failed += other.failed
        self.dropped += other.dropped
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)
        self.sensors += other.sensors


def resolve_url(target: Target) -> MqttUrl:
    if isinstance(target, MqttUrl):
        return target
    if isinstance(target, str):
        return MqttUrl.parse(target)
    return target.mqtt


class Publisher:
    """A connected paho client with a bounded window of unacknowledged messages."""

    def __init__(self, url: MqttUrl, *, client_id: str | None = None, qos: int = 1, max_inflight: int = 1000,
                 connect_timeout: float = 10.0, session_expiry_s: int = 3600) -> None:
        self.url = url
        self.qos = qos
        self.client_id = client_id or f"heatwatch-simulate-{os.getpid()}-{int(time.time() * 1000) % 100000}"
        self._max_inflight = max(1, min(max_inflight, 65535))
        self._connect_timeout = connect_timeout
        self._session_expiry_s = session_expiry_s
        self._connected = threading.Event()
        self._connack_error: str | None = None
        self._acks: deque[tuple[int, bool]] = deque()
        self._window: threading.Semaphore | None = None
        self._sent: deque[tuple[mqtt.MQTTMessageInfo, int]] = deque()
        self._failed_mids: set[int] = set()
        self.acked = 0
        self.acked_readings = 0
        self.failed = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5)
        if url.username is not None:
            self.client.username_pw_set(url.username, url.password)
        if url.tls:
            self.client.tls_set(ca_certs=url.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(self._max_inflight)
        self.client.reconnect_delay_set(0.2, 5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    # Lifecycle ---------------------------------------------------------------------

    def connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        # A session that outlives a broker restart, so unacknowledged messages are not lost.
        props.SessionExpiryInterval = self._session_expiry_s
        self.client.connect_async(self.url.host, self.url.port, keepalive=30,
                                  clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=props)
        self.client.loop_start()
        if not self._connected.wait(self._connect_timeout) or self._connack_error:
            self.client.loop_stop()
            raise ConnectionError(f"cannot connect to MQTT broker {self.url.host}:{self.url.port}: "
                                  f"{self._connack_error or 'timeout'}")

    def close(self, timeout: float = 60.0) -> None:
        try:
            self.flush(timeout)
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def __enter__(self) -> Publisher:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Publishing --------------------------------------------------------------------

    def publish(self, msg: Message) -> None:
        """Send one message; blocks while the window of unacknowledged messages is full."""
        assert self._window is not None, "connect() first"
        while not self._window.acquire(timeout=1.0):
            self._drain()
        info = self.client.publish(msg.topic, msg.payload, qos=self.qos)
        self._sent.append((info, len(msg.readings)))
        if len(self._sent) > 4 * self._max_inflight:
            self._drain()

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every message sent so far is acknowledged (or refused)."""
        deadline = time.monotonic() + timeout
        while self._sent:
            self._drain()
            if not self._sent:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._sent)} messages still unacknowledged after {timeout:.0f} s")
            time.sleep(0.005)

    def _drain(self) -> None:
        # Callbacks only append to deques and release the semaphore: taking a lock there could
        # deadlock with paho, which calls on_publish while holding its own message lock.
        while self._acks:
            mid, ok = self._acks.popleft()
            if not ok:
                self._failed_mids.add(mid)
        while self._sent and self._sent[0][0].is_published():
            info, n = self._sent.popleft()
            if info.mid in self._failed_mids:
                self._failed_mids.discard(info.mid)
                self.failed += 1
            else:
                self.acked += 1
                self.acked_readings += n

    # Callbacks (network thread) ----------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._connack_error = str(reason_code)
        elif self._window is None:
            limit = getattr(properties, "ReceiveMaximum", None) if properties is not None else None
            # Our window, not paho's (fixed before connecting), honours the broker's Receive Maximum.
            window = min(self._max_inflight, limit) if limit else self._max_inflight
            self._window = threading.Semaphore(window)
        else:
            log.info("simulate.reconnected", session_present=flags.session_present)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            # paho reconnects and sends again what was not acknowledged.
            log.warning("simulate.disconnected", reason=str(reason_code))

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        self._acks.append((mid, not reason_code.is_failure))
        if self._window is not None:
            self._window.release()


def simulate(target: Target, options: SimOptions | None = None, *,
             sensors: Sequence[Sensor] | None = None, stop: threading.Event | None = None,
             on_message: Callable[[Message], None] | None = None, workers: int = 1,
             now: datetime | None = None) -> SimulationResult:
    """Run a simulation against a broker and return what the broker acknowledged.

    ``target``: settings, a parsed MqttUrl or an ``mqtt://`` URL.
    ``stop``: set it to end a live run. ``on_message`` sees each message once acknowledged-to-be-sent
    (called before publishing, for logs and tests). ``workers`` > 1 publishes sensor shards from
    that many processes (``on_message`` and ``stop`` then do not apply).
    """
    opts = options or SimOptions()
    url = resolve_url(target)
    if workers > 1:
        return _simulate_parallel(url, opts, sensors, workers, now or datetime.now(UTC))
    sim = prepare(opts, sensors, now=now)
    result = SimulationResult(start=sim.start, end=sim.end, sensors=[s.id for s in sim.sensors],
                              faults=sim.faults, heatwave=sim.heatwave)
    started = time.monotonic()
    interval = 1.0 / opts.rate if opts.rate > 0 else 0.0
    next_at = started
    with Publisher(url, client_id=opts.client_id, qos=opts.qos, max_inflight=opts.max_inflight) as pub:
        for msg in sim.messages():
            if stop is not None and stop.is_set():
                result.end = datetime.fromtimestamp(msg.emit_ms / 1000, UTC)
                break
            if opts.live:
                _sleep_until_wall(msg.emit_ms, stop)
                if stop is not None and stop.is_set():
                    result.end = datetime.fromtimestamp(msg.emit_ms / 1000, UTC)
                    break
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at = max(next_at + interval, time.monotonic() - 1.0)  # no burst after a stall
            if on_message is not None:
                on_message(msg)
            pub.publish(msg)
        pub.flush()
        result.messages, result.readings, result.failed = pub.acked, pub.acked_readings, pub.failed
    result.dropped = sim.dropped
    result.elapsed_s = time.monotonic() - started
    return result


def _sleep_until_wall(emit_ms: int, stop: threading.Event | None) -> None:
    while True:
        delay = emit_ms / 1000 - time.time()
        if delay <= 0:
            return
        if stop is not None:
            if stop.wait(min(delay, 1.0)):
                return
        else:
            time.sleep(min(delay, 1.0))


def _simulate_parallel(url: MqttUrl, opts: SimOptions, sensors: Sequence[Sensor] | None, workers: int,
                       now: datetime) -> SimulationResult:
    if opts.live and opts.end is None and opts.duration is None:
        raise ValueError("several workers need a bounded run (end or duration)")
    # Every shard resolves the same range and fault plan from the same 'now' and seed.
    base = prepare(opts, sensors, now=now)
    procs = []
    started = time.monotonic()
    for i in range(workers):
        shard_opts = replace(opts, shard=(i, workers), rate=opts.rate / workers,
                             client_id=f"{opts.client_id}-{i}" if opts.client_id else None,
                             start=base.start, end=base.end)
        proc = subprocess.Popen([sys.executable, "-m", "heatwatch.simulate.shard"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps((url, shard_opts, list(sensors) if sensors is not None else None, now)))
        proc.stdin.close()
        procs.append(proc)
    result = SimulationResult(start=base.start, end=base.end, faults=base.faults, heatwave=base.heatwave)
    errors = []
    for i, proc in enumerate(procs):
        assert proc.stdout is not None
        out = proc.stdout.read()
        if proc.wait() != 0 or not out:
            errors.append(f"worker {i} exited with status {proc.returncode}")
            continue
        result.merge(pickle.loads(out))
    result.elapsed_s = time.monotonic() - started
    if errors:
        raise RuntimeError("; ".join(errors) + f" (acknowledged so far: {result.messages} messages)")
    return result
