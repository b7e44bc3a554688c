"""Alert rules and the open/close state machine, pure (no services)."""

from __future__ import annotations

import pandas as pd
import pytest

from heatwatch.analytics.alerts import Alert, transition
from heatwatch.analytics.jobs import town_context
from heatwatch.analytics.rules import (
    TOWN,
    Snapshot,
    battery_rule,
    canicule_rule,
    evaluate,
    heat_rules,
    offline_rule,
    qc_rule,
    uhi_night_rule,
)
from heatwatch.core.measurements import QcFlag
from heatwatch.core.settings import load_towns
from heatwatch.core.thresholds import AlertThresholds

TOWN_CTX = town_context(load_towns()["vitre"], [])  # no registry: every non-reference counts as urban
NIGHT = pd.Timestamp("2025-07-20T21:30Z")  # 23:30 local
DAY = pd.Timestamp("2025-07-20T12:00Z")


def live(**sensors: dict) -> pd.DataFrame:
    rows = {s: {"t": None, "rh": None, "n": 6, "last_seen": NIGHT, "battery_v": 3.2} | v for s, v in sensors.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["t", "rh", "n", "last_seen", "battery_v"])
    frame.index.name = "sensor"
    return frame.astype({"t": "float64", "rh": "float64", "n": "float64", "battery_v": "float64"})


def snap(now: pd.Timestamp = NIGHT, live_frame: pd.DataFrame | None = None, hourly: pd.DataFrame | None = None,
         town_daily: pd.DataFrame | None = None, expected: frozenset[str] = frozenset()) -> Snapshot:
    return Snapshot(TOWN_CTX, now, live_frame if live_frame is not None else live(),
                    hourly if hourly is not None else pd.DataFrame(columns=["sensor", "time", "qc", "n"]),
                    town_daily if town_daily is not None
                    else pd.DataFrame(columns=["time", "ibmn", "ibmx", "canicule"]),
                    expected, AlertThresholds())


def test_heat_rule_has_hysteresis() -> None:
    checks = heat_rules(snap(live_frame=live(a={"t": 35.2, "rh": 30.0}, b={"t": 34.8, "rh": 30.0},
                                             c={"t": 34.4, "rh": 30.0})))
    temp = {c.sensor: c for c in checks if c.kind == "temperature"}
    assert temp["a"].raised and not temp["b"].raised and "c" not in temp


def test_open_alert_holds_inside_the_margin_and_closes_beyond_it() -> None:
    opened = Alert("vitre", "b", "temperature", 35.6, 35.0, "m", 1000)
    open_ = {opened.key: opened}
    holding = heat_rules(snap(live_frame=live(b={"t": 34.8, "rh": 30.0})))
    assert transition("vitre", open_, holding, 2000) == []  # 34.8 °C: still the same alert
    gone = heat_rules(snap(live_frame=live(b={"t": 34.4, "rh": 30.0})))
    (change,) = transition("vitre", open_, gone, 3000)
    assert change.event == "close" and change.alert.ended == 3000 and change.alert.started == 1000
    assert change.alert.value == 35.6  # the peak stays


def test_not_open_and_only_holding_does_not_open() -> None:
    holding = heat_rules(snap(live_frame=live(b={"t": 34.8, "rh": 30.0})))
    assert [c for c in transition("vitre", {}, holding, 1) if c.alert.kind == "temperature"] == []


def test_worse_value_updates_the_same_alert() -> None:
    opened = Alert("vitre", "a", "temperature", 35.2, 35.0, "m", 1000)
    checks = heat_rules(snap(live_frame=live(a={"t": 36.0, "rh": 30.0})))
    changes = transition("vitre", {opened.key: opened}, checks, 2000)
    upd = [c for c in changes if c.alert.kind == "temperature"]
    assert [c.event for c in upd] == ["update"] and upd[0].alert.value == 36.0 and upd[0].alert.started == 1000


def test_battery_is_worse_when_lower() -> None:
    opened = Alert("vitre", "a", "battery", 2.55, 2.6, "m", 1000)
    lower = battery_rule(snap(live_frame=live(a={"t": 20.0, "battery_v": 2.5})))
    assert [c.event for c in transition("vitre", {opened.key: opened}, lower, 2)] == ["update"]
    higher = battery_rule(snap(live_frame=live(a={"t": 20.0, "battery_v": 2.58})))
    assert transition("vitre", {opened.key: opened}, higher, 2) == []
    recharged = battery_rule(snap(live_frame=live(a={"t": 20.0, "battery_v": 3.0})))
    assert [c.event for c in transition("vitre", {opened.key: opened}, recharged, 2)] == ["close"]


def test_sensor_failing_qc_raises_no_heat_alert() -> None:
    hourly = pd.DataFrame({"sensor": ["a"], "time": [NIGHT.floor("h")], "qc": [int(QcFlag.SPATIAL_HIGH)], "n": [12]})
    assert heat_rules(snap(live_frame=live(a={"t": 39.0, "rh": 40.0}), hourly=hourly)) == []


def test_uhi_night_only_at_night_and_against_the_coolest_reference() -> None:
    frame = live(**{"vitre-rural-01": {"t": 20.0, "rh": 60.0}}, u={"t": 24.5, "rh": 50.0}, v={"t": 23.0, "rh": 50.0})
    checks = uhi_night_rule(snap(NIGHT, frame))
    assert [(c.sensor, c.raised, round(c.value, 1)) for c in checks] == [("u", True, 4.5)]
    assert uhi_night_rule(snap(DAY, frame)) == []


def test_offline_counts_silent_and_never_seen_sensors() -> None:
    frame = live(a={"t": 20.0, "last_seen": NIGHT - pd.Timedelta(minutes=90)}, b={"t": 20.0})
    checks = offline_rule(snap(live_frame=frame, expected=frozenset({"a", "b", "ghost"})))
    assert {c.sensor: round(c.value) for c in checks} == {"a": 90, "ghost": 7 * 24 * 60}


def test_qc_rule_needs_consecutive_flagged_hours_and_ignores_day_and_registry_flags() -> None:
    hours = [NIGHT.floor("h") - pd.Timedelta(hours=k) for k in (3, 2, 1, 0)]
    def frame(sensor: str, flags: list[int]) -> pd.DataFrame:
        return pd.DataFrame({"sensor": sensor, "time": hours, "qc": flags, "n": 12})

    high, step = int(QcFlag.SPATIAL_HIGH), int(QcFlag.STEP)
    day_only = int(QcFlag.AVAILABILITY | QcFlag.UNPLACED)
    hourly = pd.concat([frame("a", [0, high, step, high]), frame("b", [0, 0, high, high]),
                        frame("c", [high, high, high, 0]), frame("d", [day_only] * 4)])
    checks = {c.sensor: c for c in qc_rule(snap(hourly=hourly))}
    assert set(checks) == {"a", "b"}
    assert checks["a"].raised and checks["a"].value == 3 and "SPATIAL_HIGH" in checks["a"].message
    assert "STEP" in checks["a"].message and not checks["b"].raised


@pytest.mark.parametrize(("flags", "raised"), [([True], True), ([True, False], False), ([None, True], True),
                                                ([True, None], True)])
def test_canicule_follows_the_newest_known_day(flags: list, raised: bool) -> None:
    times = [pd.Timestamp("2025-07-18T22:00Z") + pd.Timedelta(days=i) for i in range(len(flags))]
    cd = pd.DataFrame({"time": times, "ibmn": 20.0, "ibmx": 34.0, "canicule": pd.array(flags, dtype="boolean")})
    checks = canicule_rule(snap(town_daily=cd))
    assert [(c.sensor, c.kind) for c in checks] == ([(TOWN, "canicule")] if raised else [])


def test_evaluate_is_sorted_and_complete() -> None:
    frame = live(**{"vitre-rural-01": {"t": 20.0, "rh": 50.0}}, u={"t": 37.0, "rh": 50.0, "battery_v": 2.4})
    kinds = [(c.kind, c.sensor) for c in evaluate(snap(live_frame=frame))]
    assert kinds == sorted(kinds)
    assert {k for k, _ in kinds} == {"battery", "heat_index", "temperature", "uhi_night"}


def test_battery_in_percent_for_devices_that_report_no_volts() -> None:
    frame = live(volts={"battery_v": 2.55}, pct={"battery_v": None}, fine={"battery_v": None}, both={"battery_v": 3.1})
    frame["battery_pct"] = pd.Series({"pct": 12.0, "fine": 64.0, "both": 5.0})
    checks = {c.sensor: c for c in battery_rule(snap(live_frame=frame))}
    assert set(checks) == {"volts", "pct"}  # a device reporting volts is judged on volts only
    assert checks["pct"].raised and checks["pct"].threshold == 20.0 and "12 %" in checks["pct"].message
    assert checks["volts"].threshold == 2.6


def test_a_canicule_day_of_a_past_summer_is_history_not_a_condition() -> None:
    days = pd.DataFrame({"time": [pd.Timestamp("2025-07-19T22:00Z")], "ibmn": [20.0], "ibmx": [34.0],
                         "canicule": [True]})
    assert canicule_rule(snap(now=NIGHT, town_daily=days))  # that very day
    assert canicule_rule(snap(now=NIGHT + pd.Timedelta(days=2), town_daily=days))  # IBM of D is known on D+1
    assert canicule_rule(snap(now=NIGHT + pd.Timedelta(days=3), town_daily=days)) == []
    assert canicule_rule(snap(now=pd.Timestamp("2025-11-29T08:00Z"), town_daily=days)) == []
