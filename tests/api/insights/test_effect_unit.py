"""The pieces of an effect evaluation around the estimator: windows, matched controls, weather alignment, and
which interventions a season's report evaluates."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from heatwatch.api.insights.did import AFTER, BEFORE, EXCLUDED
from heatwatch.api.insights.effect import EffectWindow, busy_sensors, match_controls, periods, weather_matrix
from heatwatch.api.report import season_interventions
from heatwatch.core.interventions import Intervention
from heatwatch.core.model import Sensor
from heatwatch.simulate import load_example_sensors


def item(rid: int, sensors: list[str], start: str | None, end: str | None, town: str = "vitre") -> Intervention:
    return Intervention(id=rid, created="2025-01-01T00:00:00Z", town=town, site="EXAMPLE", sensors=sensors,
                        start=start, end=end, kind="tree_planting")


@pytest.fixture(scope="module")
def vitre():
    from heatwatch.core.settings import Settings

    return Settings.load().towns["vitre"], [s for s in load_example_sensors() if s.town == "vitre"]


def test_day_windows_leave_out_the_whole_works() -> None:
    w = EffectWindow(30, 20)
    assert w.spans(date(2025, 7, 8), date(2025, 7, 15)) == (date(2025, 6, 8), date(2025, 7, 7), date(2025, 7, 16),
                                                            date(2025, 8, 4))
    days = [date(2025, 7, d) for d in range(6, 18)]
    p = periods(days, w.spans(date(2025, 7, 8), date(2025, 7, 15)))
    assert p.tolist() == [BEFORE, BEFORE] + [EXCLUDED] * 8 + [AFTER, AFTER]


@pytest.mark.parametrize("start, end, expected", [
    # winter planting: summer before against summer after
    ("2024-11-18", "2025-03-07", ("2024-06-01", "2024-09-15", "2025-06-01", "2025-09-15")),
    # works inside a season: the part of that season before them, and the part after them
    ("2025-07-08", "2025-07-15", ("2025-06-01", "2025-07-07", "2025-07-16", "2025-09-15")),
    # works ending after the season: the next summer
    ("2025-09-01", "2025-10-02", ("2025-06-01", "2025-08-31", "2026-06-01", "2026-09-15")),
])
def test_season_windows(start: str, end: str, expected: tuple[str, ...]) -> None:
    spans = EffectWindow(mode="seasons").spans(date.fromisoformat(start), date.fromisoformat(end))
    assert tuple(d.isoformat() for d in spans) == expected


def test_controls_are_matched_by_lcz_then_site_class(vitre) -> None:
    town, sensors = vitre
    first, last = date(2025, 6, 1), date(2025, 9, 15)
    controls, source = match_controls(town, sensors, ["vitre-centre-03"], [], first, last)
    assert controls == ["vitre-centre-01", "vitre-centre-02", "vitre-centre-06"]  # LCZ 2, centre-05 retired
    assert "Local Climate Zone" in source
    # Another intervention treating centre-02 during the window takes it out: too few LCZ 2, so site class.
    busy = [item(9, ["vitre-centre-02"], "2025-06-20", "2025-06-25")]
    controls, source = match_controls(town, sensors, ["vitre-centre-03"], busy, first, last)
    assert controls == ["vitre-centre-01", "vitre-centre-04", "vitre-centre-06", "vitre-gare-01"]
    assert "same site class" in source and "fewer than 3 sensors share" in source
    # A park is compared with parks, never with streets.
    controls, source = match_controls(town, sensors, ["vitre-parc-01"], [], first, last)
    assert controls == ["vitre-parc-02"] and "too few sensors" in source
    unplaced = Sensor(id="x-01", town="vitre")
    controls, source = match_controls(town, [*sensors, unplaced], ["x-01"], [], first, last)
    assert controls == [] and "no site class" in source


def test_busy_sensors_follow_the_works_periods() -> None:
    others = [item(1, ["a"], "2025-05-01", "2025-05-10"), item(2, ["b"], "2025-06-20", None),
              item(3, ["c"], "2025-09-20", "2025-09-30")]
    assert busy_sensors(others, date(2025, 6, 1), date(2025, 9, 15)) == {"b"}


def test_weather_is_aligned_with_the_night() -> None:
    weather = {date(2025, 7, 1): {"tn": 15.0, "tx": 30.0}, date(2025, 7, 2): {"tn": 16.0, "tx": 31.0}}
    days = [date(2025, 7, 1), date(2025, 7, 2)]
    w = weather_matrix(weather, days, (("tn", 0), ("tx", -1)))
    assert np.isnan(w[0, 1]) and w[0, 0] == 15.0 and w[1].tolist() == [16.0, 30.0]


def test_a_seasons_report_evaluates_its_works_and_the_winter_before() -> None:
    items = [item(1, ["a"], "2025-07-08", "2025-07-15"),  # in the season: days around it
             item(2, ["a"], "2024-11-18", "2025-03-07"),  # the winter before: summer to summer
             item(3, ["a"], "2025-09-20", "2025-10-01"),  # after the season: next year's report
             item(4, ["a"], "2025-08-01", None),  # in progress: listed, says so
             item(5, ["a"], "2024-07-01", "2024-07-02")]  # last year
    chosen = season_interventions(items, 2025)
    assert [(i.id, w.mode) for i, w in chosen] == [(1, "days"), (2, "seasons"), (4, "days")]
    assert [i.id for i, _ in season_interventions(items, 2026)] == [3]
