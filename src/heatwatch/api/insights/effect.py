"""The effect of one recorded intervention: weather-adjusted difference-in-differences on nocturnal UHI and
on hot hours, treated sensors against matched control sensors, over windows of days around the works.
Science and choices: docs/science/interventions.md.

Day attribution follows the analytics writer: the daily row of local day D holds the night that ends
on the morning of D. Every day of the works, ``start`` … ``end``, is left out; the first "after"
night is the one ending on the morning of end + 1, wholly after the works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

from heatwatch.core.influx import InfluxClient
from heatwatch.core.interventions import Intervention
from heatwatch.core.model import Sensor, SiteClass, Town

from .did import AFTER, BEFORE, EXCLUDED, DidConfig, conclusion, diff_in_diff
from .queries import daily_rows, reference_weather
from .rankings import season_window

#: Each outcome with the reference weather it is adjusted for: (daily field of the reference, day offset).
#: The night in row D runs from the evening of D−1 to the morning of D: its weather is the afternoon
#: before (Tx of D−1) and the morning minimum (Tn of D). Hot hours of D are daytime hours of D.
OUTCOMES: dict[str, dict[str, Any]] = {
    "uhi_night": {"field": "uhi_night_max", "label": "nocturnal UHI (nightly maximum)", "unit": "°C",
                  "description": "daily uhi_night_max: the night's highest hourly UHI, 18:00–06:00 local",
                  "weather": (("tn", 0), ("tx", -1)),
                  "weather_text": ["reference Tn of the morning that ends the night",
                                   "reference Tx of the afternoon before the night"]},
    "hot_hours": {"field": "hours_ge_30", "label": "hours at or above 30 °C per day", "unit": "h",
                  "description": "daily hours_ge_30: hours whose mean temperature reached 30 °C",
                  "weather": (("tx", 0), ("tn", 0)),
                  "weather_text": ["reference Tx of the day", "reference Tn of the day"]},
}
#: hot hours are zero outside hot spells: ask for hot days on both sides before comparing them
MIN_HOT_DAYS = 3

LIMITS = ("Difference-in-differences assumes that, without the intervention, treated and control sensors would "
          "have kept the same gap once the weather is accounted for (parallel trends): controls are matched by "
          "Local Climate Zone or site class, the estimate is adjusted for the town reference's daily Tn and Tx, "
          "and a placebo test on the 'before' period checks the assumption — but weather the reference does not "
          "see (wind, cloud at night) and changes near a control (other works, a moved sensor, a drifting sensor) "
          "can still bias it. A summer without hot days leaves hot hours at zero everywhere: nothing to compare. "
          "A young planting shades little in its first summers: an effect may take years.")

WindowMode = Literal["days", "seasons"]


@dataclass(frozen=True, slots=True)
class EffectWindow:
    """The days compared: ``before_days`` before the works and ``after_days`` after them (``days``), or the
    heat-wave season (1 June – 15 September) before the works against the one after them (``seasons``:
    works in winter, such as tree planting, are compared summer to summer)."""

    before_days: int = 60
    after_days: int = 60
    alpha: float = 0.05
    mode: WindowMode = "days"

    def spans(self, start: date, end: date) -> tuple[date, date, date, date]:
        """First and last day before the works, first and last day after them."""
        if self.mode == "seasons":
            year = start.year if start > season_window(start.year)[0] else start.year - 1
            b0, b_end = season_window(year)
            year = end.year if end < season_window(end.year)[1] else end.year + 1
            a_start, a1 = season_window(year)
            return b0, min(b_end, start - timedelta(days=1)), max(a_start, end + timedelta(days=1)), a1
        return (start - timedelta(days=self.before_days), start - timedelta(days=1),
                end + timedelta(days=1), end + timedelta(days=self.after_days))

    def describe(self) -> dict[str, Any]:
        if self.mode == "seasons":
            return {"mode": "seasons", "text": "the heat-wave season (1 June – 15 September) before the works "
                                               "against the season after them"}
        return {"mode": "days", "before_days": self.before_days, "after_days": self.after_days}


def busy_sensors(others: Iterable[Intervention], first: date, last: date) -> set[str]:
    """Sensors treated by another intervention whose works touch the window: their own change would
    contaminate the comparison."""
    busy: set[str] = set()
    for o in others:
        o_start, o_end = o.works
        if o_start <= last and (o_end is None or o_end >= first):
            busy.update(o.sensors)
    return busy


def match_controls(town: Town, sensors: Iterable[Sensor], treated: Sequence[str], others: Iterable[Intervention],
                   first: date, last: date, minimum: int = 3) -> tuple[list[str], str]:
    """Control sensors like the treated ones, and how they were chosen.

    Candidates: the town's placed, active sensors that are not rural references, not treated, and not
    treated by another intervention whose works touch the window. Among them, those of the treated
    sensors' Local Climate Zone(s) when every treated sensor has one and at least ``minimum`` match;
    else those of the treated sensors' site class(es). Never a mix of kinds of site: a park does not
    answer the weather like a street, and comparing them is the bias this avoids.
    """
    everyone = {s.id: s for s in sensors if s.town == town.id}
    busy = busy_sensors(others, first, last)
    refs = set(town.reference_sensors)
    pool = [s for s in everyone.values()
            if s.placed and not s.retired and not s.is_reference and s.id not in refs
            and s.id not in treated and s.id not in busy]
    mine = [everyone[t] for t in treated if t in everyone]
    lczs = sorted({s.lcz for s in mine if s.lcz})
    classes = sorted({str(s.site_class) for s in mine if s.site_class is not SiteClass.unplaced})
    if mine and lczs and all(s.lcz for s in mine):
        same = sorted(s.id for s in pool if s.lcz in lczs)
        if len(same) >= minimum:
            return same, f"matched: same Local Climate Zone as the treated sensor(s) ({', '.join(lczs)})"
    if not classes:
        return [], ("no control could be matched: the treated sensors have no site class in the registry; record "
                    "the controls with the intervention or give them in the request")
    same = sorted(s.id for s in pool if str(s.site_class) in classes)
    source = f"matched: same site class as the treated sensor(s) ({', '.join(classes)})"
    if lczs:
        source += f"; fewer than {minimum} sensors share their Local Climate Zone ({', '.join(lczs)})"
    if len(same) < minimum:
        source += ("; too few sensors of that class: record the controls with the intervention, or give them in "
                   "the request")
    return same, source


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


def weather_matrix(weather: Mapping[date, Mapping[str, float]], days: Sequence[date],
                   spec: Sequence[tuple[str, int]]) -> np.ndarray:
    """(days, covariates): the reference's daily field of day + offset, NaN when unknown."""
    out = np.full((len(days), len(spec)), np.nan)
    for i, d in enumerate(days):
        for j, (name, offset) in enumerate(spec):
            v = weather.get(d + timedelta(days=offset), {}).get(name)
            if v is not None:
                out[i, j] = v
    return out


def periods(days: Sequence[date], window: tuple[date, date, date, date]) -> np.ndarray:
    b0, b1, a0, a1 = window
    return np.array([BEFORE if b0 <= d <= b1 else AFTER if a0 <= d <= a1 else EXCLUDED for d in days])


def series_breaks(breaks: Mapping[str, Sequence[int]], sensors: Sequence[str], days: Sequence[date], tz: ZoneInfo
                  ) -> list[dict[str, Any]]:
    """The visits inside the compared days that started a new series of a treated or control sensor
    (core/maintenance.py: replaced, moved, recalibrated), as {sensor, day} with the local day."""
    if not days:
        return []
    out = []
    for s in sensors:
        for ms in breaks.get(s, ()):
            day = datetime.fromtimestamp(ms / 1000, tz).date()
            if days[0] <= day <= days[-1]:
                out.append({"sensor": s, "day": day})
    return out


def mask_across_breaks(y: np.ndarray, sensors: Sequence[str], days: Sequence[date], period: np.ndarray,
                       cut: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The panel with, for each sensor whose series breaks inside the window, only the days of the series that holds
    the first 'after' day (or the last 'before' day when it has no after day): never a comparison across a sensor
    replaced, moved or recalibrated. The day of the visit itself mixes both series and is left out."""
    if not cut:
        return y
    y = y.copy()
    col = {s: j for j, s in enumerate(sensors)}
    index = np.array([d.toordinal() for d in days])
    after = np.flatnonzero(period == AFTER)
    before = np.flatnonzero(period == BEFORE)
    anchor = index[after[0]] if len(after) else index[before[-1]] if len(before) else index[0]
    for sensor in {c["sensor"] for c in cut}:
        j = col[sensor]
        for c in (c for c in cut if c["sensor"] == sensor):
            b = c["day"].toordinal()
            y[index == b, j] = np.nan
            y[(index < b) if anchor >= b else (index > b), j] = np.nan
    return y


async def evaluate(client: InfluxClient, town: Town, item: Intervention, controls: Sequence[str],
                   window: EffectWindow, *, controls_source: str, references: Sequence[str] = (),
                   breaks: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
    """The effect document of the API and the seasonal report. ``references``: the town's rural
    reference sensors, whose daily Tn/Tx are the weather covariates. ``breaks``: per sensor, the instants (epoch
    ms) of the visits that started a new series (core/maintenance.py); no sensor is compared across one."""
    tz = ZoneInfo(town.timezone)
    start, end = item.works
    head: dict[str, Any] = {
        "intervention": item.model_dump(mode="json"),
        "treated": list(item.sensors),
        "controls": list(controls),
        "controls_source": controls_source,
    }
    if end is None:
        return head | {"status": "insufficient_data", "outcomes": {},
                       "reasons": [f"the works started on {start.isoformat()} and have no end date yet: set `end` "
                                   "(PATCH /v1/interventions/{id}) once they are finished"],
                       "method": method(DidConfig(alpha=window.alpha), window), "limits": LIMITS}
    b0, b1, a0, a1 = window.spans(start, end)
    treated = list(item.sensors)
    everyone = [*treated, *controls]
    rows = await daily_rows(client, town.id, b0, a1, tz, fields=("uhi_night_max", "hours_ge_30"), sensors=everyone)
    refs = list(dict.fromkeys(references or town.reference_sensors))
    weather = await reference_weather(client, town.id, refs, b0 - timedelta(days=1), a1, tz)
    days = [b0 + timedelta(days=i) for i in range((a1 - b0).days + 1)]
    period = periods(days, (b0, b1, a0, a1))
    is_treated = np.array([s in set(treated) for s in everyone])
    cut = series_breaks(breaks or {}, everyone, days, tz)
    cfg = DidConfig(alpha=window.alpha)
    missing = weather.missing or "no reference Tn/Tx"
    outcomes: dict[str, Any] = {}
    for key, spec in OUTCOMES.items():
        c = replace(cfg, min_active_days=MIN_HOT_DAYS) if key == "hot_hours" else cfg
        w = weather_matrix(weather.days, days, spec["weather"]) if weather.days else None
        y = mask_across_breaks(panel(rows, spec["field"], everyone, days), everyone, days, period, cut)
        res = diff_in_diff(y, is_treated, period, c, w,
                           [name for name, _ in spec["weather"]], missing)
        d = res.as_dict()
        d["treated_used"] = [everyone[i] for i in res.treated_used]
        d["controls_used"] = [everyone[i] for i in res.controls_used]
        d["placebo"] = placebo_doc(d["placebo"], days, res.status == "ok")
        d["weather_covariates"] = spec["weather_text"] if res.weather_adjusted else []
        outcomes[key] = {"label": spec["label"], "unit": spec["unit"], "field": spec["field"],
                         "description": spec["description"], **_rounded(d),
                         "conclusion": conclusion(res, spec["label"], spec["unit"])}
    ok = [o for o in outcomes.values() if o["status"] == "ok"]
    return head | {
        "window": {"before": {"from": b0.isoformat(), "to": b1.isoformat()},
                   "after": {"from": a0.isoformat(), "to": a1.isoformat()},
                   "excluded": {"from": start.isoformat(), "to": end.isoformat(),
                                "why": "the works themselves, and any day between the two windows"},
                   "timezone": town.timezone, **window.describe()},
        "weather": {"source": weather.source, "days_known": len(weather.days)},
        # Visits that started a new series inside the window: that sensor's other series is left out.
        "series_breaks": [{"sensor": c["sensor"], "day": c["day"].isoformat()} for c in cut],
        "status": "ok" if len(ok) == len(outcomes) else "partial" if ok else "insufficient_data",
        "outcomes": outcomes,
        "method": method(cfg, window),
        "limits": LIMITS,
    }


def placebo_doc(p: dict[str, Any], days: Sequence[date], ran: bool) -> dict[str, Any]:
    """The placebo with its two halves as dates."""
    out = {k: v for k, v in p.items() if k != "spans"}
    if not ran and not out["reasons"]:
        out["reasons"] = ["no estimate, so no placebo either"]
    if p.get("spans"):
        i0, i1, j0, j1 = p["spans"]
        out["first_half"] = {"from": days[i0].isoformat(), "to": days[i1].isoformat()}
        out["second_half"] = {"from": days[j0].isoformat(), "to": days[j1].isoformat()}
    return out


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    def r(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, dict):
            return {k: r(x) for k, x in v.items()}
        return v
    return {k: r(v) for k, v in d.items()}


def method(cfg: DidConfig, window: EffectWindow) -> dict[str, Any]:
    return {
        "estimator": "difference-in-differences of the daily treated−control contrast (each sensor centred on its "
                     "own 'before' mean), regressed on the period and on the town reference's daily Tn and Tx "
                     "(one source for the whole window: weather.source)",
        "weather": "the weather slopes are estimated from day-to-day variation within both periods, so a warmer, "
                   "calmer or cooler summer after the works is not taken for an effect",
        "interval": f"{1 - window.alpha:.0%} t interval, CR2 cluster-robust standard error over {cfg.batches} "
                    "consecutive blocks of days per period, Bell–McCaffrey degrees of freedom (robust to day-to-day "
                    "weather persistence)",
        "placebo": "the same estimator on the 'before' period alone, first half against second half: an interval "
                   "excluding zero means treated and controls were already moving apart (parallel trends doubtful)",
        "minimums": {"days_each_side": cfg.min_days, "control_sensors": cfg.min_controls,
                     "treated_sensors": cfg.min_treated, "sensor_coverage_each_side": cfg.min_coverage,
                     "hot_days_each_side": MIN_HOT_DAYS, "weather_known_share": cfg.min_weather_share,
                     "placebo_days_each_half": cfg.placebo_min_days},
        "qc": "sensor-days flagged AVAILABILITY or UNPLACED by analytics are left out",
        "series_breaks": "a sensor replaced, moved or recalibrated inside the window (the visit log) is used only "
                         "on the days of the series that holds the first 'after' day, its visit's day left out: "
                         "no comparison across the visit (it then often lacks the 'before' coverage and drops out)",
        "validation": "docs/science/interventions.md (false discoveries and power on seeded simulations)",
    }
