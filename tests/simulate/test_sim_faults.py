"""Each injected fault is visible in what the simulator produces."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from heatwatch.core.model import Reading
from heatwatch.simulate import Fault, FaultKind, Message, SimOptions, Simulation, prepare
from heatwatch.simulate.faults import SPIKE_PROBABILITY
from heatwatch.simulate.options import LOCAL_TZ

START = datetime(2025, 7, 14, tzinfo=LOCAL_TZ)
FAULTY = SimOptions(start=START, duration=timedelta(days=3), heatwave=None)
CLEAN = SimOptions(start=START, duration=timedelta(days=3), heatwave=None, faults=False)


def _by_sensor(readings: list[Reading]) -> dict[str, list[Reading]]:
    out: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        out[r.sensor].append(r)
    return out


@pytest.fixture(scope="module")
def runs() -> tuple[Simulation, dict[str, list[Reading]], dict[str, list[Reading]], list[Message]]:
    sim = prepare(FAULTY)
    faulty = _by_sensor(list(sim.readings()))
    clean = _by_sensor(list(prepare(CLEAN).readings()))
    msgs = list(prepare(FAULTY).messages())
    return sim, faulty, clean, msgs


def _fault(sim: Simulation, town: str, kind: FaultKind) -> Fault:
    town_ids = {s.id for s in sim.sensors if s.town == town}
    return next(f for f in sim.faults if f.kind is kind and f.sensor in town_ids)


@pytest.mark.parametrize("town", ["vitre", "saint-omer"])
def test_one_fault_of_each_kind_per_town_never_on_the_reference(runs, town: str) -> None:  # type: ignore[no-untyped-def]
    sim = runs[0]
    town_ids = {s.id for s in sim.sensors if s.town == town}
    faults = [f for f in sim.faults if f.sensor in town_ids]
    assert sorted(f.kind for f in faults) == sorted(FaultKind)
    assert len({f.sensor for f in faults}) == 4
    refs = {s.id for s in sim.sensors if s.is_reference}
    assert not refs & {f.sensor for f in faults}


@pytest.mark.parametrize("town", ["vitre", "saint-omer"])
def test_stuck_sensor_repeats_its_last_good_values(runs, town: str) -> None:  # type: ignore[no-untyped-def]
    sim, faulty, clean, _ = runs
    f = _fault(sim, town, FaultKind.stuck)
    rs = faulty[f.sensor]
    inside = [r for r in rs if f.active(r.ts_ms)]
    before = [r for r in rs if r.ts_ms < f.start_ms]
    assert len(inside) > 100
    assert {(r.temperature, r.humidity) for r in inside} == {(before[-1].temperature, before[-1].humidity)}
    after = [r for r in rs if f.end_ms is not None and r.ts_ms >= f.end_ms]
    assert len({r.temperature for r in after[:20]}) > 5  # it recovers
    assert [r.battery_v for r in inside] == [r.battery_v for r in clean[f.sensor] if f.active(r.ts_ms)]


@pytest.mark.parametrize("town", ["vitre", "saint-omer"])
def test_spiking_sensor_has_occasional_10_degree_spikes(runs, town: str) -> None:  # type: ignore[no-untyped-def]
    sim, faulty, clean, _ = runs
    f = _fault(sim, town, FaultKind.spike)
    diffs = [a.temperature - b.temperature for a, b in zip(faulty[f.sensor], clean[f.sensor], strict=True)]
    spikes = [d for d in diffs if abs(d) > 1e-9]
    assert all(7.9 <= abs(d) <= 12.1 for d in spikes)
    assert any(d > 0 for d in spikes) and any(d < 0 for d in spikes)
    assert 0.5 * SPIKE_PROBABILITY < len(spikes) / len(diffs) < 2 * SPIKE_PROBABILITY


@pytest.mark.parametrize("town", ["vitre", "saint-omer"])
def test_drifting_sensor_drifts_several_degrees(runs, town: str) -> None:  # type: ignore[no-untyped-def]
    sim, faulty, clean, _ = runs
    f = _fault(sim, town, FaultKind.drift)
    pairs = list(zip(faulty[f.sensor], clean[f.sensor], strict=True))
    diffs = [(a.ts_ms, a.temperature - b.temperature) for a, b in pairs]
    assert all(abs(d) < 0.011 for ts, d in diffs if ts < f.start_ms)
    late = [d for ts, d in diffs if ts >= f.start_ms]
    assert late[-1] >= 3.5
    assert all(b >= a - 0.011 for a, b in itertools.pairwise(late))  # monotonic, linear


@pytest.mark.parametrize("town", ["vitre", "saint-omer"])
def test_offline_sensor_is_silent_then_flushes_one_backlog(runs, town: str) -> None:  # type: ignore[no-untyped-def]
    sim, faulty, _, msgs = runs
    f = _fault(sim, town, FaultKind.offline)
    assert f.end_ms is not None
    mine = [m for m in msgs if m.sensor == f.sensor]
    assert mine[0].format in ("json", "senml")
    assert not [m for m in mine if f.start_ms <= m.emit_ms < f.end_ms]
    backlog = [m for m in mine if len(m.readings) > 1]
    assert len(backlog) == 1
    withheld = [r for r in faulty[f.sensor] if f.active(r.ts_ms)]
    assert [r.ts_ms for r in backlog[0].readings] == [r.ts_ms for r in withheld]
    assert backlog[0].emit_ms == next(r.ts_ms for r in faulty[f.sensor] if r.ts_ms >= f.end_ms)
    # Nothing lost overall: every reading of the sensor is in exactly one message.
    sent = [r.ts_ms for m in mine for r in m.readings]
    assert sorted(sent) == [r.ts_ms for r in faulty[f.sensor]]


def test_messages_are_in_sending_order(runs) -> None:  # type: ignore[no-untyped-def]
    msgs = runs[3]
    emits = [m.emit_ms for m in msgs]
    assert emits == sorted(emits)


def test_a_lorawan_device_loses_its_readings_while_offline() -> None:
    start_ms = int(START.timestamp() * 1000)
    fault = Fault("vitre-centre-03", FaultKind.offline, start_ms + 3_600_000, start_ms + 7_200_000)
    sim = prepare(SimOptions(start=START, duration=timedelta(hours=4), faults=[fault], towns=["vitre"]))
    assert sim.formats["vitre-centre-03"] == "tts"
    mine = [m for m in sim.messages() if m.sensor == "vitre-centre-03"]
    assert sim.dropped == 12
    assert len(mine) == 48 - 12
    assert all(len(m.readings) == 1 for m in mine)
    assert not [m for m in mine if fault.active(m.emit_ms)]
