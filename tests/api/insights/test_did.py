"""Difference-in-differences on synthetic panels: a known cooling is recovered within its interval,
and without an effect the false-discovery rate stays near the nominal alpha."""

from __future__ import annotations

import numpy as np
import pytest

from heatwatch.api.insights.did import AFTER, BEFORE, EXCLUDED, DidConfig, conclusion, diff_in_diff

ALPHA = 0.05
TRIALS = 200
# Binomial noise of a rate near 5 % over 200 trials is ±1.5 points (1 sd); the bound allows ~2.6 sd.
TOLERANCE = 0.04


def panel(rng: np.random.Generator, *, days_before: int = 28, days_after: int = 28, controls: int = 6,
          treated: int = 1, effect: float = 0.0, rho: float = 0.4, missing: float = 0.05
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nocturnal UHI-like panel: sensor levels, a shared weather signal each sensor feels with its own gain
    (clear calm nights raise every UHI, more so in the dense centre), AR(1) sensor noise, missing days, and
    ``effect`` °C added to the treated sensors after the intervention day (which is excluded)."""
    n = days_before + 1 + days_after
    sensors = controls + treated
    weather = np.zeros(n)
    shocks = rng.normal(0.0, 1.0, n)
    for t in range(n):
        weather[t] = (0.7 * weather[t - 1] if t else 0.0) + shocks[t]
    noise = np.zeros((n, sensors))
    noise[0] = rng.normal(0.0, 0.5, sensors)
    innovations = rng.normal(0.0, 0.5 * np.sqrt(1 - rho**2), (n, sensors))
    for t in range(1, n):
        noise[t] = rho * noise[t - 1] + innovations[t]
    level = rng.uniform(0.5, 3.5, sensors)
    gain = rng.uniform(0.2, 0.6, sensors)
    y = np.clip(level + gain * weather[:, None] + noise, -2, None)
    period = np.array([BEFORE] * days_before + [EXCLUDED] + [AFTER] * days_after)
    is_treated = np.array([True] * treated + [False] * controls)
    y[np.ix_(period == AFTER, is_treated)] += effect
    y[rng.random(y.shape) < missing] = np.nan
    return y, is_treated, period


def test_injected_cooling_is_recovered_within_its_interval() -> None:
    y, treated, period = panel(np.random.default_rng(7), effect=-1.0, treated=2)
    res = diff_in_diff(y, treated, period, DidConfig(alpha=ALPHA))
    assert res.status == "ok", res.reasons
    assert res.ci_low <= -1.0 <= res.ci_high
    assert res.ci_high < 0 and res.significant
    assert abs(res.estimate + 1.0) < 0.5
    assert res.n_treated == 2 and res.n_controls == 6 and res.df == 4
    assert res.n_days_before >= 21 and res.n_days_after >= 21 and res.n_obs > 300
    assert "decreased" in conclusion(res, "nocturnal UHI", "°C")


def test_coverage_and_false_discoveries_over_seeded_trials() -> None:
    rejections = covered = detected = 0
    for seed in range(TRIALS):
        rng = np.random.default_rng(10_000 + seed)
        y, treated, period = panel(rng)
        placebo = diff_in_diff(y, treated, period, DidConfig(alpha=ALPHA))
        assert placebo.status == "ok"
        rejections += placebo.significant
        y, treated, period = panel(rng, effect=-1.0)
        res = diff_in_diff(y, treated, period, DidConfig(alpha=ALPHA))
        covered += res.ci_low <= -1.0 <= res.ci_high
        detected += res.significant
    false_rate, coverage, power = rejections / TRIALS, covered / TRIALS, detected / TRIALS
    print(f"\nDiD over {TRIALS} seeded panels: false discoveries {false_rate:.3f} (alpha {ALPHA}), "
          f"coverage {coverage:.3f}, power for -1.0 °C {power:.3f}")
    assert false_rate <= ALPHA + TOLERANCE
    assert coverage >= 1 - ALPHA - TOLERANCE
    assert power >= 0.8


@pytest.mark.parametrize("kwargs, reason", [
    ({"days_after": 10}, "usable day(s) after"),
    ({"controls": 2}, "control sensor(s)"),
    ({"days_before": 5}, "usable day(s) before"),
])
def test_thin_data_says_insufficient(kwargs: dict, reason: str) -> None:
    y, treated, period = panel(np.random.default_rng(3), effect=-1.0, **kwargs)
    res = diff_in_diff(y, treated, period)
    assert res.status == "insufficient_data" and res.estimate is None
    assert any(reason in r for r in res.reasons), res.reasons
    assert conclusion(res, "nocturnal UHI", "°C").startswith("Insufficient data")


def test_sparse_treated_sensor_is_not_used() -> None:
    y, treated, period = panel(np.random.default_rng(4))
    y[::3, 0] = np.nan
    y[1::3, 0] = np.nan  # treated sensor present one day in three
    res = diff_in_diff(y, treated, period)
    assert res.status == "insufficient_data" and res.n_treated == 0


def test_no_variation_is_not_a_result() -> None:
    y = np.zeros((60, 5))  # e.g. hours >= 30 °C in a cool summer: all zero
    period = np.array([BEFORE] * 30 + [AFTER] * 30)
    res = diff_in_diff(y, np.array([True, False, False, False, False]), period)
    assert res.status == "insufficient_data" and "nothing to compare" in res.reasons[0]


def test_balanced_panel_matches_textbook_did() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(2.0, 1.0, (50, 6))
    period = np.array([BEFORE] * 25 + [AFTER] * 25)
    treated = np.array([True, True, False, False, False, False])
    res = diff_in_diff(y, treated, period)
    pre, post = period == BEFORE, period == AFTER
    textbook = (y[post][:, treated].mean() - y[pre][:, treated].mean()) - (
        y[post][:, ~treated].mean() - y[pre][:, ~treated].mean())
    assert res.estimate == pytest.approx(textbook)
    assert res.treated_change - res.control_change == pytest.approx(textbook)


def test_shape_is_checked() -> None:
    with pytest.raises(ValueError):
        diff_in_diff(np.zeros((3, 2)), np.array([True]), np.array([0, 1, 1]))
