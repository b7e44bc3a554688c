"""Rankings, episodes and period means on hand-made rows."""

from __future__ import annotations

from datetime import date, timedelta

from heatwatch.api.insights.queries import DailyRow
from heatwatch.api.insights.rankings import (
    canicule_episodes,
    period_means,
    rank_sites,
    season_days,
    season_window,
    threshold_column,
)

D0 = date(2025, 7, 1)


def rows(sensor: str, nights: list[float | None], tropical: int = 0) -> list[DailyRow]:
    return [DailyRow(sensor, D0 + timedelta(days=i), {"uhi_night_max": v, "uhi_mean": v and v / 2,
                                                       "tropical_night": i < tropical, "tn": 18.0, "tx": 30.0})
            for i, v in enumerate(nights)]


def test_ranking_order_and_unranked_sparse_sites() -> None:
    data = rows("hot", [3.0] * 10, tropical=4) + rows("cool", [0.5] * 10) + rows("sparse", [9.0] * 3)
    ranked = rank_sites(data, {}, n_days=10, hours={"hot": {30.0: 12}}, thresholds=[30.0])
    assert [(r["sensor"], r["rank"]) for r in ranked] == [("hot", 1), ("cool", 2), ("sparse", None)]
    assert ranked[0]["tropical_nights"] == 4 and ranked[0][threshold_column(30.0)] == 12
    assert ranked[0]["uhi_night_mean"] == 3.0 and ranked[0]["coverage"] == 1.0 and ranked[1]["hours_ge_30"] == 0


def test_canicule_episodes_split_on_gaps() -> None:
    flags = [False, True, True, False, True, True, True]
    town = [{"date": D0 + timedelta(days=i), "canicule": f, "ibmn": 18.0 + i, "ibmx": 33.0, "uhi_max": 2.0}
            for i, f in enumerate(flags)]
    eps = canicule_episodes(town)
    assert [(e["start"].day, e["end"].day, e["days"]) for e in eps] == [(2, 3, 2), (5, 7, 3)]
    assert eps[1]["ibmn_max"] == 24.0


def test_period_means_need_half_the_days() -> None:
    data = rows("a", [1.0, 2.0, 3.0, None]) + rows("b", [5.0])
    assert period_means(data, "uhi_night_max", days=4) == {"a": 2.0}


def test_season_window() -> None:
    assert season_window(2025) == (date(2025, 6, 1), date(2025, 9, 15))
    assert len(season_days(2025)) == 107 and season_days(2025, until=date(2025, 5, 1)) == []
    assert threshold_column(35) == "hours_ge_35" and threshold_column(27.5) == "hours_ge_27_5"
