"""The maintenance view's computations, pure: battery days-left, QC history per day, the reasons to visit a sensor and
their ranking (docs/maintenance.md). The statements are in :mod:`.store`, the route in ``routes/maintenance.py``.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from scipy import stats

from heatwatch.core.maintenance import BATTERY_ACTIONS, Visit
from heatwatch.core.measurements import QcFlag
from heatwatch.core.thresholds import AlertThresholds

DAY_MS = 86_400_000
#: A battery whose estimate says fewer days than this is to be visited.
DAYS_LEFT_VISIT = 14
#: The battery fit: points (medians of 6-hour buckets) of the last ``FIT_DAYS`` days since the battery was last
#: changed; at least ``FIT_MIN_POINTS`` of them over at least ``FIT_MIN_SPAN_DAYS``.
FIT_DAYS = 21
FIT_MIN_POINTS = 8
FIT_MIN_SPAN_DAYS = 3.0
#: Confidence of the Theil–Sen slope's interval: the battery is "falling" only when the whole interval is below 0.
FIT_CONFIDENCE = 0.90
#: QC: the days looked at for reasons to visit, and how many of them a flag must be seen on to be persistent.
QC_DAYS = 7
QC_PERSISTENT_DAYS = 3
#: Hours of STEP in the last days that make a level shift (a spike or a short excursion does not).
LEVEL_SHIFT_HOURS = 6
#: Flags that a visit can fix (the site or the device): UNPLACED is the registry's business, AVAILABILITY is
#: silence (its own reason), MONTH_SPARSE information only.
SITE_FLAGS = (QcFlag.RANGE | QcFlag.STEP | QcFlag.SPIKE | QcFlag.PERSISTENCE | QcFlag.SPATIAL_LOW
              | QcFlag.SPATIAL_HIGH | QcFlag.RADIATION | QcFlag.DRIFT | QcFlag.MONTH_FLAGGED
              | QcFlag.MONTH_CORRELATION)

#: Reasons, most urgent first (their rank orders the list of sensors to visit).
REASONS: dict[str, str] = {
    "silent": "no reading for longer than the offline alert's delay",
    "battery_low": "battery at or below the low-battery alert threshold",
    "battery": f"battery estimated to reach the low-battery threshold within {DAYS_LEFT_VISIT} days",
    "drift": "quality control flags a drift against its peers (DRIFT) since the last visit",
    "level_shift": f"a level shift: {LEVEL_SHIFT_HOURS} h or more flagged STEP in the last {QC_DAYS} days",
    "qc": f"a quality-control flag seen on {QC_PERSISTENT_DAYS} or more of the last {QC_DAYS} days",
}
RANK = {k: i for i, k in enumerate(REASONS)}


def _flag_names(bits: int) -> list[str]:
    return [f.name for f in QcFlag if bits & int(f) and f.name]


@dataclass(frozen=True, slots=True)
class Battery:
    unit: str | None  # "V", "%" or None when the device reports no battery
    threshold: float | None
    last: float | None
    last_time_ms: int | None
    slope_per_day: float | None
    days_left: float | None
    days_left_range: tuple[float | None, float | None] | None
    status: str  # ok | falling | low | not_falling | too_few | none
    points: int
    since_ms: int | None

    def to_json(self) -> dict[str, Any]:
        r = (lambda v, n=3: None if v is None or not math.isfinite(v) else round(v, n))  # noqa: E731
        rng = self.days_left_range
        return {"unit": self.unit, "threshold": self.threshold, "last": r(self.last),
                "last_time_ms": self.last_time_ms, "slope_per_day": r(self.slope_per_day, 4),
                "days_left": r(self.days_left, 1),
                "days_left_range": [r(rng[0], 1), r(rng[1], 1)] if rng else None,
                "status": self.status, "points": self.points, "since_ms": self.since_ms}


def battery_unit(points: Sequence[Mapping[str, Any]]) -> str | None:
    """Volts when the device reports them, else percent, else None."""
    if any(p.get("battery_v") is not None for p in points):
        return "V"
    if any(p.get("battery_pct") is not None for p in points):
        return "%"
    return None


def battery_estimate(points: Sequence[Mapping[str, Any]], thresholds: AlertThresholds, now_ms: int,
                     since_ms: int | None = None) -> Battery:
    """Days until the battery reaches the low-battery alert's threshold, from a robust linear fit.

    ``points``: {time (ms), battery_v, battery_pct} medians of 6-hour buckets, oldest first. The fit is Theil–Sen
    (the median of the pairwise slopes: one bad bucket, or a cold night's voltage dip, cannot swing it) over the
    last :data:`FIT_DAYS` days after ``since_ms`` (the last visit that changed the battery). The battery is
    *falling* only when the slope's 90 % interval is below zero; the estimate runs from the fitted level at the
    newest point to the threshold, with the interval's slopes giving its range.
    """
    unit = battery_unit(points)
    if unit is None:
        return Battery(None, None, None, None, None, None, None, "none", 0, since_ms)
    key, threshold = ("battery_v", thresholds.battery_v) if unit == "V" else ("battery_pct", thresholds.battery_pct)
    series = [(int(p["time"]), float(p[key])) for p in points
              if p.get(key) is not None and (since_ms is None or int(p["time"]) >= since_ms)]
    if not series:
        return Battery(unit, threshold, None, None, None, None, None, "too_few", 0, since_ms)
    last_t, last_v = series[-1]
    recent = [(t, v) for t, v in series if t >= last_t - FIT_DAYS * DAY_MS]
    t = np.array([(x - last_t) / DAY_MS for x, _ in recent])
    v = np.array([y for _, y in recent])
    base = {"unit": unit, "threshold": threshold, "last": last_v, "last_time_ms": last_t, "points": len(recent),
            "since_ms": since_ms}
    if last_v <= threshold:
        return Battery(**base, slope_per_day=None, days_left=0.0, days_left_range=None, status="low")
    if len(recent) < FIT_MIN_POINTS or t[-1] - t[0] < FIT_MIN_SPAN_DAYS:
        return Battery(**base, slope_per_day=None, days_left=None, days_left_range=None, status="too_few")
    slope, intercept, low, high = stats.theilslopes(v, t, alpha=FIT_CONFIDENCE)
    if not high < 0:
        return Battery(**base, slope_per_day=float(slope), days_left=None, days_left_range=None, status="not_falling")
    level = intercept  # the fit at the newest point (t = 0)
    # Time runs from the newest point; the estimate counts from now.
    elapsed = (now_ms - last_t) / DAY_MS
    left = max(0.0, (level - threshold) / -slope - elapsed)
    rng = (max(0.0, (level - threshold) / -low - elapsed), max(0.0, (level - threshold) / -high - elapsed))
    return Battery(**base, slope_per_day=float(slope), days_left=float(left), days_left_range=rng, status="falling")


def qc_history(rows: Iterable[Mapping[str, Any]], tz: ZoneInfo) -> dict[str, dict[str, dict[str, int]]]:
    """sensor → local day (ISO) → flag name → flagged hours, from the flagged hourly rows (time ms, sensor, qc)."""
    out: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for r in rows:
        qc = int(r.get("qc") or 0)
        if not qc:
            continue
        day = datetime.fromtimestamp(int(r["time"]) / 1000, tz).date().isoformat()
        c = out[str(r.get("sensor"))][day]
        c["any"] += 1
        for name in _flag_names(qc):
            c[name] += 1
    return {s: {d: dict(c) for d, c in sorted(days.items())} for s, days in out.items()}


def reasons_to_visit(*, silent_s: float | None, offline_s: int, battery: Battery,
                     history: Mapping[str, Mapping[str, int]], today: date, last_visit: Visit | None,
                     tz: ZoneInfo) -> list[dict[str, Any]]:
    """Why a technician should go and see this sensor: each reason with its code and plain words, most urgent first.

    QC flags count only on days after the last visit (whatever it did: the technician has seen the sensor), and
    only the flags a visit can fix (:data:`SITE_FLAGS`).
    """
    out: list[dict[str, Any]] = []
    if silent_s is None or silent_s > offline_s:
        text = ("never heard from in the window" if silent_s is None
                else f"silent for {_duration(silent_s)}")
        out.append({"code": "silent", "text": text, "silent_s": None if silent_s is None else int(silent_s)})
    if battery.status == "low":
        out.append({"code": "battery_low", "text": f"battery at {battery.last:g} {battery.unit} "
                                                   f"(threshold {battery.threshold:g} {battery.unit})"})
    elif battery.status == "falling" and battery.days_left is not None and battery.days_left < DAYS_LEFT_VISIT:
        out.append({"code": "battery", "text": f"battery empty in about {battery.days_left:.0f} days "
                                               f"({battery.last:g} {battery.unit}, "
                                               f"{battery.slope_per_day:+.3g} {battery.unit}/day)",
                    "days_left": round(battery.days_left, 1)})
    visited = (datetime.fromtimestamp(last_visit.at_ms / 1000, tz).date() if last_visit is not None else None)
    recent = {d: c for d, c in history.items() if (today - date.fromisoformat(d)).days < QC_DAYS
              and (visited is None or date.fromisoformat(d) > visited)}
    days_with: Counter[str] = Counter()
    hours_with: Counter[str] = Counter()
    for counts in recent.values():
        for name, hours in counts.items():
            if name != "any" and QcFlag[name] & SITE_FLAGS:
                days_with[name] += 1
                hours_with[name] += hours
    if days_with["DRIFT"]:
        out.append({"code": "drift", "text": f"drifting against its peers ({days_with['DRIFT']} of the last "
                                             f"{QC_DAYS} days)", "days": days_with["DRIFT"]})
    if hours_with["STEP"] >= LEVEL_SHIFT_HOURS:
        out.append({"code": "level_shift", "text": f"level shift: {hours_with['STEP']} h flagged STEP in the last "
                                                   f"{QC_DAYS} days", "hours": hours_with["STEP"]})
    persistent = sorted(n for n, d in days_with.items() if d >= QC_PERSISTENT_DAYS and n not in ("DRIFT", "STEP"))
    if persistent:
        out.append({"code": "qc", "text": "persistent quality-control flags: " + ", ".join(
            f"{n} ({days_with[n]} of {QC_DAYS} days)" for n in persistent), "flags": persistent})
    return sorted(out, key=lambda r: RANK[r["code"]])


def priority_key(item: Mapping[str, Any]) -> tuple[Any, ...]:
    """Most urgent first: the best-ranked reason, then more reasons, then the battery's days left, then the id."""
    reasons = item["reasons"]
    days = item.get("battery", {}).get("days_left")
    return (min(RANK[r["code"]] for r in reasons), -len(reasons), days if days is not None else math.inf,
            item["sensor"])


def _duration(seconds: float) -> str:
    h = seconds / 3600
    if h < 48:
        return f"{h:.0f} h" if h >= 1 else f"{seconds / 60:.0f} min"
    return f"{h / 24:.0f} days"


_NOT_ALNUM = re.compile(r"[^0-9a-z]")


def device_key(value: str) -> str:
    """A device name compared whatever its case and separators (a DevEUI is written 70B3D5…, 70-b3-d5-…)."""
    return _NOT_ALNUM.sub("", value.lower())


def last_battery_change(visits: Sequence[Visit]) -> int | None:
    changed = [v.at_ms for v in visits if BATTERY_ACTIONS & set(v.actions)]
    return max(changed) if changed else None
