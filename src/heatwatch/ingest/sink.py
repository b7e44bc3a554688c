"""Where batches become durable: InfluxDB when it answers, the spool when it does not.

While the spool holds anything, new batches go behind it, so InfluxDB receives batches in
arrival order. A batch InfluxDB rejects with a 400 is split in halves until the bad lines
are isolated: the good ones land (rewriting a point is idempotent) and each bad line is
dead-lettered with the server's message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..core.deadletters import DeadLetter
from ..core.errors import InfluxClientError, InfluxError, InfluxWriteError
from ..core.influx import RAW_RP, InfluxClient
from ..core.logging import get_logger
from .metrics import IngestMetrics
from .reasons import Reason
from .spool import Spool

log = get_logger("heatwatch.ingest.sink")


class Sink:
    def __init__(
        self,
        influx: InfluxClient,
        spool: Spool,
        metrics: IngestMetrics,
        on_dead: Callable[[list[DeadLetter]], None],
        *,
        raw_retention: str = "INF",
    ) -> None:
        self.influx = influx
        self.spool = spool
        self.metrics = metrics
        self._on_dead = on_dead
        self._raw_retention = raw_retention
        self._ready = False  # database and retention policies created
        self._wake = asyncio.Event()
        self._room = asyncio.Event()  # set by the replay each time it frees spool space
        self._update_gauges()

    async def store(self, lines: list[str], stop: asyncio.Event | None = None) -> bool:
        """True once ``lines`` are in InfluxDB or in the spool.

        False only when ``stop`` is set while the spool is full: the caller must then not
        acknowledge, and the broker redelivers those messages to the next ingester.
        """
        if not lines:
            return True
        if not self.spool:
            try:
                await self._write(lines)
                return True
            except InfluxError as exc:
                log.warning("influx.write_failed_spooling", error=str(exc), lines=len(lines))
        size = sum(len(x) + 1 for x in lines)
        if not self.spool.has_room(size):
            # Not acknowledging is the back-pressure: the broker keeps the rest for us.
            self.metrics.spool_full.set(1)
            log.error("spool.full_holding_acks", spool_bytes=self.spool.bytes, max_bytes=self.spool.max_bytes)
            while not self.spool.has_room(size):  # room is made by the replay task
                if stop is not None and stop.is_set():
                    return False
                await self._room_or(stop)
            self.metrics.spool_full.set(0)
            log.info("spool.room_again", spool_bytes=self.spool.bytes)
        await asyncio.to_thread(self.spool.append, lines)
        self._update_gauges()
        self._wake.set()
        return True

    async def _room_or(self, stop: asyncio.Event | None) -> None:
        """Until the replay frees some space or ``stop`` is set."""
        self._room.clear()
        waits = [asyncio.ensure_future(self._room.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def replay_forever(self) -> None:
        """Drain the spool into InfluxDB, oldest first, backing off while it is unhealthy."""
        delay = 0.5
        while True:
            if not self.spool:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=5)
                except TimeoutError:
                    pass
                continue
            oldest = await asyncio.to_thread(self.spool.oldest)
            if oldest is None:
                continue
            path, lines = oldest
            try:
                await self._write(lines)
            except InfluxError as exc:
                log.info("spool.replay_waiting", error=str(exc), depth=self.spool.depth, retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            self.spool.remove(path)
            self._room.set()
            self._update_gauges()
            if not self.spool:
                log.info("spool.drained")

    async def _write(self, lines: list[str]) -> None:
        if not self._ready:
            await self.influx.setup(self._raw_retention)
            self._ready = True
        t0 = time.perf_counter()
        try:
            await self._write_split(lines)
        except InfluxClientError as exc:
            if exc.status == 404:  # database dropped under us: recreate on the next try
                self._ready = False
            raise
        self.metrics.write_latency.observe(time.perf_counter() - t0)

    async def _write_split(self, lines: list[str]) -> None:
        try:
            await self.influx.write_lines(lines, rp=RAW_RP)
        except InfluxWriteError as exc:
            if exc.status != 400:
                raise
            if len(lines) == 1:
                self._on_dead([DeadLetter("(influx)", lines[0].encode(), Reason.influx_rejected, exc.message,
                                          int(time.time() * 1000))])
                self.metrics.rejected.labels(Reason.influx_rejected).inc()
                return
            mid = len(lines) // 2
            await self._write_split(lines[:mid])
            await self._write_split(lines[mid:])

    def _update_gauges(self) -> None:
        self.metrics.spool_depth.set(self.spool.depth)
        self.metrics.spool_bytes.set(self.spool.bytes)
