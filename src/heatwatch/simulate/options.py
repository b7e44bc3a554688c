"""What a simulation run is asked to do: time range, heat wave, faults, output format, pacing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

# Both served towns are in metropolitan France; heat-wave days are local calendar days there.
LOCAL_TZ = ZoneInfo("Europe/Paris")

FormatChoice = Literal["profile", "json", "senml", "tts", "chirpstack"]
LorawanServer = Literal["tts", "chirpstack"]
Alignment = Literal["trailing", "centered", "forward"]


@dataclass(frozen=True, slots=True)
class HeatWave:
    """A heat-wave plateau added to the daily extremes of every site of every town.

    During the ``days`` local dates from ``start``, daily Tx is climatology + ``tx_boost`` and
    daily Tn climatology + ``tn_boost``; the day-to-day synoptic anomaly is switched off (a
    heat wave *is* the synoptic anomaly), so the plateau is steady and its 3-day means are
    predictable. ``start=None`` means the third local day of the simulated range.

    The defaults are stronger than a bare "+8-10 / +5": with the July-August climatology of
    the model (rural Tx 22-23 °C, Tn 13-13.5 °C) they put the plateau at Tx 34-35 / Tn 20-20.5
    so a 3-day window fully inside the episode clears 33/18 by more than 1 °C, while a window
    holding only two episode days stays more than 1 °C under 33 on Tx.
    """

    start: date | None = None
    days: int = 5
    tx_boost: float = 12.0
    tn_boost: float = 7.0

    def resolved(self, run_start: datetime) -> HeatWave:
        if self.start is not None:
            return self
        return replace(self, start=run_start.astimezone(LOCAL_TZ).date() + timedelta(days=2))

    def dates(self) -> list[date]:
        if self.start is None:
            raise ValueError("heat wave start not resolved; call resolved(run_start) first")
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def canicule_days(self, alignment: Alignment = "trailing") -> list[date]:
        """Days whose 3-day means of rural Tn and Tx both reach 18/33 °C.

        Only windows of three episode days qualify. ``trailing``: the mean of D-2..D (the
        usual retrospective running mean), ``centered``: D-1..D+1, ``forward``: D..D+2 (the
        SACS forecast convention, IBM of day J over J, J+1, J+2).
        """
        lead = {"trailing": 2, "centered": 1, "forward": 0}[alignment]
        d = self.dates()
        return [d[0] + timedelta(days=lead + i) for i in range(max(0, self.days - 2))]


class FaultKind(StrEnum):
    stuck = "stuck"        # temperature and humidity frozen at the last good values
    spike = "spike"        # occasional +-8..12 °C spikes on temperature
    drift = "drift"        # temperature drifts linearly, ``magnitude`` °C per day
    offline = "offline"    # readings withheld during the window, then flushed as one backlog


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault. ``start_ms``/``end_ms`` are UTC epoch ms; ``end_ms=None`` means to the end."""

    sensor: str
    kind: FaultKind
    start_ms: int
    end_ms: int | None = None
    magnitude: float = 0.0

    def active(self, ts_ms: int) -> bool:
        return ts_ms >= self.start_ms and (self.end_ms is None or ts_ms < self.end_ms)


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Options of one run. Defaults give the live demo: both towns, per-profile formats, now onwards.

    ``start``/``end`` bound the readings generated (end exclusive); ``duration`` is used when
    ``end`` is None. ``live``: messages are sent when the wall clock reaches their time (a past
    ``start`` is caught up first, as fast as ``rate`` allows); otherwise the range is replayed as
    fast as ``rate`` allows. ``rate`` is messages per second, 0 for no limit.
    """

    seed: int = 42
    step: timedelta = timedelta(minutes=5)
    start: datetime | None = None
    end: datetime | None = None
    duration: timedelta | None = None
    towns: Sequence[str] | None = None
    sensors: int | None = None
    format: FormatChoice = "profile"
    heatwave: HeatWave | None = field(default_factory=HeatWave)
    faults: bool | Sequence[Fault] = True
    live: bool = False
    rate: float = 0.0
    qos: int = 1
    max_inflight: int = 1000
    client_id: str | None = None
    tts_tenant: str = "ttn"
    # The network server LoRaWAN device profiles are heard through under format "profile".
    lorawan: LorawanServer = "tts"
    shard: tuple[int, int] = (0, 1)
    #: Each sensor's readings sent as one message per ``batch`` of time (a data logger uploading its memory, an
    #: archive imported), instead of one per reading; only formats that carry a backlog (json, senml).
    batch: timedelta | None = None

    def __post_init__(self) -> None:
        if self.step <= timedelta(0) or self.step.total_seconds() % 1:
            raise ValueError("step must be a positive whole number of seconds")
        if self.rate < 0:
            raise ValueError("rate must be >= 0")
        if self.qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        if self.sensors is not None and self.sensors < 1:
            raise ValueError("sensors must be >= 1")
        if self.batch is not None and (self.batch < self.step or self.batch.total_seconds() % 1):
            raise ValueError("batch must be a whole number of seconds, at least one step")
        if self.batch is not None and self.format not in ("json", "senml"):
            raise ValueError("batch needs a format that carries several readings: json or senml")
        index, count = self.shard
        if not 0 <= index < count:
            raise ValueError("shard must be (index, count) with 0 <= index < count")

    @property
    def step_s(self) -> int:
        return int(self.step.total_seconds())

    def time_range(self, now: datetime | None = None) -> tuple[datetime, datetime | None]:
        """Concrete UTC start and (exclusive) end; end None means run until stopped."""
        start = self.start or (now or datetime.now(UTC))
        start = _utc(start)
        if self.end is not None:
            end: datetime | None = _utc(self.end)
        elif self.duration is not None:
            end = start + self.duration
        elif self.live:
            end = None
        else:
            raise ValueError("a replay needs end or duration")
        if end is not None and end <= start:
            raise ValueError("end must be after start")
        return start, end


def _utc(value: datetime) -> datetime:
    # A naive datetime is taken as local French time, what a user typing a date means.
    if value.tzinfo is None:
        value = value.replace(tzinfo=LOCAL_TZ)
    return value.astimezone(UTC)
