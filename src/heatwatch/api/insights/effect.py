"""The effect of one recorded intervention: difference-in-differences on nocturnal UHI and on hot
hours, treated sensors against control sensors, over windows of days around the works.

Day attribution follows the analytics writer: the daily row of local day D holds the night that
ends on the morning of D. The intervention day itself is left out (works in progress); the first
"after" night is the one ending on the morning of D+1, wholly after the works.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from heatwatch.core.influx import InfluxClient
from heatwatch.core.interventions import Intervention
from heatwatch.core.model import Sensor, Town

from .did import AFTER, BEFORE, EXCLUDED, DidConfig, conclusion, diff_in_diff
from .queries import daily_rows

OUTCOMES: dict[str, dict[str, str]] = {
    "uhi_night": {"field": "uhi_night_max", "label": "nocturnal UHI (nightly maximum)", "unit": "°C",
                  "description": "daily uhi_night_max: the night's highest hourly UHI, 18:00–06:00 local"},
    "hot_hours": {"field": "hours_ge_30", "label": "hours at or above 30 °C per day", "unit": "h",
                  "description": "daily hours_ge_30: hours whose mean temperature reached 30 °C"},
}
#: hot hours are zero outside hot spells: ask for hot days on both sides before comparing them
MIN_HOT_DAYS = 3

LIMITS = ("Difference-in-differences assumes that, without the intervention, treated and control sensors would "
          "have kept the same gap (parallel trends): choose controls on comparable sites, and beware of other "
          "works near any sensor during the window. A summer without hot days leaves hot hours at zero everywhere: "
          "nothing to compare. A young planting shades little in its first summers: an effect may take years.")


@dataclass(frozen=True, slots=True)
class EffectWindow:
    before_days: int = 60
    after_days: int = 60
    alpha: float = 0.05

    def spans(self, day: date) -> tuple[date, date, date, date]:
        return (day - timedelta(days=self.before_days), day - timedelta(days=1),
                day + timedelta(days=1), day + timedelta(days=self.after_days))


def default_controls(town: Town, sensors: Iterable[Sensor], treated: Sequence[str],
                     others: Iterable[Intervention], first: date, last: date) -> list[str]:
    """Every placed, active, non-reference sensor of the town that is not treated, and not concerned by
    another intervention dated inside the window (its own change would contaminate the comparison)."""
    busy = {s for o in others if first <= o.date <= last for s in o.sensors}
    refs = set(town.reference_sensors)
    return sorted(s.id for s in sensors
                  if s.town == town.id and s.placed and not s.retired and not s.is_reference
                  and s.id not in refs and s.id not in treated and s.id not in busy)


def panel(rows: Iterable[Any], field: str, sensors: Sequence[str], days: Sequence[date]) -> np.ndarray:
    index = {d: i for i, d in enumerate(days)}
    col = {s: j for j, s in enumerate(sensors)}
    y = np.full((len(days), len(sensors)), np.nan)
    for r in rows:
        v = r.get(field)
        if v is None or r.day not in index or r.sensor not in col:
            continue
        y[index[r.day], col[r.sensor]] = float(v)
    return y


async def evaluate(client: InfluxClient, town: Town, item: Intervention, controls: Sequence[str],
                   window: EffectWindow, *, controls_source: str) -> dict[str, Any]:
    tz = ZoneInfo(town.timezone)
    b0, b1, a0, a1 = window.spans(item.date)
    treated = list(item.sensors)
    everyone = [*treated, *controls]
    rows = await daily_rows(client, town.id, b0, a1, tz, fields=("uhi_night_max", "hours_ge_30"), sensors=everyone)
    days = [b0 + timedelta(days=i) for i in range((a1 - b0).days + 1)]
    period = np.array([BEFORE if d < item.date else AFTER if d > item.date else EXCLUDED for d in days])
    is_treated = np.array([s in set(treated) for s in everyone])
    cfg = DidConfig(alpha=window.alpha)
    outcomes: dict[str, Any] = {}
    for key, spec in OUTCOMES.items():
        c = replace(cfg, min_active_days=MIN_HOT_DAYS) if key == "hot_hours" else cfg
        res = diff_in_diff(panel(rows, spec["field"], everyone, days), is_treated, period, c)
        d = res.as_dict()
        d["treated_used"] = [everyone[i] for i in res.treated_used]
        d["controls_used"] = [everyone[i] for i in res.controls_used]
        d = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}
        outcomes[key] = {"label": spec["label"], "unit": spec["unit"], "field": spec["field"],
                         "description": spec["description"], **d,
                         "conclusion": conclusion(res, spec["label"], spec["unit"])}
    ok = [o for o in outcomes.values() if o["status"] == "ok"]
    return {
        "intervention": item.model_dump(mode="json"),
        "window": {"before": {"from": b0.isoformat(), "to": b1.isoformat()},
                   "after": {"from": a0.isoformat(), "to": a1.isoformat()},
                   "excluded": [item.date.isoformat()], "timezone": town.timezone},
        "treated": treated,
        "controls": list(controls),
        "controls_source": controls_source,
        "status": "ok" if len(ok) == len(outcomes) else "partial" if ok else "insufficient_data",
        "outcomes": outcomes,
        "method": {
            "estimator": "difference-in-differences on daily values, each sensor centred on its own 'before' mean",
            "interval": f"{1 - window.alpha:.0%} batch-means t interval ({cfg.batches} consecutive blocks of days per "
                        f"period, {2 * cfg.batches - 2} degrees of freedom), robust to day-to-day weather persistence",
            "minimums": {"days_each_side": cfg.min_days, "control_sensors": cfg.min_controls,
                         "treated_sensors": cfg.min_treated, "sensor_coverage_each_side": cfg.min_coverage,
                         "hot_days_each_side": MIN_HOT_DAYS},
            "qc": "sensor-days flagged AVAILABILITY or UNPLACED by analytics are left out",
        },
        "limits": LIMITS,
    }
