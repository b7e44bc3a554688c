"""What drives each site's heat: a small Bayesian linear model of a season's per-site heat against the site
context, with honest intervals, leave-one-out cross-validation, and a refusal to speak on too few sites.

Science and choices: ``docs/science/drivers.md`` ("What drives the heat"). In short:

* Response: per site, the season's ``uhi_night_max_mean`` (mean of the nightly maxima of UHI over the
  ranking's common days) or the hours at or above 30 °C over those days.
* Predictors, chosen up front (never searched for on the data, which with 10–30 sites would find
  anything): tree canopy within 100 m (green spaces and trees when the town has no tree layer) and
  imperviousness within 100 m — the two levers greening and de-sealing act on. Everything else (wind,
  relief, building geometry, the sensor's own exposure) stays in the residual, which is reported.
* Model: y = a + Σ b_j x_j + ε, ε ~ N(0, σ²), x_j in steps of 10 points. Priors: b_j ~ N(0, τ²) with
  τ = 1 °C per step for UHI (an effect of ±2 °C per 10 points is a priori unlikely but allowed),
  τ = 2 × the spread of the response between sites for other responses; a wide normal on the intercept;
  p(σ) ∝ 1/σ. The posterior is computed exactly on a grid of σ (for each σ the coefficients are
  Gaussian, and σ's weight is the marginal likelihood), so every interval is a mixture of normals —
  wider than a plug-in interval when the residual spread is uncertain, as it is with few sites.
* Cross-validation: each site left out in turn, predicted from the others (``cv_rmse``), against the
  same for the mean of the others (``cv_rmse_null``): the layers help if the first is smaller.
* Below ``MIN_SITES`` sites, or with a predictor that barely varies between sites, the model does not
  speak (or drops that predictor) and says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, stats

MIN_SITES = 8
MIN_SPREAD = 10.0  # points: a predictor spanning less than this between sites is not estimable
SIGMA_GRID = 80
LEVEL = 0.95


@dataclass(frozen=True, slots=True)
class Predictor:
    column: str
    label: str
    step: float
    unit: str
    fallback: str | None = None
    fallback_label: str | None = None


PREDICTORS: tuple[Predictor, ...] = (
    Predictor("canopy_100", "tree canopy within 100 m", 10.0, "points", "vegetation_100",
              "vegetation (green spaces and trees) within 100 m"),
    Predictor("impervious_100", "impervious surface within 100 m", 10.0, "points"),
)


@dataclass(frozen=True, slots=True)
class Response:
    column: str
    label: str
    unit: str
    #: prior sd of an effect per step: a number, or None for 2 × the spread of the response
    prior_sd: float | None


RESPONSES = {
    "uhi_night": Response("uhi_night_max_mean", "nocturnal UHI (season mean of the nightly maxima)", "°C", 1.0),
    "hot_hours": Response("hours_ge_30", "hours at or above 30 °C over the common days", "h", None),
    # the values of one map (a night, a period mean, an hour): the trend of regression-kriging
    "map": Response("uhi", "mapped UHI", "°C", 1.0),
}


class NotEnoughData(ValueError):
    """The model refuses to speak; the message says why."""


def mixture_quantile(means: np.ndarray, sds: np.ndarray, w: np.ndarray, q: float) -> float:
    lo = float(np.min(means - 10 * sds))
    hi = float(np.max(means + 10 * sds))
    f = lambda x: float(np.sum(w * stats.norm.cdf((x - means) / sds))) - q  # noqa: E731
    return float(optimize.brentq(f, lo, hi, xtol=1e-6))


@dataclass
class Posterior:
    """The posterior on the σ grid: weights, and per σ the coefficients' mean and covariance (intercept first,
    then the predictors in steps, centred on ``center``)."""

    w: np.ndarray
    sigmas: np.ndarray
    mu: np.ndarray  # (k, p+1)
    cov: np.ndarray  # (k, p+1, p+1)
    center: np.ndarray
    step: np.ndarray

    def design(self, x: np.ndarray) -> np.ndarray:
        """Rows of raw predictor values → design rows [1, (x − centre)/step]."""
        x = np.atleast_2d(np.asarray(x, float))
        return np.column_stack([np.ones(len(x)), (x - self.center) / self.step])

    def linear(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per σ, mean and sd of c·β."""
        m = self.mu @ c
        v = np.einsum("i,kij,j->k", c, self.cov, c)
        return m, np.sqrt(np.maximum(v, 1e-18))

    def interval(self, c: np.ndarray, level: float = LEVEL, predictive: bool = False) -> tuple[float, float, float]:
        m, s = self.linear(c)
        if predictive:
            s = np.sqrt(s**2 + self.sigmas**2)
        a = (1 - level) / 2
        mean = float(np.sum(self.w * m))
        return mean, mixture_quantile(m, s, self.w, a), mixture_quantile(m, s, self.w, 1 - a)

    def prob_below(self, c: np.ndarray, x: float = 0.0) -> float:
        m, s = self.linear(c)
        return float(np.sum(self.w * stats.norm.cdf((x - m) / s)))

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd of the regression line at raw predictor rows (no residual noise)."""
        d = self.design(x)
        m = np.einsum("nj,kj->nk", d, self.mu)  # (n, k)
        v = np.einsum("nj,kjl,nl->nk", d, self.cov, d)
        mean = m @ self.w
        var = (v + m**2) @ self.w - mean**2
        return mean, np.sqrt(np.maximum(var, 0))

    @property
    def sigma_mean(self) -> float:
        return float(np.sum(self.w * self.sigmas))


def fit(x: np.ndarray, y: np.ndarray, step: np.ndarray, prior_sd: float) -> Posterior:
    """The exact posterior of the Bayesian linear model (module docstring) for raw predictors ``x`` (n, p)."""
    x = np.asarray(x, float).reshape(len(y), -1)
    y = np.asarray(y, float)
    n, p = x.shape
    center = x.mean(axis=0)
    d = np.column_stack([np.ones(n), (x - center) / step])
    sy = float(np.std(y, ddof=1)) if n > 1 else 1.0
    scale = max(sy, 0.05)
    b0 = np.zeros(p + 1)
    b0[0] = float(np.mean(y))
    v0 = np.diag([(10 * scale + 1.0) ** 2] + [prior_sd**2] * p)
    v0i = np.linalg.inv(v0)
    sigmas = np.exp(np.linspace(math.log(scale * 0.02 + 1e-3), math.log(scale * 4 + 0.05), SIGMA_GRID))
    logml = np.empty(SIGMA_GRID)
    mus = np.empty((SIGMA_GRID, p + 1))
    covs = np.empty((SIGMA_GRID, p + 1, p + 1))
    k0 = d @ v0 @ d.T
    r0 = y - d @ b0
    for k, s in enumerate(sigmas):
        c = k0 + s**2 * np.eye(n)
        chol = np.linalg.cholesky(c)
        z = np.linalg.solve(chol, r0)
        logml[k] = -0.5 * z @ z - np.log(np.diag(chol)).sum()
        prec = v0i + d.T @ d / s**2
        cov = np.linalg.inv(prec)
        covs[k] = cov
        mus[k] = cov @ (v0i @ b0 + d.T @ y / s**2)
    # Uniform weights in log σ on the grid are the prior p(σ) ∝ 1/σ.
    w = np.exp(logml - logml.max())
    w /= w.sum()
    return Posterior(w, sigmas, mus, covs, center, np.asarray(step, float))


@dataclass
class DriversModel:
    response: Response
    sites: list[str]
    y: np.ndarray
    x: np.ndarray
    predictors: list[Predictor]
    labels: list[str]
    columns: list[str]
    posterior: Posterior
    prior_sd: float
    loo_pred: np.ndarray
    loo_null: np.ndarray
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.y)

    def effects(self) -> list[dict[str, Any]]:
        out = []
        u = self.response.unit
        for j, (p, label, col) in enumerate(zip(self.predictors, self.labels, self.columns, strict=True)):
            c = np.zeros(len(self.predictors) + 1)
            c[j + 1] = 1.0
            mean, lo, hi = self.posterior.interval(c)
            pb = self.posterior.prob_below(c)
            step = f"+{p.step:g} {p.unit}"
            out.append({
                "predictor": col, "label": label, "per": step, "effect": round(mean, 3),
                "ci95": [round(lo, 3), round(hi, 3)], "unit": u,
                "probability_negative": round(pb, 3),
                "range_in_data": [round(float(self.x[:, j].min()), 1), round(float(self.x[:, j].max()), 1)],
                "text": f"{effect_text(mean, lo, hi, u)} per {step} of {label}",
            })
        return out

    def cv(self) -> dict[str, Any]:
        err = self.loo_pred - self.y
        null = self.loo_null - self.y
        rmse = float(np.sqrt(np.mean(err**2)))
        rmse0 = float(np.sqrt(np.mean(null**2)))
        return {"method": "leave-one-site-out", "cv_rmse": round(rmse, 3), "cv_mae": round(float(np.mean(np.abs(err))),
                                                                                             3),
                "cv_rmse_null": round(rmse0, 3),
                "skill": round(1 - rmse**2 / rmse0**2, 3) if rmse0 > 0 else None,
                "reading": ("the layers predict a left-out site better than the town mean" if rmse < rmse0
                            else "the layers do not predict a left-out site better than the town mean")}

    def site_rows(self) -> list[dict[str, Any]]:
        fitted, _ = self.posterior.predict(self.x)
        sd = math.sqrt(self.posterior.sigma_mean**2)
        rows = []
        for i, s in enumerate(self.sites):
            r = self.y[i] - self.loo_pred[i]
            rows.append({"sensor": s, "observed": round(float(self.y[i]), 3), "fitted": round(float(fitted[i]), 3),
                         "loo_predicted": round(float(self.loo_pred[i]), 3), "loo_residual": round(float(r), 3),
                         **{c: round(float(self.x[i, j]), 1) for j, c in enumerate(self.columns)},
                         "unexplained": bool(abs(r) > 2.5 * sd)})
        return rows

    def describe(self) -> dict[str, Any]:
        return {
            "response": self.response.column, "response_label": self.response.label, "unit": self.response.unit,
            "n_sites": self.n, "effects": self.effects(), **self.cv(),
            "residual_sd": round(self.posterior.sigma_mean, 3),
            "model": ("Bayesian linear regression, predictors chosen up front; effects are posterior means with 95 % "
                      f"credible intervals; priors: effect per step N(0, {self.prior_sd:.3g}² {self.response.unit}²),"
                      " p(σ) ∝ 1/σ"),
            "dropped_predictors": self.dropped,
            "sites": self.site_rows(),
        }

    def change(self, deltas: Mapping[str, float]) -> tuple[float, float, float, float]:
        """Predicted change of the response for predictor changes in raw units (points); (mean, lo, hi,
        probability that it is negative)."""
        c = np.zeros(len(self.predictors) + 1)
        for j, col in enumerate(self.columns):
            c[j + 1] = float(deltas.get(col, 0.0)) / self.predictors[j].step
        mean, lo, hi = self.posterior.interval(c)
        return mean, lo, hi, self.posterior.prob_below(c)


def _fmt(v: float, nd: int) -> str:
    s = f"{v:+.{nd}f}"
    if float(s) == 0:
        s = s[1:]  # no "−0.0"
    return s.replace("-", "−")


def effect_text(mean: float, lo: float, hi: float, unit: str) -> str:
    """'−0.4 °C [−0.7, −0.1]': one decimal, two when the interval is narrower than 0.2 (whole hours for h)."""
    nd = 0 if unit == "h" else (1 if hi - lo >= 0.2 else 2)
    return f"{_fmt(mean, nd)} {unit} [{_fmt(lo, nd)}, {_fmt(hi, nd)}]"


def resolve_columns(contexts: Sequence[Mapping[str, Any]]) -> tuple[list[Predictor], list[str], list[str],
                                                                       dict[str, str]]:
    """The predictors the town's layers allow: each one's column, or its fallback, or dropped with the reason."""
    preds, cols, labels, dropped = [], [], [], {}
    for p in PREDICTORS:
        if any(c.get(p.column) is not None for c in contexts):
            preds.append(p)
            cols.append(p.column)
            labels.append(p.label)
        elif p.fallback and any(c.get(p.fallback) is not None for c in contexts):
            preds.append(p)
            cols.append(p.fallback)
            labels.append(p.fallback_label or p.fallback)
        else:
            dropped[p.column] = "the town has no layer for it"
    return preds, cols, labels, dropped


def fit_drivers(values: Mapping[str, float], contexts: Mapping[str, Mapping[str, Any]], response: str = "uhi_night",
                *, loo: bool = True) -> DriversModel:
    """The drivers model of per-site ``values`` against their site ``contexts``; NotEnoughData when it must not
    speak."""
    resp = RESPONSES[response]
    preds, cols, labels, dropped = resolve_columns(list(contexts.values()))
    if not preds:
        raise NotEnoughData("no layer gives the model's predictors (tree canopy or vegetation, imperviousness): "
                            "import them with `heatwatch layers import`")
    sites = sorted(s for s in values if s in contexts and values[s] is not None and math.isfinite(values[s])
                   and all(contexts[s].get(c) is not None for c in cols))
    if len(sites) < MIN_SITES:
        raise NotEnoughData(f"{len(sites)} sites have both a season value and the layers' predictors; the model "
                            f"needs at least {MIN_SITES} to say anything")
    x = np.array([[float(contexts[s][c]) for c in cols] for s in sites])
    keep = []
    for j, c in enumerate(cols):
        spread = float(x[:, j].max() - x[:, j].min())
        if spread < MIN_SPREAD:
            dropped[c] = f"the sites span only {spread:.1f} points of it (at least {MIN_SPREAD:g} needed)"
        else:
            keep.append(j)
    if not keep:
        raise NotEnoughData("no predictor varies enough between the sites: " + "; ".join(
            f"{k}: {v}" for k, v in dropped.items()))
    preds = [preds[j] for j in keep]
    cols = [cols[j] for j in keep]
    labels = [labels[j] for j in keep]
    x = x[:, keep]
    y = np.array([float(values[s]) for s in sites])
    step = np.array([p.step for p in preds])
    sy = float(np.std(y, ddof=1))
    prior_sd = resp.prior_sd if resp.prior_sd is not None else max(2 * sy, 1.0)
    post = fit(x, y, step, prior_sd)
    loo_pred = np.full(len(y), np.nan)
    null = np.full(len(y), np.nan)
    for i in range(len(y) if loo else 0):
        m = np.ones(len(y), bool)
        m[i] = False
        pi = fit(x[m], y[m], step, prior_sd)
        loo_pred[i] = pi.predict(x[i:i + 1])[0][0]
        null[i] = float(np.mean(y[m]))
    return DriversModel(resp, sites, y, x, preds, labels, cols, post, prior_sd, loo_pred, null, dropped)
