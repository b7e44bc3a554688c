"""Regression-kriging of a heat-island map: the drivers model's prediction from the land cover of each cell,
plus the ordinary kriging of its residuals at the sensors (Hengl, Heuvelink & Rossiter 2007).

* Trend: the drivers model (:mod:`.drivers`) fitted on the map's per-sensor values against their site
  context, applied to each cell's context (the same 10 m surfaces, :mod:`heatwatch.core.layers.cover`).
* Residuals: ordinary kriging with an exponential variogram γ(h) = c·(1 − e^(−3h/a)) + c₀ (pykrige's
  parametrisation). With 10–30 sensors a fitted variogram is unstable, so (a, c₀/(c+c₀)) is chosen among
  ``CANDIDATES`` by leave-one-out error on the residuals, with "no spatial structure" (the mean residual) as
  one of the choices; c + c₀ is the residuals' variance.
* Standard error per cell: √(trend variance + kriging variance), the usual regression-kriging approximation
  (it ignores the covariance between the two parts).
* Cross-validated error per map: each sensor left out in turn, the whole procedure (model fit, variogram
  choice, kriging) redone on the others and used to predict it; the same for IDW on the same sensors.
  Cross-validation solves the kriging system directly (the same model as pykrige, tested to agree with it) so
  that the n × n × candidates fits stay fast; the map itself is kriged with pykrige.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .drivers import DriversModel, NotEnoughData, fit_drivers

#: (range m, nugget share of the sill); (0, 1) = no spatial structure
CANDIDATES: tuple[tuple[float, float], ...] = ((200.0, 0.2), (500.0, 0.2), (1200.0, 0.2), (200.0, 0.6),
                                               (500.0, 0.6), (1200.0, 0.6), (0.0, 1.0))


def variogram(h: np.ndarray, psill: float, rng: float, nugget: float) -> np.ndarray:
    if rng <= 0:
        return np.where(h > 0, psill + nugget, 0.0)
    return np.where(h > 0, psill * (1 - np.exp(-h / (rng / 3.0))) + nugget, 0.0)


def ok_predict(xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, x0: np.ndarray, y0: np.ndarray,
               params: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary kriging at (x0, y0): estimates and kriging variances."""
    psill, rng, nugget = params
    n = len(zs)
    if rng <= 0 or psill <= 0:
        mean = float(np.mean(zs))
        return np.full(len(x0), mean), np.full(len(x0), (psill + nugget) * (1 + 1 / n))
    d = np.hypot(xs[:, None] - xs[None, :], ys[:, None] - ys[None, :])
    a = np.ones((n + 1, n + 1))
    a[:n, :n] = -variogram(d, psill, rng, nugget)
    a[n, n] = 0.0
    d0 = np.hypot(xs[:, None] - x0[None, :], ys[:, None] - y0[None, :])
    b = np.ones((n + 1, len(x0)))
    b[:n] = -variogram(d0, psill, rng, nugget)
    sol = np.linalg.solve(a, b)
    z = sol[:n].T @ zs
    var = np.sum(-b[:n] * sol[:n], axis=0) - sol[n]
    return z, np.maximum(var, 0.0)


def _params(resid: np.ndarray, cand: tuple[float, float]) -> tuple[float, float, float]:
    total = float(np.var(resid, ddof=1)) if len(resid) > 1 else 0.0
    rng, frac = cand
    return (total * (1 - frac), rng, total * frac)


def choose_variogram(xs: np.ndarray, ys: np.ndarray, resid: np.ndarray) -> tuple[tuple[float, float, float],
                                                                                  float]:
    """The candidate with the smallest leave-one-out error on the residuals, and that error."""
    best, best_err = _params(resid, CANDIDATES[-1]), math.inf
    n = len(resid)
    for cand in CANDIDATES:
        p = _params(resid, cand)
        errs = []
        for i in range(n):
            m = np.ones(n, bool)
            m[i] = False
            z, _ = ok_predict(xs[m], ys[m], resid[m], xs[i:i + 1], ys[i:i + 1], _params(resid[m], cand))
            errs.append(z[0] - resid[i])
        err = float(np.sqrt(np.mean(np.square(errs))))
        if err < best_err - 1e-12:
            best, best_err = p, err
    return best, best_err


def idw_at(xs: np.ndarray, ys: np.ndarray, vs: np.ndarray, x0: float, y0: float, power: float,
           max_distance_m: float) -> float | None:
    d = np.hypot(xs - x0, ys - y0)
    near = d <= max_distance_m
    if not near.any():
        return None
    if np.any(d[near] < 1e-6):
        return float(np.mean(vs[near][d[near] < 1e-6]))
    w = 1.0 / d[near] ** power
    return float(np.sum(w * vs[near]) / np.sum(w))


@dataclass
class RKResult:
    model: DriversModel
    values: np.ndarray  # cells (n,), NaN where a cell lacks predictors
    se: np.ndarray
    trend: np.ndarray
    variogram: tuple[float, float, float]
    cv: dict[str, Any]


def cross_validate(xs: np.ndarray, ys: np.ndarray, y: np.ndarray, ctx: dict[str, dict[str, Any]],
                   sites: list[str], power: float, max_distance_m: float) -> dict[str, Any]:
    """Leave-one-sensor-out errors of regression-kriging and of IDW on the same sensors."""
    n = len(y)
    err_rk, err_idw, left = [], [], 0
    for i in range(n):
        m = np.ones(n, bool)
        m[i] = False
        others = [s for j, s in enumerate(sites) if m[j]]
        idw = idw_at(xs[m], ys[m], y[m], xs[i], ys[i], power, max_distance_m)
        try:
            model = fit_drivers(dict(zip(others, y[m], strict=True)), {s: ctx[s] for s in others}, "map", loo=False)
        except NotEnoughData:
            return {"method": "leave-one-sensor-out", "status": "not enough sensors to cross-validate"}
        if idw is None:
            left += 1
            continue
        xo = np.array([[ctx[s][c] for c in model.columns] for s in others])
        resid = y[m] - model.posterior.predict(xo)[0]
        params, _ = choose_variogram(xs[m], ys[m], resid)
        xi = np.array([[ctx[sites[i]][c] for c in model.columns]])
        trend = model.posterior.predict(xi)[0][0]
        z, _ = ok_predict(xs[m], ys[m], resid, xs[i:i + 1], ys[i:i + 1], params)
        err_rk.append(trend + z[0] - y[i])
        err_idw.append(idw - y[i])
    if not err_rk:
        return {"method": "leave-one-sensor-out", "status": "no sensor has a neighbour within max_distance_m"}
    rk = float(np.sqrt(np.mean(np.square(err_rk))))
    idw_e = float(np.sqrt(np.mean(np.square(err_idw))))
    return {"method": "leave-one-sensor-out", "status": "ok", "sensors": len(err_rk),
            "skipped_isolated": left, "rmse_regression_kriging": round(rk, 3), "rmse_idw": round(idw_e, 3),
            "mae_regression_kriging": round(float(np.mean(np.abs(err_rk))), 3),
            "mae_idw": round(float(np.mean(np.abs(err_idw))), 3)}


def regression_kriging(values: dict[str, float], ctx: dict[str, dict[str, Any]], sensor_xy: dict[str, tuple[float,
                                                                                                           float]],
                       cell_x: np.ndarray, cell_y: np.ndarray, cell_ctx: dict[str, np.ndarray], *,
                       power: float = 2.0, max_distance_m: float = 600.0) -> RKResult:
    """The map's cells by regression-kriging (module docstring). Raises NotEnoughData when the drivers model
    cannot be fitted on these sensors."""
    from pykrige.ok import OrdinaryKriging

    model = fit_drivers(values, ctx, "map", loo=False)
    sites = model.sites
    y = model.y
    xs = np.array([sensor_xy[s][0] for s in sites])
    ys = np.array([sensor_xy[s][1] for s in sites])
    resid = y - model.posterior.predict(model.x)[0]
    params, _ = choose_variogram(xs, ys, resid)
    xc = np.column_stack([cell_ctx[c] for c in model.columns])
    ok = np.all(np.isfinite(xc), axis=1)
    trend = np.full(len(cell_x), np.nan)
    tsd = np.full(len(cell_x), np.nan)
    if ok.any():
        trend[ok], tsd[ok] = model.posterior.predict(xc[ok])
    psill, rng, nugget = params
    if rng > 0 and psill > 0:
        krig = OrdinaryKriging(xs, ys, resid, variogram_model="exponential",
                               variogram_parameters={"sill": psill + nugget, "range": rng, "nugget": nugget},
                               verbose=False, enable_plotting=False)
        z, ss = krig.execute("points", cell_x, cell_y)
        z, ss = np.asarray(z, float), np.asarray(ss, float)
    else:
        z, ss = ok_predict(xs, ys, resid, cell_x, cell_y, params)
    vals = trend + z
    se = np.sqrt(tsd**2 + np.maximum(ss, 0))
    cv = cross_validate(xs, ys, y, ctx, sites, power, max_distance_m)
    return RKResult(model, vals, se, trend, params, cv)
