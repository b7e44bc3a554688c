"""Difference-in-differences of one daily outcome (e.g. the nightly maximum of UHI) between treated and
control sensors, adjusted for the weather, with a pre-period placebo test.

Science, choices and validation: ``docs/science/interventions.md``. In short:

Contrast. ``values[t, s]`` is a daily outcome for day ``t`` and sensor ``s`` (NaN when missing); some
sensors are *treated*, the others *controls*; each day is *before* (0), *after* (1) or excluded (−1:
the works). Each sensor is centred on its own *before* mean and the daily contrast
``d_t = mean_treated(centred) − mean_controls(centred)`` is taken over the sensors present that day,
so that a control missing in August does not move the control mean. With complete data and no
weather term, ``mean(d_after) − mean(d_before)`` is the textbook difference-in-differences.

Weather. A dense street's UHI rises more than a park's on a calm, clear, hot night, so treated and
controls do not feel the weather alike, and a warmer or calmer summer after the works shows as an
"effect". The estimate is the coefficient of ``after`` in the regression

    d_t = a + effect · after_t + g · (W_t − mean W) + e_t,

where ``W_t`` is the rural reference's weather of that day (Tn and Tx aligned with the outcome's
hours, see effect.py). The weather slopes ``g`` are estimated from the day-to-day variation within
both periods, so a shift of the weather between the periods is removed, not attributed to the works.

Inference. Successive days share weather, so the ``e_t`` are serially correlated and ordinary or
Newey–West standard errors are far too small on a few weeks. Days are cut into ``batches``
consecutive blocks per period (clusters); the variance is the cluster-robust sandwich with the CR2
bias correction (Bell & McCaffrey 2002) and the t reference distribution has the Bell–McCaffrey
degrees of freedom (Imbens & Kolesár 2016). Without a weather term and with equal blocks this is
exactly the batch-means interval with 2·batches − 2 degrees of freedom (Schmeiser 1982).

Placebo. The same estimator run on the *before* period alone, its first half against its second
half, where there is no intervention: an interval that excludes zero says the treated and controls
were already drifting apart, and the parallel-trends assumption is doubtful.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import special

BEFORE, AFTER, EXCLUDED = 0, 1, -1

TRENDS_NOT_REJECTED = "not_rejected"
TRENDS_REJECTED = "rejected"
TRENDS_UNTESTED = "untested"


@dataclass(frozen=True, slots=True)
class DidConfig:
    alpha: float = 0.05
    #: usable days on each side; with 3 batches that makes weekly blocks at the least
    min_days: int = 21
    min_controls: int = 3
    min_treated: int = 1
    #: a sensor is used only when it has a value on this share of each period's days with data
    min_coverage: float = 0.5
    batches: int = 3
    #: days with a non-zero value (any used sensor) needed on each side; for counts such as hot hours,
    #: which are zero everywhere outside hot spells: a summer whose heat fell all before the works
    #: would otherwise "show" a drop in hot hours
    min_active_days: int = 0
    #: the estimate is adjusted for the weather only when the reference weather is known on this
    #: share of the compared days of each period
    min_weather_share: float = 0.8
    #: the placebo test needs this many usable days in each half of the 'before' period
    placebo_min_days: int = 21

    def __post_init__(self) -> None:
        if self.batches < 2:
            raise ValueError("batches must be at least 2 (one block per period leaves no variance estimate)")


@dataclass(slots=True)
class Fit:
    """One regression of the daily contrast: the ``after`` coefficient and its interval."""

    estimate: float
    se: float
    df: float
    p_value: float
    ci_low: float
    ci_high: float
    coefficients: dict[str, float]


@dataclass(slots=True)
class Placebo:
    parallel_trends: str = TRENDS_UNTESTED
    reasons: list[str] = field(default_factory=list)
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    df: float | None = None
    n_days_first: int = 0
    n_days_second: int = 0
    #: panel day indices of the first half's first and last days, then the second half's
    spans: tuple[int, int, int, int] | None = None


@dataclass(slots=True)
class DidResult:
    status: str  # "ok" or "insufficient_data"
    reasons: list[str] = field(default_factory=list)
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    se: float | None = None
    p_value: float | None = None
    df: float | None = None
    alpha: float = 0.05
    n_days_before: int = 0
    n_days_after: int = 0
    n_treated: int = 0
    n_controls: int = 0
    n_obs: int = 0
    batches: int = 0
    treated_change: float | None = None
    control_change: float | None = None
    #: the plain difference of mean contrasts over the same days, before any weather adjustment
    unadjusted_estimate: float | None = None
    weather_adjusted: bool = False
    #: why the estimate is not adjusted for the weather (when it is not)
    weather_note: str | None = None
    #: weather slope per covariate, outcome units per °C
    weather_coefficients: dict[str, float] = field(default_factory=dict)
    placebo: Placebo = field(default_factory=Placebo)
    treated_used: list[int] = field(default_factory=list)
    controls_used: list[int] = field(default_factory=list)
    method: str = ("difference-in-differences of the sensor-centred daily treated−control contrast, regressed on "
                   "the period and the reference weather; CR2 cluster-robust t interval over consecutive blocks "
                   "of days")

    @property
    def significant(self) -> bool:
        return self.status == "ok" and self.ci_low is not None and self.ci_high is not None and (
            self.ci_low > 0 or self.ci_high < 0)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["significant"] = self.significant
        return d


def blocks(period: np.ndarray, k: int) -> np.ndarray:
    """Cluster id of each day: ``k`` consecutive blocks of (nearly) equal size per period value."""
    out = np.full(len(period), -1)
    gid = 0
    for p in np.unique(period):
        for blk in np.array_split(np.flatnonzero(period == p), k):
            out[blk] = gid
            gid += 1
    return out


def fit(d: np.ndarray, after: np.ndarray, weather: np.ndarray | None, k: int, alpha: float,
        names: Sequence[str] = ()) -> Fit | None:
    """OLS of ``d`` on [1, after, weather − its mean]; the ``after`` coefficient with a CR2 cluster-robust
    standard error over ``k`` consecutive blocks per period and Bell–McCaffrey degrees of freedom.

    None when the design is singular (a weather column constant, or collinear with the period) or
    the contrast does not vary.
    """
    n = len(d)
    cols = [np.ones(n), after.astype(float)]
    if weather is not None and weather.shape[1]:
        cols += list((weather - weather.mean(axis=0)).T)
    x = np.column_stack(cols)
    if n <= x.shape[1] + 1 or np.linalg.matrix_rank(x) < x.shape[1]:
        return None
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ (x.T @ d)
    resid = d - x @ beta
    weights = x @ xtx_inv[:, 1]  # beta[1] = weights · d
    cluster = blocks(after.astype(int), k)
    ids = np.unique(cluster)
    scores = []
    # Columns of Imbens & Kolesár's G: (I − H)[:, g] (I − H_gg)^(−1/2) w_g, without forming the n × n H.
    g = np.zeros((n, len(ids)))
    for j, c in enumerate(ids):
        idx = np.flatnonzero(cluster == c)
        xg = x[idx]
        vals, vecs = np.linalg.eigh(np.eye(len(idx)) - xg @ xtx_inv @ xg.T)
        adjust = (vecs / np.sqrt(np.clip(vals, 1e-12, None))) @ vecs.T  # (I − H_gg)^(−1/2)
        scores.append(weights[idx] @ adjust @ resid[idx])
        v = adjust @ weights[idx]
        g[:, j] = -(x @ (xtx_inv @ (xg.T @ v)))
        g[idx, j] += v
    var = float(np.sum(np.square(scores)))
    se = float(np.sqrt(var))
    if not np.isfinite(se) or se <= 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0))):
        return None
    lam = np.linalg.eigvalsh(g.T @ g)
    df = float(lam.sum() ** 2 / np.sum(lam**2))
    est = float(beta[1])
    # scipy.special's Student t functions: the same values as scipy.stats.t, without its per-call overhead
    # (the simulations call this hundreds of thousands of times).
    tcrit = float(special.stdtrit(df, 1 - alpha / 2))
    return Fit(est, se, df, float(2 * special.stdtr(df, -abs(est / se))), est - tcrit * se, est + tcrit * se,
               {name: float(b) for name, b in zip(names, beta[2:], strict=False)})


def diff_in_diff(values: np.ndarray, treated: np.ndarray, period: np.ndarray, config: DidConfig | None = None,
                 weather: np.ndarray | None = None, weather_names: Sequence[str] = ("tn", "tx"),
                 weather_missing: str = "no reference weather") -> DidResult:
    """Effect of the intervention on the treated sensors, with a ``1 − alpha`` confidence interval.

    ``values``: (days, sensors) float array, NaN = missing. ``treated``: (sensors,) bool.
    ``period``: (days,) ints, :data:`BEFORE`, :data:`AFTER` or :data:`EXCLUDED`; days in calendar
    order (the blocks are consecutive days). ``weather``: (days, covariates) float array, NaN =
    unknown, or None; ``weather_missing`` says why there is none. Returns
    ``status="insufficient_data"`` with the reasons, and no estimate, when the data cannot support a
    conclusion.
    """
    cfg = config or DidConfig()
    y = np.asarray(values, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    period = np.asarray(period)
    if y.ndim != 2 or y.shape != (len(period), len(treated)):
        raise ValueError(f"values must be (days, sensors) = ({len(period)}, {len(treated)}), got {y.shape}")
    w = None if weather is None else np.asarray(weather, dtype=float).reshape(len(period), -1)
    res = DidResult(status="insufficient_data", alpha=cfg.alpha)
    pre, post = period == BEFORE, period == AFTER
    present = ~np.isnan(y)
    # Coverage per sensor and period, out of the days the network reported at all (a window reaching
    # past the newest data must fail on "too few days", not on every sensor's coverage): a sensor seen
    # on three days of the summer says little.
    network = present.any(axis=1)
    cov_pre = present[pre].sum(axis=0) / max(1, (pre & network).sum())
    cov_post = present[post].sum(axis=0) / max(1, (post & network).sum())
    usable = (cov_pre >= cfg.min_coverage) & (cov_post >= cfg.min_coverage)
    tr, ct = usable & treated, usable & ~treated
    res.treated_used = np.flatnonzero(tr).tolist()
    res.controls_used = np.flatnonzero(ct).tolist()
    res.n_treated, res.n_controls = int(tr.sum()), int(ct.sum())
    if res.n_treated < cfg.min_treated:
        res.reasons.append(f"{res.n_treated} treated sensor(s) with data on at least {cfg.min_coverage:.0%} of the "
                           f"days before and after; at least {cfg.min_treated} needed")
    if res.n_controls < cfg.min_controls:
        res.reasons.append(f"{res.n_controls} control sensor(s) with data on at least {cfg.min_coverage:.0%} of the "
                           f"days before and after; at least {cfg.min_controls} needed")
    if res.reasons:
        # Days on which the comparison could have been made at all, whatever the coverage rules.
        both = present[:, treated].any(axis=1) & present[:, ~treated].any(axis=1)
        res.n_days_before, res.n_days_after = int((both & pre).sum()), int((both & post).sum())
        return res

    with warnings.catch_warnings():
        # nanmean of an all-missing day is NaN on purpose (that day drops out); no need to warn
        warnings.simplefilter("ignore", RuntimeWarning)
        centred = y - np.nanmean(np.where(pre[:, None], y, np.nan), axis=0)
        d = np.nanmean(centred[:, tr], axis=1) - np.nanmean(centred[:, ct], axis=1)
    ok = ~np.isnan(d) & (pre | post)
    res.n_days_before, res.n_days_after = int((ok & pre).sum()), int((ok & post).sum())
    for name, n in (("before", res.n_days_before), ("after", res.n_days_after)):
        if n < cfg.min_days:
            res.reasons.append(f"{n} usable day(s) {name} the intervention; at least {cfg.min_days} needed")
    if cfg.min_active_days:
        active = np.nan_to_num(y[:, tr | ct]).any(axis=1) & ok
        for name, mask in (("before", pre), ("after", post)):
            n = int((active & mask).sum())
            if n < cfg.min_active_days:
                res.reasons.append(f"{n} day(s) with a non-zero value {name} the intervention; at least "
                                   f"{cfg.min_active_days} needed to compare")
    if res.reasons:
        return res

    rows, use_weather = _weather_rows(ok, pre, post, w, cfg, res, weather_missing)
    names = list(weather_names)[: w.shape[1]] if w is not None else []
    wx = w[rows] if use_weather and w is not None else None
    result = fit(d[rows], post[rows], wx, cfg.batches, cfg.alpha, names)
    if result is None and wx is not None:
        res.weather_note = "the reference weather does not vary independently of the period: not adjusted"
        res.weather_adjusted = False
        rows, wx = ok, None
        result = fit(d[rows], post[rows], None, cfg.batches, cfg.alpha)
    if result is None:
        res.reasons.append("the treated–control difference does not vary from day to day (e.g. no hot hour at all "
                           "in the window): nothing to compare")
        return res
    res.n_days_before, res.n_days_after = int((rows & pre).sum()), int((rows & post).sum())
    res.n_obs = int(present[rows][:, tr | ct].sum())
    res.unadjusted_estimate = float(d[rows & post].mean() - d[rows & pre].mean())
    res.weather_coefficients = result.coefficients
    res.placebo = placebo(d, rows & pre, w if wx is not None else None, cfg, names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res.treated_change = float(np.nanmean(y[rows & post][:, tr]) - np.nanmean(y[rows & pre][:, tr]))
        res.control_change = float(np.nanmean(y[rows & post][:, ct]) - np.nanmean(y[rows & pre][:, ct]))
    res.status = "ok"
    res.estimate, res.se, res.df, res.p_value = result.estimate, result.se, result.df, result.p_value
    res.ci_low, res.ci_high = result.ci_low, result.ci_high
    res.batches = cfg.batches
    return res


def _weather_rows(ok: np.ndarray, pre: np.ndarray, post: np.ndarray, w: np.ndarray | None, cfg: DidConfig,
                  res: DidResult, missing: str) -> tuple[np.ndarray, bool]:
    """The days to fit on and whether to adjust for the weather; sets the result's weather fields."""
    if w is None or not w.shape[1]:
        res.weather_note = f"not adjusted for the weather: {missing}"
        return ok, False
    known = np.isfinite(w).all(axis=1)
    shares = [(ok & side & known).sum() / max(1, (ok & side).sum()) for side in (pre, post)]
    if min(shares) < cfg.min_weather_share or min((ok & known & side).sum() for side in (pre, post)) < cfg.min_days:
        res.weather_note = (f"not adjusted for the weather: the reference weather is known on "
                            f"{shares[0]:.0%} of the days before and {shares[1]:.0%} after (at least "
                            f"{cfg.min_weather_share:.0%} needed)")
        return ok, False
    res.weather_adjusted = True
    return ok & known, True


def placebo(d: np.ndarray, pre_rows: np.ndarray, w: np.ndarray | None, cfg: DidConfig,
            names: Sequence[str] = ()) -> Placebo:
    """The estimator on the 'before' days alone: first half against second half (no intervention there)."""
    out = Placebo()
    idx = np.flatnonzero(pre_rows)
    half = len(idx) // 2
    first, second = idx[:half], idx[half:]
    out.n_days_first, out.n_days_second = len(first), len(second)
    if min(len(first), len(second)) < cfg.placebo_min_days:
        out.reasons.append(f"{len(idx)} usable day(s) before the intervention: the placebo test needs "
                           f"{2 * cfg.placebo_min_days} (two halves of {cfg.placebo_min_days})")
        return out
    fake_after = np.zeros(len(idx), dtype=bool)
    fake_after[half:] = True
    result = fit(d[idx], fake_after, None if w is None else w[idx], cfg.batches, cfg.alpha, names)
    if result is None:
        out.reasons.append("the treated–control difference does not vary before the intervention")
        return out
    out.estimate, out.ci_low, out.ci_high = result.estimate, result.ci_low, result.ci_high
    out.p_value, out.df = result.p_value, result.df
    out.spans = (int(first[0]), int(first[-1]), int(second[0]), int(second[-1]))
    out.parallel_trends = TRENDS_REJECTED if (result.ci_low > 0 or result.ci_high < 0) else TRENDS_NOT_REJECTED
    return out


def conclusion(res: DidResult, what: str, unit: str) -> str:
    """A few plain sentences for a town officer."""
    if res.status != "ok":
        return f"Insufficient data to conclude on {what}: " + "; ".join(res.reasons) + "."
    level = f"{1 - res.alpha:.0%}"
    span = f"{res.estimate:+.2f} {unit} ({level} confidence interval {res.ci_low:+.2f} to {res.ci_high:+.2f} {unit})"
    adjusted = " after adjusting for the weather" if res.weather_adjusted else ""
    what_ = what[:1].upper() + what[1:]
    if res.ci_high is not None and res.ci_high < 0:
        text = f"{what_} decreased at the treated sensors relative to the controls{adjusted}: {span}."
    elif res.ci_low is not None and res.ci_low > 0:
        text = f"{what_} increased at the treated sensors relative to the controls{adjusted}: {span}."
    else:
        text = (f"No change in {what} can be told from day-to-day variation{adjusted}: {span}; the interval "
                f"includes zero, so the data neither show an effect nor rule out one of that size.")
    if not res.weather_adjusted:
        text += (f" Caution: {res.weather_note}; a warmer, calmer or cooler summer after the works can show here "
                 "as an effect.")
    p = res.placebo
    if p.parallel_trends == TRENDS_REJECTED:
        text += (f" Caution: the placebo test found a change already within the 'before' period ({p.estimate:+.2f} "
                 f"{unit}, interval {p.ci_low:+.2f} to {p.ci_high:+.2f}): treated and controls were drifting apart "
                 "before the works, so this estimate may reflect that drift (parallel trends doubtful).")
    elif p.parallel_trends == TRENDS_NOT_REJECTED:
        text += " The placebo test on the 'before' period found no change there (parallel trends not rejected)."
    else:
        text += " Parallel trends untested: " + "; ".join(p.reasons) + "."
    return text
