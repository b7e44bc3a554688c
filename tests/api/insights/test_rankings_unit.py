"""Rankings, episodes and common-day means on hand-made rows."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from heatwatch.api.insights.queries import DailyRow
from heatwatch.api.insights.rankings import (
    BASIS_COMMON,
    BASIS_OWN,
    BASIS_REFERENCE,
    canicule_episodes,
    common_day_means,
    common_days,
    rank_sites,
    ranking_columns,
    season_days,
    season_summary,
    season_window,
    threshold_column,
)
from heatwatch.core.model import Sensor

D0 = date(2025, 7, 1)


def rows(sensor: str, nights: list[float | None], tropical: int = 0, start: int = 0) -> list[DailyRow]:
    return [DailyRow(sensor, D0 + timedelta(days=start + i), {"uhi_night_max": v, "uhi_mean": v and v / 2,
                                                               "tropical_night": i < tropical, "tn": 18.0,
                                                               "tx": 30.0})
            for i, v in enumerate(nights)]


def by_id(ranking: list[dict]) -> dict[str, dict]:
    return {r["sensor"]: r for r in ranking}


def test_ranking_order_and_unranked_sparse_sites() -> None:
    data = rows("hot", [3.0] * 10, tropical=4) + rows("cool", [0.5] * 10) + rows("sparse", [9.0] * 3)
    hours = {"hot": {D0 + timedelta(days=i): {30.0: 2} for i in range(6)}}
    ranked, common = rank_sites(data, {}, hours=hours, thresholds=[30.0])
    assert [(r["sensor"], r["rank"]) for r in ranked] == [("hot", 1), ("cool", 2), ("sparse", None)]
    hot = ranked[0]
    assert hot["tropical_nights"] == 4 and hot[threshold_column(30.0)] == 12 and hot["basis"] == BASIS_COMMON
    assert hot["uhi_night_max_mean"] == 3.0 and hot["uhi_night_max_max"] == 3.0 and hot["uhi_mean_mean"] == 1.5
    assert hot["coverage"] == 1.0 and hot["days_measured"] == hot["days_compared"] == 10
    assert ranked[1]["hours_ge_30"] == 0
    sparse = ranked[2]
    assert sparse["basis"] == BASIS_OWN and sparse["days_compared"] == 3 and "3 of the 10 days" in sparse["note"]
    assert common.sites == ["cool", "hot"] and len(common.common) == 10


def test_a_site_that_missed_the_heat_wave_is_compared_on_the_same_days() -> None:
    """A measured a hot week that B missed: on their own days A looks hotter, on the same days B is."""
    nights_a = [3.0] * 10 + [6.0] * 7 + [3.0] * 13
    nights_b = [3.2] * 10 + [None] * 7 + [3.2] * 13
    data = rows("a", nights_a) + rows("b", nights_b) + rows("c", [2.0] * 30)
    ranked, common = rank_sites(data, {})
    assert [r["sensor"] for r in ranked] == ["b", "a", "c"]
    r = by_id(ranked)
    assert r["a"]["days_measured"] == 30 and r["a"]["days_compared"] == 23 == r["b"]["days_compared"]
    assert r["a"]["uhi_night_max_mean"] == 3.0 and r["b"]["uhi_night_max_mean"] == 3.2
    assert r["a"]["uhi_night_max_max"] == 3.0  # the hot week is not a day the sites share
    assert len(common.common) == 23 and common.describe()["common_days"] == 23


def test_a_site_whose_gaps_would_halve_the_common_days_is_flagged_not_ranked() -> None:
    # "late" has 60 % of the days, but ranking it with y (days 0–13) would leave 6 common days of 20.
    data = rows("x", [2.0] * 20) + rows("y", [1.0] * 14 + [None] * 6) + rows("late", [5.0] * 12, start=8)
    ranked, common = rank_sites(data, {})
    r = by_id(ranked)
    assert r["late"]["rank"] is None and r["late"]["basis"] == BASIS_OWN
    assert "only 6 of them" in r["late"]["note"] and "at least 10 needed" in r["late"]["note"]
    assert r["late"]["uhi_night_max_mean"] == 5.0 and r["late"]["days_compared"] == 12  # its own days, flagged
    assert [x["sensor"] for x in ranked if x["rank"]] == ["x", "y"] and len(common.common) == 14
    assert common.left_out.keys() == {"late"}


def test_references_are_listed_not_ranked_and_do_not_cut_the_common_days() -> None:
    class Ref:
        is_reference, owner = True, "town"
        name, site_class, lcz, latitude, longitude = "ref", "rural_reference", "LCZ D", 48.1, -1.2

    data = rows("s1", [2.0] * 10) + rows("s2", [1.0] * 10) + rows("rural", [0.0] * 4)
    ranked, common = rank_sites(data, {"rural": Ref()})
    r = by_id(ranked)
    assert r["rural"]["basis"] == BASIS_REFERENCE and r["rural"]["rank"] is None and r["rural"]["lcz"] == "LCZ D"
    assert len(common.common) == 10 and "rural" not in common.left_out


def test_hot_hours_count_over_the_compared_days_only() -> None:
    data = rows("a", [3.0] * 10) + rows("b", [3.0] * 5 + [None] * 5)
    hours = {s: {D0 + timedelta(days=i): {30.0: 1, 35.0: 1} for i in range(10)} for s in ("a", "b")}
    ranked, _ = rank_sites(data, {}, hours=hours, thresholds=[30.0, 35.0])
    assert [(x["sensor"], x["hours_ge_30"], x["hours_ge_35"]) for x in ranked] == [("a", 5, 5), ("b", 5, 5)]


def test_common_days_is_greedy_by_coverage_and_deterministic() -> None:
    days = [D0 + timedelta(days=i) for i in range(10)]
    cd = common_days({"full": days, "gap1": days[1:], "gap2": days[:9], "half": days[:5], "none": []})
    # full → 10 common days, gap1 → 9, gap2 → 8; half would leave 4 of 10 (< 5): left out
    assert cd.sites == ["full", "gap1", "gap2"] and cd.common == days[1:9]
    assert cd.left_out.keys() == {"half", "none"} and cd.days_with_data == days
    assert common_days({}).common == []


def test_sites_missing_the_same_day_share_its_cost() -> None:
    days = [D0 + timedelta(days=i) for i in range(10)]
    sites = {f"full{i}": days for i in range(5)}
    sites |= {"a": [d for d in days if d != days[3]], "z": [d for d in days if d != days[3]],
              "c": [d for d in days if d != days[5]], "d": [d for d in days if d != days[7]],
              "e": days[3:8]}
    cd = common_days(sites)
    # a and z miss the same day: once a has paid for it, z joins for free, before c and d.
    assert cd.sites[:5] == [f"full{i}" for i in range(5)] and cd.sites[5:] == ["a", "z", "c", "d"]
    assert cd.common == [days[i] for i in (0, 1, 2, 4, 6, 8, 9)]
    assert "only 2 of them" in cd.left_out["e"]


def test_common_day_means_leave_out_incomparable_sites() -> None:
    data = rows("a", [1.0, 2.0, 3.0, 4.0]) + rows("b", [5.0, 5.0, 5.0, None]) + rows("c", [9.0])
    values, cd = common_day_means(data, "uhi_night_max")
    assert values == {"a": pytest.approx(2.0), "b": pytest.approx(5.0)}
    assert "c" in cd.left_out and len(cd.common) == 3
    only_a, _ = common_day_means(data, "uhi_night_max", sites={"a"})
    assert only_a == {"a": pytest.approx(2.5)}


def test_column_names_say_what_they_are() -> None:
    cols = ranking_columns([30.0])
    assert "uhi_night_mean" not in cols and "uhi_day_mean" not in cols and "days" not in cols
    assert {"uhi_night_max_mean", "uhi_night_max_max", "uhi_mean_mean", "days_compared", "basis"} <= set(cols)
    assert cols[-1] == "note"


def test_canicule_episodes_split_on_gaps() -> None:
    flags = [False, True, True, False, True, True, True]
    town = [{"date": D0 + timedelta(days=i), "canicule": f, "ibmn": 18.0 + i, "ibmx": 33.0, "uhi_max": 2.0}
            for i, f in enumerate(flags)]
    eps = canicule_episodes(town)
    assert [(e["start"].day, e["end"].day, e["days"]) for e in eps] == [(2, 3, 2), (5, 7, 3)]
    assert eps[1]["ibmn_max"] == 24.0


def test_season_window() -> None:
    assert season_window(2025) == (date(2025, 6, 1), date(2025, 9, 15))
    assert len(season_days(2025)) == 107 and season_days(2025, until=date(2025, 5, 1)) == []
    assert threshold_column(35) == "hours_ge_35" and threshold_column(27.5) == "hours_ge_27_5"


def test_a_registered_sensor_without_any_usable_day_is_listed_with_the_reason() -> None:
    class Meta:
        def __init__(self, retired: bool = False) -> None:
            self.retired, self.is_reference, self.owner = retired, False, "town"
            self.name, self.site_class, self.lcz, self.latitude, self.longitude = "x", "urban", "LCZ 2", 48.1, -1.2

    ranked, _ = rank_sites(rows("a", [2.0] * 5), {"a": Meta(), "gone": Meta(), "old": Meta(retired=True)})
    r = by_id(ranked)
    assert "old" not in r and r["gone"]["rank"] is None and r["gone"]["days_measured"] == 0
    assert "every day left out by quality control" in r["gone"]["note"] and r["gone"]["basis"] == BASIS_OWN


def test_the_summary_counts_the_tropical_nights_of_the_sensors_the_town_counts() -> None:
    def citizen(sid: str, trust: str) -> Sensor:
        return Sensor(id=sid, town="vitre", latitude=48.12, longitude=-1.21, owner="citizen", trust=trust,
                      trust_since=D0)

    data = rows("town", [1.0] * 5, tropical=2) + rows("ok", [1.0] * 5, tropical=3) + rows("new", [1.0] * 5, tropical=4)
    sensors = {"ok": citizen("ok", "confirmed"), "new": citizen("new", "provisional")}
    assert season_summary([], data)["sensor_tropical_nights"] == 9  # without the registry: every sensor's
    assert season_summary([], data, sensors)["sensor_tropical_nights"] == 5  # the provisional one's are not the town's
