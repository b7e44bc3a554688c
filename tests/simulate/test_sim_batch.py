"""The simulator's ``--batch`` (a data logger's upload: one message per sensor and period) and long runs' faults."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from heatwatch.simulate.options import FaultKind, SimOptions
from heatwatch.simulate.schedule import prepare

START = datetime(2025, 7, 1)


def test_one_message_per_sensor_and_day_carrying_every_reading() -> None:
    opts = SimOptions(start=START, duration=timedelta(days=2), towns=["vitre"], format="json",
                      batch=timedelta(days=1), step=timedelta(minutes=10))
    sim = prepare(opts)
    msgs = list(sim.messages())
    readings = list(prepare(opts).readings())
    assert len(msgs) == 3 * len(sim.sensors)  # two local days straddle three UTC days
    assert sum(len(m.readings) for m in msgs) == len(readings)
    for m in msgs:
        body = json.loads(m.payload)
        assert isinstance(body, list) and len(body) == len(m.readings)
        assert [o["ts"] for o in body] == sorted(o["ts"] for o in body)
        assert m.emit_ms >= body[-1]["ts"]  # sent once the period is over
        assert m.topic == f"heat/{m.town}/{m.sensor}"


def test_batch_needs_a_format_that_carries_several_readings() -> None:
    with pytest.raises(ValueError, match="json or senml"):
        SimOptions(start=START, duration=timedelta(days=1), batch=timedelta(days=1), format="tts")
    with pytest.raises(ValueError, match="at least one step"):
        SimOptions(start=START, duration=timedelta(days=1), batch=timedelta(minutes=1), format="json")


def test_a_summer_replay_has_short_late_faults_that_stay_plausible() -> None:
    sim = prepare(SimOptions(start=datetime(2025, 6, 1), end=datetime(2025, 9, 16), format="json",
                             batch=timedelta(days=1), step=timedelta(minutes=30)))
    by_kind = {f.kind: f for f in sim.faults if f.sensor.startswith("vitre")}
    heatwave_end = datetime(2025, 7, 31).timestamp() * 1000
    for kind in (FaultKind.offline, FaultKind.stuck, FaultKind.drift):
        f = by_kind[kind]
        assert f.end_ms is not None and f.start_ms > heatwave_end and f.end_ms - f.start_ms <= 6 * 86_400_000
    assert max(r.temperature for r in sim.readings()) < 50
