"""The ingest service: MQTT in, InfluxDB (or the spool) out, acknowledgements only once durable.

Three stages run concurrently so decoding the next batch overlaps writing the current one:

    MQTT client (socket reads) ──▶ pending ──collect+decode──▶ queue(2) ──store, dead-letter, ack──▶ broker

All three run on one event loop: while a batch's write waits for InfluxDB, the next one is read and
decoded. The store stage is a single task, so batches become durable and are acknowledged strictly
in arrival order.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from prometheus_client import start_http_server

from ..core.deadletters import DeadLetter, DeadLetterStore
from ..core.influx import InfluxClient
from ..core.logging import get_logger
from ..core.model import Reading
from ..core.registry import Registry
from ..core.settings import IngestSettings
from ..core.topics import encode_live, live_topic
from .client import MqttClient, PubAcks
from .decoders import decoders_for, network_from_settings
from .metrics import IngestMetrics
from .pipeline import Pipeline, Processed
from .sink import Sink
from .spool import Spool
from .validate import Validator

log = get_logger("heatwatch.ingest")

# How often the operator's device profile file is checked for changes (a stat call).
PROFILE_RECHECK_S = 2.0
# A batch not yet full is written once no message has arrived for this long.
QUIET_S = 0.05


def max_packet_size(max_payload_bytes: int) -> int:
    """The Maximum Packet Size the ingester announces: payloads up to 4× the accepted size still arrive (and
    are dead-lettered "oversized", so they are seen), and never less than the 1 MiB mosquitto's deployed
    configuration lets through; the ingester's memory stays bounded whatever a publisher sends."""
    return max(4 * max_payload_bytes, 1024 * 1024) + 64 * 1024


@dataclass(slots=True)
class _Batch:
    pubacks: list[PubAcks]
    messages: int
    processed: Processed


class IngestService:
    def __init__(self, settings: IngestSettings, *, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self._unregistered: list[tuple[str, str]] = []  # sensors seen for the first time, not yet registered
        self._registering: asyncio.Queue[list[tuple[str, str]]] = asyncio.Queue()
        self.metrics = IngestMetrics()
        self.deadletters = DeadLetterStore.from_settings(settings)
        self.influx = InfluxClient.from_settings(settings)
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        self.sink = Sink(self.influx, self.spool, self.metrics, self._dead, raw_retention=settings.raw_retention)
        # One set of LoRaWAN placement rules and device profiles for every network server's decoder.
        network = network_from_settings(settings)
        self.profiles = network.source
        self.pipeline = Pipeline(
            settings.subscriptions,
            Validator(towns=set(settings.towns), backlog_ms=int(settings.backlog_window.total_seconds() * 1000)),
            max_payload_bytes=settings.max_payload_bytes,
            devices=registry,
            decoders=decoders_for(settings, network),
            ignore=settings.ignore_filters,
            # Registering a new sensor is an SQLite commit (an fsync): done by a thread, off the hot path.
            on_sensor=self._note_sensor if registry is not None else None,
        )
        group = settings.mqtt_shared_group
        filters = [f"$share/{group}/{s.filter}" if group else s.filter for s in settings.subscriptions]
        self.consumer = MqttClient(
            settings.mqtt,
            settings.mqtt_client_id,
            filters,
            session_expiry_s=settings.mqtt_session_expiry_s,
            # Room for the batch being written, the one being decoded and the one arriving.
            receive_maximum=max(settings.batch_size * 4, 1000),
            # Larger payloads are dead-lettered "oversized"; beyond this the broker drops them (MQTT 5 §3.1.2.11.4).
            max_packet_size=max_packet_size(settings.max_payload_bytes),
            on_event=self._mqtt_event,
        )

    def _note_sensor(self, town: str, sensor: str) -> None:
        self._unregistered.append((town, sensor))

    def _register(self, sensors: list[tuple[str, str]]) -> None:
        assert self.registry is not None
        for town, sensor in sensors:
            try:
                self.registry.ensure(town, sensor)
            except Exception as exc:  # a registry problem must not stop ingest: the readings are stored
                log.error("ingest.register_failed", town=town, sensor=sensor, error=str(exc))

    async def _register_loop(self) -> None:
        while True:
            sensors = await self._registering.get()
            await asyncio.to_thread(self._register, sensors)
            self._registering.task_done()

    def _mqtt_event(self, event: str) -> None:
        if event == "connect":
            self.metrics.reconnects.inc()

    def _dead(self, letters: list[DeadLetter]) -> None:
        self.deadletters.add_many(letters)

    async def run(self, stop: asyncio.Event) -> None:
        if self.settings.metrics_port is not None:
            start_http_server(self.settings.metrics_port, addr=self.settings.metrics_host,
                              registry=self.metrics.registry)
        queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=2)
        self.consumer.start()
        log.info("ingest.started", subscriptions=[s.filter for s in self.settings.subscriptions],
                 batch_size=self.settings.batch_size, spool_depth=self.spool.depth)
        replay = asyncio.create_task(self.sink.replay_forever(), name="spool-replay")
        watch = asyncio.create_task(self._watch_profiles(stop), name="profile-watch")
        store = asyncio.create_task(self._store_loop(queue, stop), name="store")
        register = asyncio.create_task(self._register_loop(), name="register")
        try:
            await self._collect_loop(queue, stop)
            await queue.put(None)
            await store
            await asyncio.wait_for(self._registering.join(), 30)
        finally:
            register.cancel()
            replay.cancel()
            watch.cancel()
            store.cancel()
            await self.consumer.stop()
            await self.influx.aclose()
            self.deadletters.close()
            log.info("ingest.stopped", spool_depth=self.spool.depth)

    async def _watch_profiles(self, stop: asyncio.Event) -> None:
        """Re-read the operator's device profiles when the file changes (docs/devices.md), between batches:
        the collect loop runs in this same thread, so a batch never sees half a reload."""
        while not stop.is_set():
            await asyncio.sleep(PROFILE_RECHECK_S)
            self.profiles.refresh()

    async def _collect_loop(self, queue: asyncio.Queue[_Batch | None], stop: asyncio.Event) -> None:
        client = self.consumer
        pending = client.pending
        size = self.settings.batch_size
        interval = self.settings.batch_interval_s

        async def wake_on_stop() -> None:
            await stop.wait()
            client.arrived.set()

        waker = asyncio.create_task(wake_on_stop())
        try:
            while True:
                if not pending.messages:
                    if stop.is_set():
                        return  # what arrives after this is not acknowledged: the broker redelivers it
                    client.wait_for(1)
                    await client.arrived.wait()
                    continue
                # A batch is written when full, as old as the interval, once the stream has paused (nothing new
                # for QUIET_S: the end of a burst is not held back) or when the service stops.
                deadline = time.monotonic() + interval
                while pending.messages < size and not stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    before = pending.messages
                    client.wait_for(size)
                    try:
                        await asyncio.wait_for(client.arrived.wait(), min(left, QUIET_S))
                    except TimeoutError:
                        if pending.messages == before:
                            break
                groups = client.take(size)
                n = sum(len(g.packets) for g in groups)
                self.metrics.received.inc(n)
                self.metrics.inbox.set(pending.messages)
                processed = self.pipeline.process(groups)
                # The batch waits for its write holding its PUBACKs, not its messages.
                await queue.put(_Batch(client.pubacks(groups), n, processed))
                del groups
                if self._unregistered:
                    self._registering.put_nowait(self._unregistered)
                    self._unregistered = []
        finally:
            waker.cancel()

    async def _store_loop(self, queue: asyncio.Queue[_Batch | None], stop: asyncio.Event) -> None:
        holding = False
        while (batch := await queue.get()) is not None:
            if holding:
                continue  # stopping with a full spool: left unacknowledged for redelivery
            p = batch.processed
            if not await self.sink.store(p.lines, stop):
                holding = True
                log.warning("ingest.stopping_with_full_spool", unacked=batch.messages)
                continue
            if p.dead:
                await asyncio.to_thread(self.deadletters.add_many, p.dead)
                for reason, k in p.rejected.items():
                    self.metrics.rejected.labels(reason).inc(k)
                log.info("ingest.rejected", counts=dict(p.rejected), example=p.dead[0].detail[:120])
            self.metrics.stored.inc(p.readings)
            self.metrics.batch_size.observe(p.readings)
            self.metrics.acked.inc(self.consumer.ack(batch.pubacks))
            self._publish_live(p)

    def _publish_live(self, p: Processed) -> None:
        """Newest stored reading per sensor on ``heatwatch/live/<town>`` (QoS 0).

        Sent once the batch is durable, so the live view never shows what was not stored, and in
        one normalised shape whatever the sensor's payload format: the api's live stream reads this
        rather than decoding SenML or TTS itself.
        """
        by_town: dict[str, list[Reading]] = {}
        for (town, _sensor), r in p.latest.items():
            by_town.setdefault(town, []).append(r)
        for town, readings in by_town.items():
            self.consumer.publish(live_topic(town), encode_live(town, readings))
