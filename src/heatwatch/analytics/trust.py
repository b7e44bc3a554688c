"""Trust of citizen sensors: provisional until they have earned confirmation (docs/citizens.md).

A citizen or crowd sensor (core/trust.py) enters *provisional*: computed and published (marked provisional),
never counted in the town's indices. It becomes *confirmed* — counted with the citizen weight — once

* it has been provisional for at least ``probation_days`` (from ``trust_since``, else ``installed``), and
* over the last ``probation_days``, it reported in at least ``min_coverage`` of the hours, and
* at most ``max_flagged`` of those hours carry a QC fault flag (the crowd profile: CrowdQC+ town-wide z-score,
  radiation, monthly flagged share and correlation — a sensor in the sun or indoors fails here).

A confirmed sensor whose last window has more than twice ``max_flagged`` of its hours flagged goes back to
provisional (a sensor moved indoors, a shield lost). Each change is written to the registry with the day it
happened (``trust_since``) and logged. Pure function: the job reads the hourly rows and writes the registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from heatwatch.core.measurements import INFO_FLAGS, QcFlag
from heatwatch.core.model import Sensor
from heatwatch.core.trust import network_of

#: Flags that make an hour "failed" for trust: every fault; not the information-only ones, and not UNPLACED
#: (a registry matter) nor AVAILABILITY (presence is counted apart).
FAULTS = ~(int(INFO_FLAGS) | int(QcFlag.UNPLACED) | int(QcFlag.AVAILABILITY))


@dataclass(frozen=True, slots=True)
class TrustRules:
    probation_days: int = 14
    min_coverage: float = 0.8
    max_flagged: float = 0.1


@dataclass(frozen=True, slots=True)
class Verdict:
    sensor: str
    trust: str
    changed: bool
    coverage: float
    flagged: float
    reason: str


def review(sensors: Iterable[Sensor], hourly: pd.DataFrame, today: date, rules: TrustRules) -> list[Verdict]:
    """Each citizen sensor's trust as of ``today`` from its hourly rows (columns sensor, time, n, qc) of the
    last ``rules.probation_days`` days."""
    start = pd.Timestamp(today - timedelta(days=rules.probation_days), tz="UTC")
    end = pd.Timestamp(today, tz="UTC")
    h = hourly[(hourly["time"] >= start) & (hourly["time"] < end)] if len(hourly) else hourly
    hours = rules.probation_days * 24
    out = []
    for s in sensors:
        if network_of(s) != "citizen" or s.retired:
            continue
        mine = h[h["sensor"] == s.id] if len(h) else h
        present = mine[mine["n"].fillna(0) > 0] if len(mine) else mine
        coverage = len(present) / hours
        bad = int(((present["qc"].fillna(0).astype("int64") & FAULTS) != 0).sum()) if len(present) else 0
        flagged = bad / len(present) if len(present) else 0.0
        current = s.trust or "provisional"
        since = s.trust_since or s.installed
        if current == "provisional":
            if since is None or (today - since).days < rules.probation_days:
                until = (since or today) + timedelta(days=rules.probation_days)
                trust, why = "provisional", f"in probation until {until}"
            elif coverage < rules.min_coverage:
                trust, why = "provisional", f"reported {coverage:.0%} of the last {rules.probation_days} days"
            elif flagged > rules.max_flagged:
                trust, why = "provisional", f"{flagged:.0%} of its hours flagged by quality control"
            else:
                trust, why = "confirmed", (f"passed quality control for {rules.probation_days} days ({coverage:.0%} "
                                           f"present, {flagged:.0%} flagged)")
        elif flagged > 2 * rules.max_flagged and len(present):
            trust, why = "provisional", f"{flagged:.0%} of its recent hours flagged: back in probation"
        else:
            trust, why = "confirmed", "still passing quality control"
        out.append(Verdict(s.id, trust, trust != current or s.trust is None, round(coverage, 3), round(flagged, 3),
                           why))
    return out


def apply(sensors: Iterable[Sensor], verdicts: Iterable[Verdict], today: date) -> list[Sensor]:
    """The registry entries to write: sensors whose trust changed, stamped ``today``."""
    by_id = {s.id: s for s in sensors}
    out = []
    for v in verdicts:
        s = by_id[v.sensor]
        if v.trust != (s.trust or "provisional"):
            out.append(s.model_copy(update={"trust": v.trust, "trust_since": today}))
        elif s.trust is None:  # registered without a state (a registry file): provisional from today
            out.append(s.model_copy(update={"trust": "provisional", "trust_since": s.trust_since or s.installed
                                            or today}))
    return out
