"""Validation of the drivers model and of regression-kriging maps (docs/science/drivers.md, "Validation").

1. **Calibration of the drivers model**: seeded synthetic towns of n sites (canopy 0–60 %, imperviousness
   falling with canopy as in real towns, r ≈ −0.9), nocturnal UHI = 2 − 0.04 × canopy + 0.015 × imperviousness
   + N(0, σ): how often the 95 % interval of the canopy effect covers the true −0.4 °C per 10 points, how often
   it excludes 0 (power), its mean width, and with no true effect how often it wrongly excludes 0.
2. **Maps**: Vitré's committed layers (tests/data/layers/, synthetic data in real formats) give the canopy
   and imperviousness of every 10 m cell; a true nocturnal field = the same law on them + a smooth spatial
   residual (a random sum of 2-D waves, wavelengths 0.6–2 km, sd 0.3 °C) + sensor noise N(0, 0.1); n
   sensors are drawn at random within 1.5 km of the centre. Per draw: the leave-one-sensor-out error of
   regression-kriging and of IDW, and their true error against the field on 400 random points within
   600 m of a sensor (what the map shows between sensors).

Results to ``bench/results/drivers-<time>.json``; the tables in docs/science/drivers.md come from
``python -m bench.drivers`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from heatwatch.api.insights.drivers import NotEnoughData, fit_drivers
from heatwatch.api.insights.kriging import idw_at, regression_kriging

RESULTS = Path(__file__).resolve().parent.parent / "results"


def town(rng: np.random.Generator, n: int, canopy_per_10: float, noise: float) -> tuple[dict, dict]:
    can = rng.uniform(0, 60, n)
    imp = np.clip(90 - 0.8 * can + rng.normal(0, 10, n), 5, 100)
    y = 2.0 + canopy_per_10 / 10 * can + 0.015 * imp + rng.normal(0, noise, n)
    ctx = {f"s{i}": {"canopy_100": float(can[i]), "impervious_100": float(imp[i])} for i in range(n)}
    return {f"s{i}": float(y[i]) for i in range(n)}, ctx


def calibration(draws: int) -> list[dict]:
    out = []
    for n in (8, 12, 20, 40):
        for noise in (0.25, 0.5):
            rng = np.random.default_rng(1000 * n + int(noise * 100))
            cover = power = null_fp = 0
            widths = []
            for _ in range(draws):
                e = fit_drivers(*town(rng, n, -0.4, noise), loo=False).effects()[0]
                lo, hi = e["ci95"]
                cover += lo <= -0.4 <= hi
                power += hi < 0
                widths.append(hi - lo)
                lo0, hi0 = fit_drivers(*town(rng, n, 0.0, noise), loo=False).effects()[0]["ci95"]
                null_fp += not (lo0 <= 0 <= hi0)
            out.append({"sites": n, "noise_c": noise, "draws": draws, "coverage": round(cover / draws, 3),
                        "power": round(power / draws, 3), "mean_width_c": round(float(np.mean(widths)), 3),
                        "false_effect_rate": round(null_fp / draws, 3)})
            print(json.dumps(out[-1]), flush=True)
    return out


def maps(draws: int) -> list[dict]:
    from tests.support.layers_town import import_layers

    from heatwatch.core.layers.context import cover_for
    from heatwatch.core.registry import example_files, sensors_from_csv
    from heatwatch.core.settings import CoreSettings

    town_ = CoreSettings.load().towns["vitre"]
    sensors = [s for name, text in example_files() for s in sensors_from_csv(text, name) if s.town == "vitre"]
    with tempfile.TemporaryDirectory() as tmp:
        store = import_layers(Path(tmp), town_, sensors)
        cover = cover_for(store, town_, sensors)
        from heatwatch.core.layers.extent import to_l93

        (cx,), (cy,) = to_l93([town_.longitude], [town_.latitude])
        out = []
        for n in (12, 25, 40):
            rng = np.random.default_rng(7 + n)
            rows = []
            for _ in range(draws):
                waves = [(rng.uniform(600, 2000), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)) for _ in range(6)]

                def resid(x: np.ndarray, y: np.ndarray, waves=waves) -> np.ndarray:
                    s = sum(np.cos(2 * np.pi * (np.cos(a) * x + np.sin(a) * y) / lam + ph) for lam, a, ph in waves)
                    return 0.3 * s / np.sqrt(len(waves) / 2)

                def truth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
                    can = cover.sample("canopy", 100, x, y) * 100
                    imp = cover.sample("impervious", 100, x, y) * 100
                    return 2.0 - 0.04 * can + 0.015 * imp + resid(x, y)

                r = 1500 * np.sqrt(rng.uniform(size=n * 3))
                a = rng.uniform(0, 2 * np.pi, n * 3)
                xs, ys = cx + r * np.cos(a), cy + r * np.sin(a)
                ok = np.isfinite(truth(xs, ys))
                xs, ys = xs[ok][:n], ys[ok][:n]
                vals = truth(xs, ys) + rng.normal(0, 0.1, len(xs))
                sites = [f"s{i}" for i in range(len(xs))]
                ctx = {s: {"canopy_100": float(cover.sample("canopy", 100, xs[i:i + 1], ys[i:i + 1])[0] * 100),
                           "impervious_100": float(cover.sample("impervious", 100, xs[i:i + 1], ys[i:i + 1])[0] * 100)}
                       for i, s in enumerate(sites)}
                # Check points: within 600 m of a sensor, where the map has cells.
                px, py = [], []
                while len(px) < 400:
                    k = rng.integers(len(xs))
                    rr, aa = 600 * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
                    px.append(xs[k] + rr * np.cos(aa))
                    py.append(ys[k] + rr * np.sin(aa))
                px_a, py_a = np.array(px), np.array(py)
                cell_ctx = {"canopy_100": cover.sample("canopy", 100, px_a, py_a) * 100,
                            "impervious_100": cover.sample("impervious", 100, px_a, py_a) * 100,
                            "vegetation_100": cover.sample("vegetation", 100, px_a, py_a) * 100}
                try:
                    rk = regression_kriging(dict(zip(sites, vals, strict=True)), ctx,
                                            {s: (xs[i], ys[i]) for i, s in enumerate(sites)}, px_a, py_a, cell_ctx)
                except NotEnoughData:
                    continue
                tv = truth(px_a, py_a)
                good = np.isfinite(tv) & np.isfinite(rk.values)
                idw = np.array([idw_at(xs, ys, vals, x, y, 2.0, 600.0) or np.nan for x, y in zip(px_a, py_a,
                                                                                                  strict=True)])
                good &= np.isfinite(idw)
                inside = np.abs(tv[good] - rk.values[good]) <= 1.96 * rk.se[good]
                rows.append({"cv_rk": rk.cv.get("rmse_regression_kriging"), "cv_idw": rk.cv.get("rmse_idw"),
                             "true_rk": float(np.sqrt(np.mean((rk.values[good] - tv[good]) ** 2))),
                             "true_idw": float(np.sqrt(np.mean((idw[good] - tv[good]) ** 2))),
                             "se_coverage": float(np.mean(inside))})
            agg = {"sensors": n, "draws": len(rows)}
            for k in rows[0]:
                agg[k] = round(float(np.mean([r[k] for r in rows if r[k] is not None])), 3)
            agg["rk_better_cv_share"] = round(float(np.mean([r["cv_rk"] < r["cv_idw"] for r in rows])), 3)
            out.append(agg)
            print(json.dumps(agg), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=1000, help="synthetic towns per calibration cell")
    ap.add_argument("--map-draws", type=int, default=30, help="synthetic fields per map cell")
    args = ap.parse_args()
    t0 = time.time()
    res = {"calibration": calibration(args.draws), "maps": maps(args.map_draws), "seconds": round(time.time() - t0)}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"drivers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(res, indent=1))
    print(f"wrote {path}")
    return 0
