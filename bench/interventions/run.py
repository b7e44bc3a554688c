"""Intervention-effect simulation: false discoveries, power and coverage of the weather-adjusted
difference-in-differences (``heatwatch.api.insights.did``) on seeded panels.

    .venv/bin/python -m bench.interventions                 # 4000 panels per scenario (~10 min on 2 cores)
    .venv/bin/python -m bench.interventions --trials 500    # quick look
    .venv/bin/python -m bench.interventions --only warmer cooler --jobs 2
    .venv/bin/python -m bench.interventions --batches 4 --only same warmer_persistent   # the block count

Each panel (``heatwatch.simulate.panels``) is a treated street sensor and six controls of the same
kind over a summer before and a summer after the works, with a shared weather that the treated and
controls feel with their own gains, sensor noise, missing days and outages. Per scenario, with and
without the weather adjustment (the latter is the estimator heatwatch used before: batch means of
the raw contrast):

* null scenarios (no true effect): the share of panels declared significant at alpha = 5 % — the
  false-discovery rate — with its 95 % Clopper–Pearson interval, and the placebo test's rejections;
* effect scenarios: the share declared significant (power) and the interval's coverage of the truth.

Results: a Markdown table on stdout (the one in docs/science/interventions.md) and JSON in
``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from heatwatch.api.insights.did import TRENDS_REJECTED, DidConfig, diff_in_diff
from heatwatch.simulate.panels import PanelSpec, summer_panel

RESULTS = Path(__file__).resolve().parent.parent / "results"
ALPHA = 0.05
WARMER = {"warmer_after": 2.0, "calmer_after": 0.5}
COOLER = {"warmer_after": -2.0, "calmer_after": -0.5}
SEASONS = {"days_before": 92, "days_after": 92, "gap": 270}

#: name -> (spec, what it shows)
SCENARIOS: dict[str, tuple[PanelSpec, str]] = {
    "same": (PanelSpec(), "no effect, same weather both sides"),
    "warmer": (PanelSpec(**WARMER), "no effect, after summer +2 °C and calmer (+0.5 sd)"),
    "cooler": (PanelSpec(**COOLER), "no effect, after summer −2 °C and windier (−0.5 sd)"),
    "warmer_hotspot": (PanelSpec(hot_spot=True, **WARMER), "no effect, warmer after, treated = hot spot"),
    "cooler_hotspot": (PanelSpec(hot_spot=True, **COOLER), "no effect, cooler after, treated = hot spot"),
    "warmer_persistent": (PanelSpec(noise_rho=0.8, **WARMER), "no effect, warmer after, sensor noise AR(1) 0.8"),
    "warmer_seasons": (PanelSpec(**SEASONS, **WARMER), "no effect, summer to summer (92 + 92 days), warmer"),
    "cooler_short": (PanelSpec(days_before=30, days_after=30, **COOLER), "no effect, 30 + 30 days, cooler"),
    "limit_unobserved": (PanelSpec(unobserved_after=0.5, **WARMER),
                         "limit: the after summer also windier in a way Tn/Tx do not show"),
    "limit_drift": (PanelSpec(drift=0.3, **WARMER), "limit: treated sensor drifting +0.3 °C per 100 days"),
    "effect05_warmer": (PanelSpec(effect=-0.5, **WARMER), "−0.5 °C, warmer after"),
    "effect05_cooler": (PanelSpec(effect=-0.5, **COOLER), "−0.5 °C, cooler after"),
    "effect05_hotspot": (PanelSpec(effect=-0.5, hot_spot=True, **WARMER), "−0.5 °C, warmer after, hot spot"),
    "effect05_seasons": (PanelSpec(effect=-0.5, **SEASONS, **WARMER), "−0.5 °C, summer to summer, warmer"),
    "effect05_short": (PanelSpec(effect=-0.5, days_before=30, days_after=30, **WARMER), "−0.5 °C, 30 + 30 days"),
    "effect10_warmer": (PanelSpec(effect=-1.0, **WARMER), "−1 °C, warmer after"),
    "effect10_cooler": (PanelSpec(effect=-1.0, **COOLER), "−1 °C, cooler after"),
    "effect10_hotspot": (PanelSpec(effect=-1.0, hot_spot=True, **WARMER), "−1 °C, warmer after, hot spot"),
    "effect10_short": (PanelSpec(effect=-1.0, days_before=30, days_after=30, **WARMER), "−1 °C, 30 + 30 days"),
}


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def run_scenario(args: tuple[str, int, int, int]) -> dict[str, Any]:
    name, trials, seed, batches = args
    spec, text = SCENARIOS[name]
    cfg = DidConfig(alpha=ALPHA, batches=batches)
    sig = sig_raw = covered = covered_raw = placebo_rej = sig_gated = 0
    dfs, ests, t0 = [], [], time.perf_counter()
    for i in range(trials):
        rng = np.random.default_rng([seed, i])
        p = summer_panel(rng, spec)
        adj = diff_in_diff(p.values, p.treated, p.period, cfg, p.weather)
        raw = diff_in_diff(p.values, p.treated, p.period, cfg)
        assert adj.status == "ok" and adj.weather_adjusted and raw.status == "ok", (name, i, adj.reasons)
        sig += adj.significant
        sig_raw += raw.significant
        covered += adj.ci_low <= spec.effect <= adj.ci_high
        covered_raw += raw.ci_low <= spec.effect <= raw.ci_high
        rejected = adj.placebo.parallel_trends == TRENDS_REJECTED
        placebo_rej += rejected
        sig_gated += adj.significant and not rejected
        dfs.append(adj.df)
        ests.append(adj.estimate)
    lo, hi = clopper_pearson(sig, trials)
    return {
        "scenario": name, "what": text, "trials": trials, "true_effect": spec.effect,
        "significant": sig / trials, "significant_ci95": [lo, hi],
        "significant_unadjusted": sig_raw / trials,
        "significant_and_placebo_passed": sig_gated / trials,
        "placebo_rejects": placebo_rej / trials,
        "coverage": covered / trials, "coverage_unadjusted": covered_raw / trials,
        "mean_estimate": float(np.mean(ests)), "sd_estimate": float(np.std(ests)),
        "mean_df": float(np.mean(dfs)), "ms_per_panel": (time.perf_counter() - t0) / trials * 1000,
        "spec": asdict(spec),
    }


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| scenario | true effect | significant (adjusted) [95 % CI] | unadjusted | placebo rejects | "
           "coverage adj. / unadj. |", "|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["significant_ci95"]
        out.append(f"| {r['what']} | {r['true_effect']:+.1f} °C | **{r['significant']:.1%}** [{lo:.1%}, {hi:.1%}] | "
                   f"{r['significant_unadjusted']:.1%} | {r['placebo_rejects']:.1%} | "
                   f"{r['coverage']:.1%} / {r['coverage_unadjusted']:.1%} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.interventions", description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=4000, help="panels per scenario")
    ap.add_argument("--seed", type=int, default=20250715)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="scenarios to run (default: all)")
    ap.add_argument("--batches", type=int, default=DidConfig().batches,
                    help="blocks of consecutive days per period (the estimator's default: 3)")
    args = ap.parse_args(argv)
    names = args.only or list(SCENARIOS)
    work = [(n, args.trials, args.seed + i, args.batches) for i, n in enumerate(names)]
    t0 = time.perf_counter()
    if args.jobs > 1:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            rows = pool.map(run_scenario, work)
    else:
        rows = [run_scenario(w) for w in work]
    print(table(rows))
    print(f"\n{args.trials} panels per scenario, alpha {ALPHA}, {args.batches} blocks per period, "
          f"{time.perf_counter() - t0:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"interventions-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps({"trials": args.trials, "seed": args.seed, "alpha": ALPHA, "batches": args.batches,
                               "machine": platform.platform(), "rows": rows}, indent=1), encoding="utf-8")
    print(f"results: {out}")
    return 0

