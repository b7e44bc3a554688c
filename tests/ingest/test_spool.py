"""The spool on its own, and the sink (InfluxDB or spool, replay, 400 splitting) against the real influxd."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from heatwatch.core.deadletters import DeadLetter
from heatwatch.core.influx import RAW_RP, InfluxClient
from heatwatch.ingest.metrics import IngestMetrics
from heatwatch.ingest.sink import Sink
from heatwatch.ingest.spool import Spool
from heatwatch.stack.embedded import free_port
from support.wait import async_wait_until

NOW = int(time.time() * 1000) - 3600_000


def _lines(n: int, start: int = 0, value: float = 20.0, sensor: str = "s") -> list[str]:
    return [f"reading,town=vitre,sensor={sensor}{i} temperature={value} {NOW + i}" for i in range(start, start + n)]


# --- Spool ------------------------------------------------------------------------------------------


def test_spool_keeps_order_and_survives_reopening(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=10_000)
    assert not spool and spool.depth == 0 and spool.oldest() is None
    first = spool.append(["a 1", "a 2"])
    spool.append(["b 1"])
    assert spool.depth == 2 and spool.bytes == len("a 1\na 2\n") + len("b 1\n")

    # A crash halfway through an append leaves a .tmp that was never acknowledged: dropped on open.
    (tmp_path / "9999999999999999.tmp").write_text("half")
    again = Spool(tmp_path, max_bytes=10_000)
    assert again.depth == 2 and again.bytes == spool.bytes
    assert not list(tmp_path.glob("*.tmp"))
    assert again.oldest() == (first, ["a 1", "a 2"])
    third = again.append(["c 1"])
    assert third.name > first.name  # numbering goes on after the existing segments

    path, _ = again.oldest()  # type: ignore[misc]
    again.remove(path)
    path, lines = again.oldest()  # type: ignore[misc]
    assert lines == ["b 1"]
    again.remove(path)
    assert again.oldest() == (third, ["c 1"])
    again.remove(third)
    assert not again and again.bytes == 0


def test_spool_bound(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1024)
    assert spool.has_room(10**6)  # an empty spool takes any one batch, or a huge batch could never move
    spool.append(["x" * 500])
    assert spool.has_room(500)
    assert not spool.has_room(600)


# --- Sink ---------------------------------------------------------------------------------------------


def _sample(metrics: IngestMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


async def _stored(c: InfluxClient) -> dict[str, float]:
    rows = await c.query_records(f'SELECT "temperature", "sensor" FROM {c.qualified("reading", RAW_RP)}')
    return {r["sensor"]: r["temperature"] for r in rows}


def _sink(url: str, db: str, spool_dir: Path, max_bytes: int = 10**7) -> tuple[Sink, list[DeadLetter]]:
    dead: list[DeadLetter] = []
    sink = Sink(InfluxClient(url, db, timeout=2), Spool(spool_dir, max_bytes), IngestMetrics(), dead.extend)
    return sink, dead


async def _drained(sink: Sink) -> None:
    """Wait for the replay task to empty the spool (it offers no event to wait on)."""
    await async_wait_until(lambda: not sink.spool, 20, "spool drained")


async def _holding(sink: Sink) -> None:
    """Wait until the sink holds a batch because the spool is full (what its gauge says)."""
    await async_wait_until(lambda: _sample(sink.metrics, "heatwatch_ingest_spool_full") == 1, 10, "spool full")


def _down_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


@pytest.mark.anyio
async def test_partial_400_is_split_good_lines_land_bad_ones_dead_lettered(influxd, db_name, tmp_path):
    sink, dead = _sink(influxd.url, db_name, tmp_path / "spool")
    lines = _lines(40)
    lines[7] = f"reading,town=vitre,sensor=s7 temperature= {NOW + 7}"  # unparseable
    lines[30] = f'reading,town=vitre,sensor=s30 temperature="hot" {NOW + 30}'  # type conflict in this batch
    await sink.store(lines)
    async with InfluxClient(influxd.url, db_name) as c:
        stored = await _stored(c)
    assert sorted(stored) == sorted(f"s{i}" for i in range(40) if i not in (7, 30))
    assert sorted(d.payload.decode() for d in dead) == sorted([lines[7], lines[30]])
    assert {d.reason for d in dead} == {"influx_rejected"}
    assert all(d.detail for d in dead)  # InfluxDB's own message
    assert _sample(sink.metrics, "heatwatch_ingest_rejected_total", reason="influx_rejected") == 2
    assert not sink.spool  # a 400 is final: nothing to retry
    await sink.influx.aclose()


@pytest.mark.anyio
async def test_unreachable_influxdb_spools_and_a_restarted_sink_replays_in_order(influxd, db_name, tmp_path):
    spool_dir = tmp_path / "spool"
    down, _ = _sink(_down_url(), db_name, spool_dir)
    await down.store(_lines(10, value=1.0))
    await down.store(_lines(10, value=2.0))  # same keys, newer values: must win after replay
    await down.store(_lines(5, start=10, value=3.0))
    assert down.spool.depth == 3
    assert _sample(down.metrics, "heatwatch_ingest_spool_batches") == 3
    assert _sample(down.metrics, "heatwatch_ingest_spool_bytes") == down.spool.bytes > 0
    await down.influx.aclose()

    # A new ingester process over the same data dir.
    up, dead = _sink(influxd.url, db_name, spool_dir)
    assert up.spool.depth == 3
    # While the spool holds anything, a new batch goes behind it rather than overtaking it.
    await up.store(_lines(1, value=4.0))
    assert up.spool.depth == 4
    replay = asyncio.create_task(up.replay_forever())
    try:
        await _drained(up)
    finally:
        replay.cancel()
    assert not up.spool and not list(spool_dir.glob("*.lp"))
    assert _sample(up.metrics, "heatwatch_ingest_spool_batches") == 0
    assert _sample(up.metrics, "heatwatch_ingest_spool_bytes") == 0
    async with InfluxClient(influxd.url, db_name) as c:
        stored = await _stored(c)
    assert stored == {"s0": 4.0, **{f"s{i}": 2.0 for i in range(1, 10)}, **{f"s{i}": 3.0 for i in range(10, 15)}}
    assert dead == []
    await up.influx.aclose()


@pytest.mark.anyio
async def test_full_spool_blocks_store_until_replay_makes_room(influxd, db_name, tmp_path):
    sink, _ = _sink(_down_url(), db_name, tmp_path / "spool", max_bytes=2048)
    await sink.store(_lines(20))  # ~1.1 kB
    blocked = asyncio.create_task(sink.store(_lines(20, start=20)))
    await _holding(sink)
    assert not blocked.done()  # the caller (and so the MQTT ack) is held
    assert sink.spool.depth == 1

    # InfluxDB comes back.
    await sink.influx.aclose()
    sink.influx = InfluxClient(influxd.url, db_name)
    replay = asyncio.create_task(sink.replay_forever())
    try:
        await asyncio.wait_for(blocked, 20)
        assert _sample(sink.metrics, "heatwatch_ingest_spool_full") == 0
        await _drained(sink)
    finally:
        replay.cancel()
    assert not sink.spool
    stored = await _stored(sink.influx)
    assert len(stored) == 40
    await sink.influx.aclose()


@pytest.mark.anyio
async def test_full_spool_gives_up_on_stop_without_claiming_durability(db_name, tmp_path):
    """SIGTERM while acks are held must end the wait: the messages stay unacknowledged."""
    sink, _ = _sink(_down_url(), db_name, tmp_path / "spool", max_bytes=2048)
    assert await sink.store(_lines(20)) is True
    stop = asyncio.Event()
    held = asyncio.create_task(sink.store(_lines(20, start=20), stop))
    await _holding(sink)
    assert not held.done()
    stop.set()
    assert await asyncio.wait_for(held, 5) is False
    assert sink.spool.depth == 1  # the held batch was not spooled
    await sink.influx.aclose()
