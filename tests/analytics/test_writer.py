"""Aggregate frames to line protocol, and when a rewrite must delete first. Pure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from heatwatch.analytics.writer import SCHEMA, frame_lines, leaves_stale

T = pd.Timestamp("2025-07-10T22:00Z")
MS = int(T.timestamp() * 1000)


def hourly(**fields: object) -> pd.DataFrame:
    row = {"town": "vitre", "sensor": "a b,c", "time": T} | fields
    return pd.DataFrame([row])


def test_types_are_fixed_per_field_and_nan_left_out() -> None:
    (line,) = frame_lines(hourly(t_mean=21.0, uhi=np.nan, n=12.0, qc=0), "hourly", *SCHEMA["hourly"])
    assert line == f"hourly,sensor=a\\ b\\,c,town=vitre t_mean=21.0,n=12i,qc=0i {MS}"


def test_bool_string_and_rounding() -> None:
    frame = pd.DataFrame([{"town": "vitre", "time": T, "ibmn": 18.123456789, "canicule": True,
                           "hottest_sensor": 'x"y', "sensors_ok": 3},
                          {"town": "vitre", "time": T + pd.Timedelta(days=1), "ibmn": np.nan,
                           "canicule": pd.NA, "hottest_sensor": None, "sensors_ok": np.nan}])
    frame["canicule"] = frame["canicule"].astype("boolean")
    lines = frame_lines(frame, "town_daily", *SCHEMA["town_daily"])
    assert lines == [f'town_daily,town=vitre ibmn=18.123457,canicule=true,hottest_sensor="x\\"y",sensors_ok=3i {MS}']


def test_delete_needed_only_when_a_stored_value_would_survive() -> None:
    stored = pd.DataFrame({"time": [MS], "sensor": ["a"], "t_mean": [21.0], "uhi": [1.5], "n": [12], "qc": [0]})
    same = pd.DataFrame({"town": "vitre", "sensor": ["a"], "time": [T], "t_mean": [21.2], "uhi": [1.4], "n": [13],
                         "qc": [0]})
    assert not leaves_stale(stored, same, "hourly")
    assert not leaves_stale(stored.iloc[0:0], same, "hourly")
    assert leaves_stale(stored, same.assign(uhi=np.nan), "hourly")  # the reference hour got flagged
    assert leaves_stale(stored, same.assign(sensor="b"), "hourly")  # a point not rewritten at all
    assert leaves_stale(stored.assign(old_field=1.0), same, "hourly")  # a field no longer in the schema
