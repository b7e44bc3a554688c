"""Regression-kriging's pieces: the direct kriging solve used in cross-validation agrees with pykrige, and on
a synthetic town whose heat follows its canopy the procedure cross-validates better than IDW."""

from __future__ import annotations

import numpy as np
from pykrige.ok import OrdinaryKriging

from heatwatch.api.insights.kriging import choose_variogram, ok_predict, regression_kriging


def test_direct_solve_matches_pykrige() -> None:
    rng = np.random.default_rng(0)
    x, y, z = rng.uniform(0, 2000, 13), rng.uniform(0, 2000, 13), rng.normal(0, 0.2, 13)
    x0, y0 = np.array([100.0, 700.0, x[3]]), np.array([100.0, 900.0, y[3]])
    ok = OrdinaryKriging(x, y, z, variogram_model="exponential", variogram_parameters={"sill": 0.04, "range": 500,
                                                                                        "nugget": 0.01},
                         verbose=False, enable_plotting=False)
    zp, sp = ok.execute("points", x0, y0)
    zd, sd = ok_predict(x, y, z, x0, y0, (0.03, 500.0, 0.01))
    assert np.allclose(np.asarray(zp), zd, atol=1e-9) and np.allclose(np.asarray(sp), sd, atol=1e-9)


def test_variogram_choice_finds_no_structure_in_noise_and_structure_in_a_field() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 3000, 30), rng.uniform(0, 3000, 30)
    noise = rng.normal(0, 0.3, 30)
    assert choose_variogram(x, y, noise)[0][1] in (0.0, 200.0, 500.0, 1200.0)
    field = np.sin(x / 700) + np.cos(y / 900)
    params, err = choose_variogram(x, y, field)
    assert params[1] > 0 and err < np.std(field)


def test_regression_kriging_beats_idw_where_heat_follows_the_canopy() -> None:
    rng = np.random.default_rng(2)
    n = 16
    xs, ys = rng.uniform(0, 2500, n), rng.uniform(0, 2500, n)
    canopy = rng.uniform(0, 60, n)
    imperv = np.clip(90 - 0.8 * canopy + rng.normal(0, 8, n), 5, 100)
    uhi = 1.5 - 0.05 * canopy + 0.01 * imperv + rng.normal(0, 0.15, n)
    sites = [f"s{i}" for i in range(n)]
    ctx = {s: {"canopy_100": float(canopy[i]), "impervious_100": float(imperv[i])} for i, s in enumerate(sites)}
    cells_x, cells_y = np.array([100.0, 1200.0]), np.array([100.0, 1300.0])
    rk = regression_kriging(dict(zip(sites, uhi, strict=True)), ctx, {s: (xs[i], ys[i]) for i, s in enumerate(sites)},
                            cells_x, cells_y, {"canopy_100": np.array([0.0, 60.0]),
                                               "impervious_100": np.array([90.0, 20.0])}, max_distance_m=5000)
    assert rk.cv["status"] == "ok" and rk.cv["rmse_regression_kriging"] < rk.cv["rmse_idw"]
    assert rk.values[0] > rk.values[1] + 2  # a sealed, treeless cell is hotter than a leafy one
    assert np.all(rk.se > 0)
