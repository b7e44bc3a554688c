"""Weather-adjusted difference-in-differences on seeded panels (heatwatch.simulate.panels): a known cooling
is recovered within its interval; with no effect but a warmer or cooler summer after the works, false
discoveries stay at the nominal rate; power for −0.5 °C and −1 °C; the placebo test; the plain cases.

The bench (``python -m bench.interventions``) runs the same estimator on more panels and scenarios; its table is
in docs/science/interventions.md.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from heatwatch.api.insights.did import (
    AFTER,
    BEFORE,
    EXCLUDED,
    TRENDS_NOT_REJECTED,
    TRENDS_REJECTED,
    TRENDS_UNTESTED,
    DidConfig,
    conclusion,
    diff_in_diff,
    fit,
)
from heatwatch.simulate.panels import PanelSpec, summer_panel

ALPHA = 0.05
WARMER = PanelSpec(warmer_after=2.0, calmer_after=0.5)
COOLER = PanelSpec(warmer_after=-2.0, calmer_after=-0.5)
#: No-effect panels in the false-discovery test. At a true rate of 5 % the binomial standard deviation of the
#: observed rate over 2000 panels is 0.49 points, so the bound of 6 % sits 2 sd above the nominal rate: an
#: estimator at 5 % passes with probability 0.98, one at 7 % fails with probability 0.96 (its sd: 0.57 points).
NULL_PANELS = 2000
FDR_BOUND = 0.06
#: Panels per effect size in the power test (power near 0.75 is known to ±2.5 points, 1 sd).
POWER_PANELS = 300


def _with(spec: PanelSpec, **changes: object) -> PanelSpec:
    return replace(spec, **changes)


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    return (float(stats.beta.ppf(0.025, k, n - k + 1)) if k else 0.0,
            float(stats.beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0)


def test_injected_cooling_is_recovered_within_its_interval() -> None:
    p = summer_panel(np.random.default_rng(7), _with(WARMER, effect=-1.0, treated=2))
    res = diff_in_diff(p.values, p.treated, p.period, DidConfig(alpha=ALPHA), p.weather)
    assert res.status == "ok", res.reasons
    assert res.weather_adjusted and set(res.weather_coefficients) == {"tn", "tx"}
    assert res.ci_low <= -1.0 <= res.ci_high < 0 and res.significant
    assert abs(res.estimate + 1.0) < 0.4
    assert res.n_treated == 2 and res.n_controls == 6 and 3 < res.df <= 4
    assert res.n_days_before >= 55 and res.n_days_after >= 55 and res.n_obs > 700
    assert res.placebo.parallel_trends == TRENDS_NOT_REJECTED
    text = conclusion(res, "nocturnal UHI", "°C")
    assert "decreased" in text and "after adjusting for the weather" in text and "parallel trends not rejected" in text


def test_no_false_discoveries_beyond_nominal_when_the_after_summer_is_warmer_or_cooler() -> None:
    significant = significant_raw = 0
    for i in range(NULL_PANELS):
        p = summer_panel(np.random.default_rng([1, i]), _with(WARMER if i % 2 == 0 else COOLER,
                                                              hot_spot=(i // 2) % 2 == 1))
        res = diff_in_diff(p.values, p.treated, p.period, DidConfig(alpha=ALPHA), p.weather)
        assert res.status == "ok" and res.weather_adjusted
        significant += res.significant
        # One panel in five (every kind in turn) without the weather term: what heatwatch published before.
        if i % 5 == 0:
            significant_raw += diff_in_diff(p.values, p.treated, p.period, DidConfig(alpha=ALPHA)).significant
    rate, raw = significant / NULL_PANELS, significant_raw / (NULL_PANELS // 5)
    lo, hi = clopper_pearson(significant, NULL_PANELS)
    print(f"\nno effect, warmer/cooler after summer, {NULL_PANELS} panels: false discoveries {rate:.2%} "
          f"(95 % CI {lo:.2%}–{hi:.2%}; nominal {ALPHA:.0%}); without weather adjustment {raw:.2%}")
    assert rate <= FDR_BOUND
    assert raw > 0.12  # the scenario does confound an unadjusted comparison: this test can fail


@pytest.mark.parametrize("effect, min_power", [(-0.5, 0.65), (-1.0, 0.97)])
def test_power_and_coverage_for_a_cooling(effect: float, min_power: float) -> None:
    detected = covered = 0
    for i in range(POWER_PANELS):
        p = summer_panel(np.random.default_rng([2, i]), _with(WARMER if i % 2 == 0 else COOLER, effect=effect))
        res = diff_in_diff(p.values, p.treated, p.period, DidConfig(alpha=ALPHA), p.weather)
        detected += res.significant and res.ci_high < 0
        covered += res.ci_low <= effect <= res.ci_high
    power, coverage = detected / POWER_PANELS, covered / POWER_PANELS
    print(f"\n{effect:+.1f} °C over {POWER_PANELS} panels (60 + 60 days, warmer/cooler after): power {power:.1%}, "
          f"coverage {coverage:.1%}")
    assert power >= min_power
    assert coverage >= 0.92


def test_placebo_catches_treated_and_controls_moving_apart_before_the_works() -> None:
    # The treated sensor was moved to a sunnier mount halfway through the 'before' period (+0.8 °C from then on):
    # the works would otherwise take the blame (or the credit) for a change that came before them.
    p = summer_panel(np.random.default_rng(5), WARMER)
    y = p.values.copy()
    y[30:, p.treated] += 0.8
    res = diff_in_diff(y, p.treated, p.period, DidConfig(alpha=ALPHA), p.weather)
    assert res.placebo.parallel_trends == TRENDS_REJECTED and res.placebo.ci_low > 0
    assert res.placebo.n_days_first >= 21 and res.placebo.n_days_second >= 21
    assert "parallel trends doubtful" in conclusion(res, "nocturnal UHI", "°C")


def test_placebo_needs_two_halves_of_the_before_period() -> None:
    p = summer_panel(np.random.default_rng(6), _with(WARMER, days_before=30, days_after=30))
    res = diff_in_diff(p.values, p.treated, p.period, DidConfig(alpha=ALPHA), p.weather)
    assert res.status == "ok" and res.placebo.parallel_trends == TRENDS_UNTESTED
    assert "needs 42" in res.placebo.reasons[0]
    assert "Parallel trends untested" in conclusion(res, "nocturnal UHI", "°C")


def test_without_reference_weather_the_estimate_says_it_is_not_adjusted() -> None:
    p = summer_panel(np.random.default_rng(8), WARMER)
    res = diff_in_diff(p.values, p.treated, p.period, weather_missing="the town has no rural reference data")
    assert res.status == "ok" and not res.weather_adjusted and res.estimate == pytest.approx(res.unadjusted_estimate)
    assert "Caution: not adjusted for the weather: the town has no rural reference data" in conclusion(
        res, "nocturnal UHI", "°C")
    w = p.weather.copy()
    w[::2] = np.nan  # the reference silent every other day
    res = diff_in_diff(p.values, p.treated, p.period, weather=w)
    assert not res.weather_adjusted and "known on 50% of the days before" in res.weather_note


def test_the_excluded_works_period_is_left_out() -> None:
    p = summer_panel(np.random.default_rng(9), _with(WARMER, gap=30))
    y = p.values.copy()
    y[p.period == EXCLUDED] += 50.0  # nonsense during the works must not matter
    a = diff_in_diff(p.values, p.treated, p.period, weather=p.weather)
    b = diff_in_diff(y, p.treated, p.period, weather=p.weather)
    assert a.estimate == pytest.approx(b.estimate) and a.n_days_before + a.n_days_after <= 120


def test_without_weather_the_interval_is_the_batch_means_interval() -> None:
    """CR2 over equal consecutive blocks, no covariate: exactly the pooled batch-means t interval, 2k − 2 df."""
    d = np.random.default_rng(1).normal(size=60)
    after = np.r_[np.zeros(30, bool), np.ones(30, bool)]
    f = fit(d, after, None, 3, ALPHA)
    a = np.array([b.mean() for b in np.array_split(d[:30], 3)])
    b = np.array([x.mean() for x in np.array_split(d[30:], 3)])
    pooled = np.sqrt((2 * a.var(ddof=1) + 2 * b.var(ddof=1)) / 4)
    assert f.se == pytest.approx(pooled * np.sqrt(2 / 3)) and f.df == pytest.approx(4.0)
    assert f.estimate == pytest.approx(d[30:].mean() - d[:30].mean())


@pytest.mark.parametrize("changes, reason", [
    ({"days_after": 10}, "usable day(s) after"),
    ({"controls": 2}, "control sensor(s)"),
    ({"days_before": 5}, "usable day(s) before"),
])
def test_thin_data_says_insufficient(changes: dict, reason: str) -> None:
    p = summer_panel(np.random.default_rng(3), _with(WARMER, effect=-1.0, **changes))
    res = diff_in_diff(p.values, p.treated, p.period, weather=p.weather)
    assert res.status == "insufficient_data" and res.estimate is None
    assert any(reason in r for r in res.reasons), res.reasons
    assert conclusion(res, "nocturnal UHI", "°C").startswith("Insufficient data")


def test_sparse_treated_sensor_is_not_used() -> None:
    p = summer_panel(np.random.default_rng(4), WARMER)
    y = p.values.copy()
    y[::3, 0] = np.nan
    y[1::3, 0] = np.nan  # treated sensor present one day in three
    res = diff_in_diff(y, p.treated, p.period, weather=p.weather)
    assert res.status == "insufficient_data" and res.n_treated == 0


def test_no_variation_is_not_a_result() -> None:
    y = np.zeros((60, 5))  # e.g. hours >= 30 °C in a cool summer: all zero
    period = np.array([BEFORE] * 30 + [AFTER] * 30)
    res = diff_in_diff(y, np.array([True, False, False, False, False]), period)
    assert res.status == "insufficient_data" and "nothing to compare" in res.reasons[0]


def test_balanced_panel_without_weather_matches_textbook_did() -> None:
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


def test_shape_and_config_are_checked() -> None:
    with pytest.raises(ValueError):
        diff_in_diff(np.zeros((3, 2)), np.array([True]), np.array([0, 1, 1]))
    with pytest.raises(ValueError):
        DidConfig(batches=1)
