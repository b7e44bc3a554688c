"""Faulty sensors: which ones, when, and what the fault does to their values.

The automatic plan makes four sensors faulty per town, one of each kind, never a rural
reference (the urban heat island and canicule days are computed against it, and tests of those
need it clean). Windows are placed relative to the run so a short replay still shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from heatwatch.core.model import Sensor

from . import noise
from .options import Fault, FaultKind
from .weather import grid

F64 = NDArray[np.float64]
_S_PICK, _S_SPIKE, _S_SPIKE_SIGN, _S_SPIKE_SIZE = 30, 31, 32, 33

SPIKE_PROBABILITY = 0.03
# For open-ended live runs, faults are laid out over this horizon.
LIVE_HORIZON = timedelta(days=2)
# A long run (a summer's replay) is laid out as a looked-after network's summer: short faults, put right within
# days, in its last third (after the second half of July, where heat waves are simulated: a fault's trailing month
# of CrowdQC+ flags would otherwise take the heat wave's days out of the sites' comparisons). A drift of a degree a
# day for months would leave the plausible range, which no real drift does.
LONG_RUN_DAYS = 10
DAY_MS = 86_400_000
#: fault → (start as a fraction of the run, days, magnitude) on a long run
Window = tuple[int, int | None, float]  # start ms, end ms (None: to the end), magnitude
LONG_FAULTS = {FaultKind.offline: (0.62, 1.0, 0.0), FaultKind.stuck: (0.70, 2.0, 0.0),
               FaultKind.drift: (0.78, 6.0, 0.5)}


def plan_faults(sensors: Sequence[Sensor], start: datetime, end: datetime | None, seed: int,
                can_backlog: Callable[[Sensor], bool] = lambda s: True) -> list[Fault]:
    """One stuck, one spiking, one drifting and one offline sensor per town.

    Windows, as fractions of the run: stuck 25-40 %, spiking throughout, drifting from 20 % to
    the end (at least 4 °C in total, 1 °C/day or more), offline 55-65 % (at least 30 min), then
    its backlog is flushed. On runs over ten days: offline one day from 62 %, stuck two days from
    70 %, drifting 0.5 °C/day for six days from 78 % (:data:`LONG_FAULTS`). The offline one is picked
    among sensors whose format can carry a backlog (LoRaWAN uplinks cannot, so a TTS device's outage
    is a plain gap).
    """
    horizon = (end - start) if end is not None else LIVE_HORIZON
    days = horizon.total_seconds() / 86400.0

    def at(fraction: float) -> int:
        return int((start + horizon * fraction).timestamp() * 1000)

    def window(kind: FaultKind, short: tuple[float, float | None], magnitude: float = 0.0) -> Window:
        if days > LONG_RUN_DAYS and kind in LONG_FAULTS:
            frac, length, mag = LONG_FAULTS[kind]
            return at(frac), at(frac) + int(length * DAY_MS), mag
        return at(short[0]), (at(short[1]) if short[1] is not None else None), magnitude

    off_start, off_end, _ = window(FaultKind.offline, (0.55, 0.65))
    assert off_end is not None
    off_end = max(off_end, off_start + 30 * 60 * 1000)
    faults: list[Fault] = []
    towns = sorted({s.town for s in sensors})
    for town in towns:
        pool = sorted((s for s in sensors if s.town == town and not s.is_reference and not s.retired),
                      key=lambda s: noise.uniform1(seed, noise.key_of(s.id), _S_PICK))
        offline = next((s for s in pool if can_backlog(s)), None)
        rest = [s for s in pool if s is not offline]
        picks: list[tuple[Sensor | None, FaultKind]] = [
            (rest[0] if len(rest) > 0 else None, FaultKind.stuck),
            (rest[1] if len(rest) > 1 else None, FaultKind.spike),
            (rest[2] if len(rest) > 2 else None, FaultKind.drift),
            (offline, FaultKind.offline),
        ]
        for sensor, kind in picks:
            if sensor is None:
                continue
            if kind is FaultKind.stuck:
                faults.append(Fault(sensor.id, kind, *window(kind, (0.25, 0.40))[:2]))
            elif kind is FaultKind.spike:
                faults.append(Fault(sensor.id, kind, at(0.0), None, magnitude=10.0))
            elif kind is FaultKind.drift:
                f0, f1, mag = window(kind, (0.2, None), max(1.0, 4.0 / (0.8 * days)))
                faults.append(Fault(sensor.id, kind, f0, f1, magnitude=mag))
            else:
                faults.append(Fault(sensor.id, kind, off_start, off_end))
    return faults


def apply_value_faults(faults: Sequence[Fault], sensor: Sensor, seed: int, step_s: int,
                       ts_s: NDArray[np.int64], temp: F64, rh: F64,
                       clean: Callable[[NDArray[np.int64]], tuple[F64, F64]]) -> tuple[F64, F64]:
    """Return temperature and humidity with this sensor's value faults applied.

    ``clean`` evaluates the fault-free model, used to find the value a stuck sensor froze at:
    its last good reading before the fault.
    """
    ts_ms = ts_s * 1000
    temp = temp.copy()
    rh = rh.copy()
    key = noise.key_of(sensor.id)
    for f in faults:
        if f.kind is FaultKind.offline:
            continue
        mask = ts_ms >= f.start_ms
        if f.end_ms is not None:
            mask &= ts_ms < f.end_ms
        if not mask.any():
            continue
        if f.kind is FaultKind.stuck:
            # From the sensor's own sampling grid, not from this chunk: a window spanning several
            # chunks must freeze at one value.
            start_s = -(-f.start_ms // 1000)
            last_good = grid(sensor.id, seed, step_s, start_s - step_s, start_s)
            t0, h0 = clean(last_good)
            temp[mask] = t0[0]
            rh[mask] = h0[0]
        elif f.kind is FaultKind.spike:
            hit = mask & (noise.uniform(seed, key, _S_SPIKE, ts_s) < SPIKE_PROBABILITY)
            sign = np.where(noise.uniform(seed, key, _S_SPIKE_SIGN, ts_s) < 0.5, -1.0, 1.0)
            size = (f.magnitude or 10.0) + (noise.uniform(seed, key, _S_SPIKE_SIZE, ts_s) - 0.5) * 4.0
            temp = np.where(hit, temp + sign * size, temp)
        elif f.kind is FaultKind.drift:
            days = (ts_ms - f.start_ms) / 86_400_000.0
            temp = np.where(mask, temp + f.magnitude * days, temp)
    return temp, rh


def offline_windows(faults: Sequence[Fault]) -> dict[str, list[Fault]]:
    out: dict[str, list[Fault]] = {}
    for f in faults:
        if f.kind is FaultKind.offline:
            out.setdefault(f.sensor, []).append(f)
    return out
