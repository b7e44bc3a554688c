"""QC validation: false positives on healthy sensors and detection per fault type (docs/science/qc.md).

    .venv/bin/python -m bench.qc                 # 5 seeds × 28 days, the table of docs/science/qc.md
    .venv/bin/python -m bench.qc --seeds 1       # quick look

The simulated town is ``tests/analytics/qctown.py``: a dozen street sensors of one kind close
together, hot spots (+0.6, +1.5 and +2.7 °C above the streets at night) and tree-lined cool spots
(−0.8, −1.6, −2.4 °C), four parks, four suburbs, a rural reference, sunny and overcast days and a
heat wave, 5-minute readings; plus one street per fault type (stuck, spikes, a −15 °C excursion of
50 min every three days, a +8 °C shift of six hours, fast and slow drifts, no radiation shield, a
−8 °C calibration error, out-of-season values, a sensor moved indoors) and a second town where four
dense streets run 1.5 times the nocturnal UHI of two parks and two suburbs.

Rates are over sensor-hours: an hour counts as flagged when any of its readings carries a value
flag (false positives) or one of the flags expected for the fault (detection). Each fault's hours
are those where the fault acts (drifts: once 1 °C off; radiation: once the error is 1 °C, and
separately 2 °C, the check's threshold). The same towns go through the CrowdQC+ town-wide z-score
(every sensor as a crowd station) for comparison: what the previous design did to hot places.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from analytics import qctown  # noqa: E402
from heatwatch.analytics.qc import VALUE_FLAGS, QcFlag, run_qc  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LABELS = {
    "f-stuck": "stuck (20 h)", "f-spikes": "spikes ±6…10 °C", "f-shift": "−15 °C for 50 min",
    "f-shift-long": "+8 °C for 6 h", "f-drift-fast": "drift 0.5 °C/day", "f-drift-slow": "drift 0.15 °C/day",
    "f-sun": "no radiation shield", "f-offset": "−8 °C calibration", "f-range": "out-of-season values",
    "f-indoor": "moved indoors",
}


def hourly(q: pd.DataFrame, town: qctown.QcTown) -> pd.DataFrame:
    hour = q["time"].dt.floor("h")
    g = q.assign(bad=town.truth, error=town.error).groupby([q["sensor"], hour])
    return pd.DataFrame({"qc": g["qc"].agg(lambda s: int(np.bitwise_or.reduce(s.to_numpy()))),
                         "bad": g["bad"].any(), "error": g["error"].mean()})


def flagged(qc: pd.Series, flags: int) -> pd.Series:
    return (qc.astype("int64") & flags) != 0


def evaluate(seed: int, days: int, crowd: bool) -> dict[str, Any]:
    town = qctown.build(seed=seed, days=days)
    sites = {s: replace(site, crowd=True) for s, site in town.sites.items()} if crowd else town.sites
    t0 = time.perf_counter()
    q = run_qc(town.readings, sites=sites, cool_sites=town.cool_sites, position=qctown.CENTRE)
    seconds = time.perf_counter() - t0
    h = hourly(q, town)
    sensor = h.index.get_level_values(0)
    out: dict[str, Any] = {"seconds": round(seconds, 2), "readings": len(q)}
    healthy = h[sensor.isin(town.healthy)]
    out["fp_healthy"] = float(flagged(healthy["qc"], int(VALUE_FLAGS)).mean())
    out["healthy_sensors"], out["healthy_hours"] = len(town.healthy), len(healthy)
    spots = h[sensor.isin(town.hot_and_cool_spots)]
    out["fp_spots"] = float(flagged(spots["qc"], int(VALUE_FLAGS)).mean())
    out["fp_hot_spot"] = float(flagged(h.loc["hot-spot", "qc"], int(VALUE_FLAGS)).mean())
    for sid, kind in town.kinds.items():
        x = h.loc[sid]
        expected = sum(int(QcFlag[name]) for name in qctown.EXPECTED[kind])
        out[f"det_{sid}"] = float(flagged(x.loc[x["bad"], "qc"], expected).mean())
        if sid == "f-sun":
            out["det_f-sun_2c"] = float(flagged(x.loc[x["error"] > 2.0, "qc"], expected).mean())
    dense = qctown.build(seed=seed, days=days, faults=False, layout=qctown.DENSE_STREETS)
    dsites = {s: replace(site, crowd=True) for s, site in dense.sites.items()} if crowd else dense.sites
    dq = run_qc(dense.readings, sites=dsites, cool_sites=dense.cool_sites, position=qctown.CENTRE)
    dh = hourly(dq, dense)
    streets = dh[dh.index.get_level_values(0).str.startswith("dense")]
    out["fp_dense_streets"] = float(flagged(streets["qc"], int(VALUE_FLAGS)).mean())
    return out


def pct(values: list[float]) -> str:
    lo, hi, mean = min(values), max(values), float(np.mean(values))
    fmt = "{:.2%}" if hi < 0.01 else "{:.1%}"
    if lo == hi:
        return fmt.format(mean)
    return f"{fmt.format(mean)} ({fmt.format(lo)}–{fmt.format(hi)})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.qc", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--days", type=int, default=28)
    args = p.parse_args(argv)
    runs = {profile: [evaluate(seed, args.days, profile == "crowd") for seed in range(1, args.seeds + 1)]
            for profile in ("town", "crowd")}
    first = runs["town"][0]
    rows = [(f"healthy sensors ({first['healthy_sensors']}: streets, hot and cool spots, parks, suburbs, reference; "
             f"{first['healthy_hours']:,} sensor-hours per seed)", "fp_healthy"),
            ("the six hot and cool spots", "fp_spots"), ("the +4.6 °C hot spot", "fp_hot_spot"),
            ("four dense streets at 1.5× the UHI of parks and suburbs", "fp_dense_streets")]
    print(f"QC on the simulated town, {args.seeds} seeds × {args.days} days, 5-minute readings: mean (range)\n")
    print("| false positives: share of sensor-hours flagged | town network (peers) | CrowdQC+ town-wide z-score |")
    print("|---|---|---|")
    for label, key in rows:
        print(f"| {label} | {pct([r[key] for r in runs['town']])} | {pct([r[key] for r in runs['crowd']])} |")
    print("\n| fault (one street sensor each) | detected: share of its faulty hours flagged |")
    print("|---|---|")
    for sid, label in LABELS.items():
        print(f"| {label} | {pct([r[f'det_{sid}'] for r in runs['town']])} |")
        if sid == "f-sun":
            print(f"| no radiation shield, hours with an error above 2 °C | "
                  f"{pct([r['det_f-sun_2c'] for r in runs['town']])} |")
    secs = [r["seconds"] for r in runs["town"]]
    print(f"\nrun_qc: {np.mean(secs):.2f} s per town ({runs['town'][0]['readings']:,} readings)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"qc-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"seeds": args.seeds, "days": args.days, "runs": runs}, indent=1))
    print(f"results: {out}")
    return 0
