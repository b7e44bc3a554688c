"""Checks every decoded reading passes before it is stored, whatever its format."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ..core.errors import DecodeError
from ..core.model import RH_MAX, RH_MIN, T_MAX, T_MIN, Reading
from .reasons import Reason

FUTURE_TOLERANCE_MS = 5 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Validator:
    towns: Collection[str]
    backlog_ms: int

    def check(self, r: Reading, received_ms: int) -> None:
        if r.town not in self.towns:
            raise DecodeError(Reason.unknown_town, r.town)
        if r.temperature is None and r.humidity is None:
            raise DecodeError(Reason.no_measurement, f"{r.sensor} at {r.ts_ms}")
        if r.temperature is not None and not T_MIN <= r.temperature <= T_MAX:
            raise DecodeError(Reason.temperature_range, f"{r.temperature} °C from {r.sensor}")
        if r.humidity is not None and not RH_MIN <= r.humidity <= RH_MAX:
            raise DecodeError(Reason.humidity_range, f"{r.humidity} %RH from {r.sensor}")
        if r.ts_ms > received_ms + FUTURE_TOLERANCE_MS:
            raise DecodeError(Reason.future_timestamp, f"{r.ts_ms} ms, received {received_ms} ms")
        if r.ts_ms < received_ms - self.backlog_ms:
            raise DecodeError(Reason.stale_timestamp, f"{r.ts_ms} ms, received {received_ms} ms")
