"""Quality control: each injected fault is caught; healthy sensors are rarely flagged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from heatwatch.analytics.qc import QcConfig, run_qc, spatial_thresholds, usable
from heatwatch.analytics.robust import qn_rows, qn_scale
from heatwatch.core.measurements import VALUE_FLAGS, QcFlag


def _hourly_flags(q: pd.DataFrame) -> pd.Series:
    """OR of the reading flags in each (sensor, hour): what an hourly value inherits."""
    hour = q["time"].dt.floor("h")
    return q.groupby([q["sensor"], hour])["qc"].agg(lambda s: int(np.bitwise_or.reduce(s.to_numpy())))


def _has(flags: pd.Series, flag: QcFlag) -> pd.Series:
    return (flags.astype("int64") & int(flag)) != 0


# The synthetic town of conftest.py (typed loosely: conftest cannot be imported).
SyntheticTown = Any
TownFactory = Callable[..., Any]


@pytest.fixture(scope="module")
def checked(make_town: TownFactory) -> tuple[SyntheticTown, pd.DataFrame]:
    town = make_town()
    return town, run_qc(town.readings, cool_sites=town.cool_sites)


def test_rows_are_kept_in_order_with_flags(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    assert len(q) == len(town.readings)
    assert q.index.equals(town.readings.index)
    assert q[["sensor", "time", "temperature"]].equals(town.readings[["sensor", "time", "temperature"]])
    assert q["qc"].dtype == np.int64


def test_range(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    bad = town.readings.attrs["range"]
    assert _has(q.loc[bad, "qc"], QcFlag.RANGE).all()
    assert _has(q["qc"], QcFlag.RANGE).sum() == len(bad)


def test_spikes_are_caught_and_their_neighbours_spared(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    spikes = town.readings.attrs["spikes"]
    assert len(spikes) >= 20
    assert _has(q.loc[spikes, "qc"], QcFlag.SPIKE).all()
    after = [i + 1 for i in spikes]
    # The reading after a spike is the sensor coming back, not a step.
    assert not _has(q.loc[after, "qc"], QcFlag.STEP | QcFlag.SPIKE).any()


def test_stuck_sensor_is_persistence(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    stuck = next(s for s, kind in town.faults.items() if kind == "stuck")
    rows = q[q["sensor"] == stuck]
    stuck_from = rows["time"].iloc[0] + pd.Timedelta(days=3)
    assert _has(rows.loc[rows["time"] >= stuck_from, "qc"], QcFlag.PERSISTENCE).all()
    assert not _has(rows.loc[rows["time"] < stuck_from - pd.Timedelta(minutes=10), "qc"],
                    QcFlag.PERSISTENCE).any()


def test_drifting_sensor_is_caught_by_the_spatial_test(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    drifting = next(s for s, kind in town.faults.items() if kind == "drift")
    hourly = _hourly_flags(q).loc[drifting]
    hours = hourly.index
    drift = np.clip(((hours - hours[0]) / pd.Timedelta(days=1) - 3) / 7, 0, None) * 4.0
    caught = _has(hourly, QcFlag.SPATIAL_HIGH)
    assert caught[drift >= 2.0].mean() >= 0.95
    assert caught[drift < 0.3].mean() <= 0.02


def test_offline_sensor_fails_availability_that_day_only(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    offline = next(s for s, kind in town.faults.items() if kind == "offline")
    rows = q[q["sensor"] == offline]
    day = rows["time"].dt.tz_convert("Europe/Paris").dt.date
    short_days = set(day[_has(rows["qc"], QcFlag.AVAILABILITY)])
    assert short_days == {pd.Timestamp("2025-07-05").date()}
    assert not _has(q.loc[q["sensor"] != offline, "qc"], QcFlag.AVAILABILITY).any()


def test_false_positive_rate_on_healthy_sensors(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    hourly = _hourly_flags(q)
    healthy = hourly[hourly.index.get_level_values(0).isin(town.healthy)]
    rate = float(_has(healthy, VALUE_FLAGS).mean())
    print(f"\nQC false-positive rate on {len(town.healthy)} healthy sensors: {rate:.3%} of "
          f"{len(healthy)} sensor-hours")
    assert len(town.healthy) == 16
    assert rate < 0.02


def test_false_positive_rate_over_several_seeds(make_town: TownFactory) -> None:
    rates = []
    for seed in range(1, 6):
        town = make_town(seed=seed, days=5, faults=False)
        hourly = _hourly_flags(run_qc(town.readings, cool_sites=town.cool_sites))
        rates.append(float(_has(hourly, VALUE_FLAGS).mean()))
    print(f"\nQC false-positive rate, fault-free towns, 5 seeds: {', '.join(f'{r:.3%}' for r in rates)}")
    assert max(rates) < 0.02


def test_runs_on_hourly_means(make_town: TownFactory) -> None:
    town = make_town(days=6)
    r = town.readings
    hourly = (
        r.assign(time=r["time"].dt.floor("h"))
        .groupby(["town", "sensor", "time"], as_index=False)
        .agg(t_mean=("temperature", "median"), rh_mean=("humidity", "mean"))
    )
    q = run_qc(hourly, cool_sites=town.cool_sites, temperature="t_mean", humidity="rh_mean")
    stuck = next(s for s, kind in town.faults.items() if kind == "stuck")
    late = (q["sensor"] == stuck) & (q["time"] >= q["time"].min() + pd.Timedelta(days=3, hours=1))
    assert _has(q.loc[late, "qc"], QcFlag.PERSISTENCE).all()
    offline = next(s for s, kind in town.faults.items() if kind == "offline")
    assert _has(q.loc[q["sensor"] == offline, "qc"], QcFlag.AVAILABILITY).any()


def _tiny(values: dict[str, list[float]], start: str = "2025-07-01T00:00Z", freq: str = "10min") -> pd.DataFrame:
    rows = []
    for sensor, temps in values.items():
        times = pd.date_range(start, periods=len(temps), freq=freq)
        rows.append(pd.DataFrame({"town": "vitre", "sensor": sensor, "time": times, "temperature": temps,
                                  "humidity": 50.0}))
    return pd.concat(rows, ignore_index=True)


def test_step_flags_the_jump_not_the_plateau() -> None:
    t = [20.0, 20.1, 20.0, 27.0, 27.1, 27.0, 27.1]
    q = run_qc(_tiny({"a": t}), QcConfig(expected_interval=None))
    flags = q["qc"].to_numpy()
    assert flags[3] & QcFlag.STEP
    assert not any(f & (QcFlag.STEP | QcFlag.SPIKE) for i, f in enumerate(flags) if i != 3)


def test_step_threshold_scales_with_the_gap() -> None:
    # 6 °C in 10 min is a step; 6 °C over 2 h (limit 4 + 12) is weather.
    fast = run_qc(_tiny({"a": [20.0, 20.0, 26.0, 26.0]}))
    slow = run_qc(_tiny({"a": [20.0, 20.0, 26.0, 26.0]}, freq="2h"))
    assert fast["qc"].iloc[2] & QcFlag.STEP
    assert not slow["qc"].iloc[2] & QcFlag.STEP


def test_nan_and_missing_rows_do_not_break_checks() -> None:
    df = _tiny({"a": [20.0, np.nan, 20.2, 29.0, 20.3, 20.1]})
    q = run_qc(df)
    assert q["qc"].iloc[3] & QcFlag.SPIKE
    assert not q["qc"].iloc[1] & (QcFlag.SPIKE | QcFlag.STEP | QcFlag.RANGE)


def test_persistence_needs_hours_and_allows_tiny_wobble() -> None:
    two_h = [18.0] * 13 + [18.5]  # 2 h flat: not yet
    four_h = [18.0, 18.003] * 12 + [18.5]  # 4 h within the tolerance
    q = run_qc(_tiny({"a": two_h, "b": four_h}))
    assert not _has(q.loc[q.sensor == "a", "qc"], QcFlag.PERSISTENCE).any()
    b = q.loc[q.sensor == "b", "qc"].to_numpy()
    assert all(f & QcFlag.PERSISTENCE for f in b[:-1]) and not b[-1] & QcFlag.PERSISTENCE


def _town_hour(values: list[float], sensors: list[str] | None = None) -> pd.DataFrame:
    sensors = sensors or [f"s{i:02d}" for i in range(len(values))]
    return pd.DataFrame({"town": "vitre", "sensor": sensors,
                         "time": pd.Timestamp("2025-07-01T12:00Z"), "t_mean": values, "rh_mean": 50.0})


def test_spatial_is_asymmetric_and_skipped_below_five() -> None:
    cfg = QcConfig(expected_interval=timedelta(hours=1), availability_min=0.0)
    base = [20.0, 20.5, 21.0, 21.5, 22.0, 20.2, 20.7, 21.2, 21.7, 21.1, 20.9, 21.3]
    # Median 21.1/21.0 °C, Qn 0.80 °C, 13 sensors: bounds t(12) = −2.68 and +1.78.
    hot = run_qc(_town_hour([*base, 22.9]), cfg, temperature="t_mean", humidity="rh_mean")
    cold = run_qc(_town_hour([*base, 19.0]), cfg, temperature="t_mean", humidity="rh_mean")
    assert hot["qc"].iloc[-1] == QcFlag.SPATIAL_HIGH
    # 2.0 °C below is not flagged while 1.8 °C above is: the low bound is the farther one.
    assert cold["qc"].iloc[-1] == 0
    colder = run_qc(_town_hour([*base, 18.5]), cfg, temperature="t_mean", humidity="rh_mean")
    assert colder["qc"].iloc[-1] == QcFlag.SPATIAL_LOW
    few = run_qc(_town_hour([20.0, 20.1, 20.2, 35.0]), cfg, temperature="t_mean", humidity="rh_mean")
    assert (few["qc"] == 0).all()


def test_cool_sites_are_exempt_from_spatial_low_only() -> None:
    cfg = QcConfig(expected_interval=timedelta(hours=1), availability_min=0.0)
    values = [21.0, 21.2, 21.4, 21.1, 20.9, 21.3, 21.5, 16.0]
    names = [f"s{i}" for i in range(7)] + ["ref"]
    q = run_qc(_town_hour(values, names), cfg, cool_sites=["ref"], temperature="t_mean", humidity="rh_mean")
    assert q["qc"].iloc[-1] == 0
    q = run_qc(_town_hour(values, names), cfg, temperature="t_mean", humidity="rh_mean")
    assert q["qc"].iloc[-1] == QcFlag.SPATIAL_LOW
    hot = run_qc(_town_hour([*values[:-1], 26.0], names), cfg, cool_sites=["ref"],
                 temperature="t_mean", humidity="rh_mean")
    assert hot["qc"].iloc[-1] == QcFlag.SPATIAL_HIGH


def test_unplaced_sensors_are_flagged_and_left_out_of_the_town() -> None:
    cfg = QcConfig(expected_interval=timedelta(hours=1), availability_min=0.0)
    values = [21.0, 21.2, 21.4, 21.1, 30.0, 30.0, 30.0, 30.0]
    names = ["a", "b", "c", "d", "u1", "u2", "u3", "u4"]
    q = run_qc(_town_hour(values, names), cfg, unplaced=["u1", "u2", "u3", "u4"],
               temperature="t_mean", humidity="rh_mean")
    # Four placed sensors are below the minimum once the unplaced are left out: no spatial test.
    assert list(q["qc"]) == [0] * 4 + [int(QcFlag.UNPLACED)] * 4


def test_spatial_thresholds_tend_to_normal_quantiles() -> None:
    lo, hi = spatial_thresholds(np.array([5, 20, 10_000]), QcConfig())
    assert lo[-1] == pytest.approx(-2.326, abs=2e-3) and hi[-1] == pytest.approx(1.645, abs=2e-3)
    assert lo[0] < lo[1] < lo[2] and hi[0] > hi[1] > hi[2]


def test_usable_mask() -> None:
    qc = pd.Series([0, int(QcFlag.AVAILABILITY), int(QcFlag.SPIKE), int(QcFlag.SPIKE | QcFlag.AVAILABILITY)])
    assert list(usable(qc)) == [True, False, False, False]
    assert list(usable(qc, ignore=QcFlag.AVAILABILITY)) == [True, True, False, False]
    assert list(usable(pd.DataFrame({"qc": qc}))) == [True, False, False, False]


def test_naive_times_are_refused() -> None:
    df = _tiny({"a": [20.0, 20.1]})
    df["time"] = df["time"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="timezone"):
        run_qc(df)


def test_deterministic_and_order_independent(checked: tuple[SyntheticTown, pd.DataFrame]) -> None:
    town, q = checked
    shuffled = town.readings.sample(frac=1.0, random_state=3)
    q2 = run_qc(shuffled, cool_sites=town.cool_sites)
    assert q2["qc"].reindex(q.index).equals(q["qc"])


# Qn ---------------------------------------------------------------------------------------

def _qn_naive(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    n = len(x)
    h = n // 2 + 1
    k = h * (h - 1) // 2
    i, j = np.triu_indices(n, k=1)
    return float(np.sort(np.abs(x[i] - x[j]))[k - 1] * 2.219144465985076)


def test_qn_matches_the_definition_and_statsmodels() -> None:
    # Reference values from statsmodels.robust.scale.qn_scale 0.15 (no finite-sample factor).
    assert qn_scale([3.1, 1.2, 5.5, 2.2, 9.9, 4.4, 0.3], finite_correction=False) == pytest.approx(
        4.216374485371644, rel=1e-12)
    assert qn_scale(np.arange(10.0) ** 1.5, finite_correction=False) == pytest.approx(
        14.861473915226373, rel=1e-12)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 25))
    a[rng.random(a.shape) < 0.2] = np.nan
    expected = [_qn_naive(row) for row in a]
    assert np.allclose(qn_rows(a, finite_correction=False), expected)


def test_qn_is_unbiased_for_small_normal_samples() -> None:
    rng = np.random.default_rng(1)
    for n in (5, 8, 13, 24):
        est = qn_rows(rng.normal(0, 2.0, size=(4000, n)))
        assert est.mean() == pytest.approx(2.0, rel=0.03), n


def test_qn_resists_outliers_and_handles_degenerate_rows() -> None:
    clean = np.array([20.0, 20.5, 21.0, 21.5, 22.0, 20.7, 21.2, 21.8, 20.3, 21.1])
    dirty = clean.copy()
    dirty[:4] = 60.0
    assert qn_scale(dirty) < 3 * qn_scale(clean)
    out = qn_rows(np.array([[1.0, np.nan, np.nan], [np.nan, np.nan, np.nan], [1.0, 2.0, np.nan]]))
    assert np.isnan(out[0]) and np.isnan(out[1]) and np.isfinite(out[2])
