"""The drivers model on synthetic towns where tree canopy cools by a known amount."""

from __future__ import annotations

import numpy as np
import pytest

from heatwatch.api.insights.drivers import MIN_SITES, NotEnoughData, effect_text, fit_drivers


def town(seed: int, n: int = 15, canopy_per_10: float = -0.4, imperv_per_10: float = 0.15, noise: float = 0.25,
         canopy_key: str = "canopy_100"):  # type: ignore[no-untyped-def]
    """Sites with canopy 0–60 % and imperviousness falling as canopy rises (as in towns), and a UHI made of both."""
    rng = np.random.default_rng(seed)
    can = rng.uniform(0, 60, n)
    imp = np.clip(90 - 0.8 * can + rng.normal(0, 10, n), 5, 100)
    y = 2.0 + canopy_per_10 / 10 * can + imperv_per_10 / 10 * imp + rng.normal(0, noise, n)
    ctx = {f"s{i}": {canopy_key: float(can[i]), "impervious_100": float(imp[i])} for i in range(n)}
    return {f"s{i}": float(y[i]) for i in range(n)}, ctx


def test_recovers_a_known_canopy_effect_within_its_interval() -> None:
    values, ctx = town(1)
    m = fit_drivers(values, ctx)
    canopy = m.effects()[0]
    assert canopy["predictor"] == "canopy_100" and canopy["ci95"][0] <= -0.4 <= canopy["ci95"][1] < 0
    assert canopy["probability_negative"] > 0.99
    cv = m.cv()
    assert cv["cv_rmse"] < cv["cv_rmse_null"] and cv["skill"] > 0.5


def test_intervals_are_calibrated_over_seeded_towns() -> None:
    """95 % intervals cover the true effect about 95 % of the time (60 towns here; bench.drivers runs 1000)."""
    hits = 0
    for seed in range(60):
        values, ctx = town(1000 + seed)
        lo, hi = fit_drivers(values, ctx).effects()[0]["ci95"]
        hits += lo <= -0.4 <= hi
    assert hits >= 52  # 95 % of 60 is 57; 52 is below the binomial 1st percentile of a calibrated model


def test_no_effect_is_not_invented() -> None:
    values, ctx = town(7, canopy_per_10=0.0, imperv_per_10=0.0)
    lo, hi = fit_drivers(values, ctx).effects()[0]["ci95"]
    assert lo < 0 < hi


def test_refuses_below_the_minimum_and_drops_what_does_not_vary() -> None:
    values, ctx = town(2, n=MIN_SITES - 1)
    with pytest.raises(NotEnoughData, match=f"needs at least {MIN_SITES}"):
        fit_drivers(values, ctx)
    values, ctx = town(3)
    for c in ctx.values():
        c["impervious_100"] = 80.0 + (hash(str(c)) % 5)  # spans < 10 points
    m = fit_drivers(values, ctx)
    assert [e["predictor"] for e in m.effects()] == ["canopy_100"] and "impervious_100" in m.dropped
    with pytest.raises(NotEnoughData, match="heatwatch layers import"):
        fit_drivers(values, {k: {"other": 1} for k in ctx})


def test_vegetation_stands_in_for_a_missing_tree_layer() -> None:
    values, ctx = town(4, canopy_key="vegetation_100")
    for c in ctx.values():
        c["canopy_100"] = None
    e = fit_drivers(values, ctx).effects()[0]
    assert e["predictor"] == "vegetation_100" and "vegetation" in e["label"]


def test_fewer_sites_wider_interval() -> None:
    wide = fit_drivers(*town(5, n=9)).effects()[0]["ci95"]
    narrow = fit_drivers(*town(5, n=40)).effects()[0]["ci95"]
    assert wide[1] - wide[0] > narrow[1] - narrow[0]


def test_scenario_change_is_the_linear_combination() -> None:
    m = fit_drivers(*town(6))
    mean, lo, hi, p = m.change({"canopy_100": 20, "impervious_100": -10})
    c, i = m.effects()
    assert abs(mean - (2 * c["effect"] - i["effect"])) < 1e-3 and lo < mean < hi and p > 0.9


def test_effect_text() -> None:
    assert effect_text(-0.41, -0.72, -0.11, "°C") == "−0.4 °C [−0.7, −0.1]"
    assert effect_text(0.02, -0.03, 0.06, "°C") == "+0.02 °C [−0.03, +0.06]"
    assert effect_text(-3.4, -6.2, -0.4, "h") == "−3 h [−6, 0]"
