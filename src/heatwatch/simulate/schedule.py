"""A resolved simulation run: its sensors, heat wave and faults, and the stream it produces.

``generate`` yields every reading the sensors take, in time order. ``messages`` yields what
they send, in sending order: one message per reading, except that an offline sensor's readings
are held back and sent as one backlog message when it comes back (or lost, for a LoRaWAN device).
Both are computed a UTC day at a time, so a week of 500 sensors streams in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from heatwatch.core.model import Reading, Sensor
from heatwatch.core.settings import load_towns

from .faults import apply_value_faults, offline_windows, plan_faults
from .formats import Message, can_backlog, encode, format_for
from .options import Fault, HeatWave, SimOptions
from .registry import load_example_sensors, select_sensors
from .weather import TownWeather, grid

_CHUNK_S = 86_400


@dataclass
class Simulation:
    """Everything a run needs, resolved once; iterate ``readings()`` or ``messages()``."""

    sensors: list[Sensor]
    start: datetime
    end: datetime | None
    options: SimOptions
    heatwave: HeatWave | None
    faults: list[Fault]
    formats: dict[str, str]
    dropped: int = 0  # readings lost during LoRaWAN outages (counted as messages() runs)
    _weather: dict[str, TownWeather] = field(default_factory=dict, repr=False)

    # Readings ----------------------------------------------------------------------

    def readings(self) -> Iterator[Reading]:
        for chunk in self._chunks():
            yield from chunk

    def _chunks(self) -> Iterator[list[Reading]]:
        start_s = int(self.start.timestamp())
        end_s = int(self.end.timestamp()) if self.end is not None else None
        c0 = start_s
        by_sensor: dict[str, list[Fault]] = {}
        for f in self.faults:
            by_sensor.setdefault(f.sensor, []).append(f)
        step_s = self.options.step_s
        seed = self.options.seed
        while end_s is None or c0 < end_s:
            c1 = (c0 // _CHUNK_S + 1) * _CHUNK_S
            if end_s is not None:
                c1 = min(c1, end_s)
            parts_ts, parts_idx, parts_t, parts_h, parts_b = [], [], [], [], []
            for i, sensor in enumerate(self.sensors):
                ts = grid(sensor.id, seed, step_s, c0, c1)
                if ts.size == 0:
                    continue
                w = self._town_weather(sensor.town)
                temp, rh = w.site(sensor, ts)
                if sensor.id in by_sensor:
                    temp, rh = apply_value_faults(by_sensor[sensor.id], sensor, seed, step_s, ts, temp, rh,
                                                  lambda t, s=sensor, w=w: w.site(s, t))
                parts_ts.append(ts)
                parts_idx.append(np.full(ts.size, i, dtype=np.int64))
                parts_t.append(np.round(temp, 2))
                parts_h.append(np.round(rh, 1))
                parts_b.append(np.round(w.battery(sensor, ts), 3))
            if parts_ts:
                ts_all = np.concatenate(parts_ts)
                idx_all = np.concatenate(parts_idx)
                order = np.lexsort((idx_all, ts_all))
                ts_l = (ts_all[order] * 1000).tolist()
                idx_l = idx_all[order].tolist()
                t_l = np.concatenate(parts_t)[order].tolist()
                h_l = np.concatenate(parts_h)[order].tolist()
                b_l = np.concatenate(parts_b)[order].tolist()
                sensors = self.sensors
                yield [Reading(sensors[i].town, sensors[i].id, ts, t, h, b)
                       for ts, i, t, h, b in zip(ts_l, idx_l, t_l, h_l, b_l, strict=True)]
            c0 = c1

    # Messages ----------------------------------------------------------------------

    def messages(self) -> Iterator[Message]:
        if self.options.batch is not None:
            yield from self._batches(int(self.options.batch.total_seconds() * 1000))
            return
        outages = offline_windows(self.faults)
        backlog: dict[str, list[Reading]] = {}
        by_id = {s.id: s for s in self.sensors}
        opts = self.options
        for chunk in self._chunks():
            for r in chunk:
                sensor = by_id[r.sensor]
                fmt = self.formats[r.sensor]
                windows = outages.get(r.sensor)
                if windows and any(f.active(r.ts_ms) for f in windows):
                    if can_backlog(fmt):
                        backlog.setdefault(r.sensor, []).append(r)
                    else:
                        self.dropped += 1
                    continue
                held = backlog.pop(r.sensor, None)
                if held:
                    yield encode(sensor, held, fmt, seed=opts.seed, step_s=opts.step_s,
                                 tts_tenant=opts.tts_tenant, emit_ms=r.ts_ms)
                yield encode(sensor, [r], fmt, seed=opts.seed, step_s=opts.step_s, tts_tenant=opts.tts_tenant)
        # A run that ends inside an outage still delivers what was held, at the end of the run.
        end_ms = int(self.end.timestamp() * 1000) if self.end is not None else None
        for sensor_id, held in backlog.items():
            yield encode(by_id[sensor_id], held, self.formats[sensor_id], seed=opts.seed, step_s=opts.step_s,
                         tts_tenant=opts.tts_tenant, emit_ms=end_ms or held[-1].ts_ms)

    def _batches(self, batch_ms: int) -> Iterator[Message]:
        """One message per sensor and ``batch_ms`` window (UTC-aligned), sent at the window's end: a logger's
        upload. Outages do not apply (the logger kept its readings); LoRaWAN formats are refused by the options."""
        by_id = {s.id: s for s in self.sensors}
        held: dict[str, list[Reading]] = {}
        window: int | None = None
        for chunk in self._chunks():
            for r in chunk:
                w = r.ts_ms // batch_ms
                if window is not None and w != window:
                    yield from self._flush(held, by_id, (window + 1) * batch_ms)
                window = w
                held.setdefault(r.sensor, []).append(r)
        if window is not None:
            end_ms = int(self.end.timestamp() * 1000) if self.end is not None else (window + 1) * batch_ms
            yield from self._flush(held, by_id, min(end_ms, (window + 1) * batch_ms))

    def _flush(self, held: dict[str, list[Reading]], by_id: dict[str, Sensor], emit_ms: int) -> Iterator[Message]:
        opts = self.options
        for sensor_id, readings in held.items():
            yield encode(by_id[sensor_id], readings, self.formats[sensor_id], seed=opts.seed, step_s=opts.step_s,
                         tts_tenant=opts.tts_tenant, emit_ms=emit_ms)
        held.clear()

    # Helpers -----------------------------------------------------------------------

    def _town_weather(self, town: str) -> TownWeather:
        w = self._weather.get(town)
        if w is None:
            lat, lon = _town_position(town, [s for s in self.sensors if s.town == town])
            w = TownWeather(town, lat, lon, self.options.seed, self.heatwave)
            self._weather[town] = w
        return w


def prepare(options: SimOptions | None = None, sensors: Sequence[Sensor] | None = None,
            *, now: datetime | None = None) -> Simulation:
    """Resolve options into a run: sensors (examples by default), range, heat wave, faults."""
    opts = options or SimOptions()
    base = list(sensors) if sensors is not None else load_example_sensors(opts.towns)
    if sensors is not None and opts.towns is not None:
        base = [s for s in base if s.town in set(opts.towns)]
    chosen = select_sensors(base, opts.sensors, opts.seed)
    start, end = opts.time_range(now)
    # Align to whole seconds: every format then carries the instant exactly.
    start = start.replace(microsecond=0)
    formats = {s.id: format_for(s, opts.format, opts.lorawan) for s in chosen}
    heatwave = opts.heatwave.resolved(start) if opts.heatwave is not None else None
    if opts.faults is True:
        faults = plan_faults(chosen, start, end, opts.seed, lambda s: can_backlog(formats[s.id]))
    elif opts.faults is False:
        faults = []
    else:
        faults = list(opts.faults)
    index, count = opts.shard
    if count > 1:
        # Shard by sensor so each sensor's messages stay in order within one publisher.
        chosen = [s for i, s in enumerate(chosen) if i % count == index]
        formats = {s.id: formats[s.id] for s in chosen}
    return Simulation(chosen, start, end, opts, heatwave, faults, formats)


def generate(sensors: Sequence[Sensor] | None = None, start: datetime | None = None,
             end: datetime | None = None, options: SimOptions | None = None) -> Iterator[Reading]:
    """Every reading the sensors take in [start, end), time-ordered, faults applied."""
    return _prepare_range(sensors, start, end, options).readings()


def messages(sensors: Sequence[Sensor] | None = None, start: datetime | None = None,
             end: datetime | None = None, options: SimOptions | None = None) -> Iterator[Message]:
    """Every message the sensors send for [start, end), in sending order."""
    return _prepare_range(sensors, start, end, options).messages()


def _prepare_range(sensors: Sequence[Sensor] | None, start: datetime | None, end: datetime | None,
                   options: SimOptions | None) -> Simulation:
    opts = options or SimOptions()
    if start is not None or end is not None:
        opts = replace(opts, start=start or opts.start, end=end or opts.end)
    return prepare(opts, sensors)


def _town_position(town: str, sensors: Sequence[Sensor]) -> tuple[float, float]:
    towns = load_towns()
    if town in towns:
        return towns[town].latitude, towns[town].longitude
    placed = [s for s in sensors if s.latitude is not None and s.longitude is not None]
    if placed:
        return (sum(s.latitude for s in placed) / len(placed),  # type: ignore[misc]
                sum(s.longitude for s in placed) / len(placed))  # type: ignore[misc]
    return 47.0, 2.0  # centre of France: sunrise times stay plausible
