"""A synthetic town for the analytics tests: ~20 sensors, a diurnal cycle, site effects, noise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from heatwatch.analytics.qc import Site


@dataclass
class SyntheticTown:
    readings: pd.DataFrame
    references: list[str]
    urban: list[str]
    parks: list[str]
    faults: dict[str, str] = field(default_factory=dict)

    @property
    def cool_sites(self) -> list[str]:
        return self.references + self.parks

    @property
    def sites(self) -> dict[str, Site]:
        """What the registry would say: class from the id, all within a few hundred metres."""
        classes = {"rur": "rural_reference", "urb": "urban", "par": "park", "sub": "suburban"}
        out = {}
        for i, s in enumerate(sorted(self.readings["sensor"].unique())):
            out[s] = Site(site_class=classes[s.split("-")[1]], latitude=48.12 + 0.001 * (i % 5),
                          longitude=-1.21 + 0.001 * (i // 5))
        return out

    @property
    def healthy(self) -> list[str]:
        return [s for s in self.readings["sensor"].unique() if s not in self.faults]


def build_town(
    *,
    town: str = "vitre",
    start: str = "2025-07-01",
    days: int = 10,
    step_min: int = 10,
    seed: int = 42,
    faults: bool = True,
) -> SyntheticTown:
    """Readings every ``step_min`` minutes for 20 sensors over whole local (Paris) days.

    Site effects follow the Rennes figures of docs/science/uhi.md: urban sites 1.5–3 °C warmer than the
    rural reference at night and a few tenths by day, parks slightly cooler by day.
    """
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(start, tz="Europe/Paris").tz_convert("UTC")
    last = (pd.Timestamp(start) + pd.Timedelta(days=days)).tz_localize("Europe/Paris").tz_convert("UTC")
    times = pd.date_range(first, last, freq=f"{step_min}min", inclusive="left")
    local_h = times.tz_convert("Europe/Paris").hour + times.minute / 60
    day_index = (times - first) / pd.Timedelta(days=1)
    # Shared weather: a diurnal sine peaking mid-afternoon plus a slow day-to-day swing.
    swing = np.interp(day_index, np.arange(days + 1), rng.normal(0, 1.5, days + 1).cumsum())
    base = 21.0 + swing + 6.5 * np.sin(2 * np.pi * (local_h - 9.0) / 24)
    night = 0.5 * (1 + np.cos(2 * np.pi * (local_h - 3.0) / 24))  # 1 at 03:00, 0 at 15:00

    classes = ["rural"] * 2 + ["urban"] * 12 + ["park"] * 4 + ["suburban"] * 2
    sensors = [f"{town[:2]}-{c[:3]}-{i:02d}" for i, c in enumerate(classes)]
    frames = []
    for sensor, cls in zip(sensors, classes, strict=True):
        night_uhi, day_uhi = {
            "rural": (0.0, 0.0),
            "urban": (rng.uniform(1.5, 3.0), rng.uniform(0.2, 0.8)),
            "park": (rng.uniform(0.3, 0.8), rng.uniform(-0.5, -0.1)),
            "suburban": (rng.uniform(0.8, 1.5), rng.uniform(0.0, 0.4)),
        }[cls]
        # AR(1) noise: sensors wander together over tens of minutes rather than jitter.
        eps = rng.normal(0, 0.12, len(times))
        noise = np.empty_like(eps)
        noise[0] = eps[0]
        for k in range(1, len(eps)):
            noise[k] = 0.7 * noise[k - 1] + eps[k]
        t = base + night * night_uhi + (1 - night) * day_uhi + rng.normal(0, 0.1) + noise
        rh = np.clip(60 - 2.5 * (t - 21) + rng.normal(0, 2, len(t)), 15, 100)
        frames.append(
            pd.DataFrame({"town": town, "sensor": sensor, "time": times, "temperature": t.round(2),
                          "humidity": rh.round(1)})
        )
    df = pd.concat(frames, ignore_index=True)
    pairs = list(zip(sensors, classes, strict=True))
    town = SyntheticTown(df, references=sensors[:2], urban=[s for s, c in pairs if c == "urban"],
                         parks=[s for s, c in pairs if c == "park"])
    if faults:
        _inject(town, rng, times)
    return town


def _inject(town: SyntheticTown, rng: np.random.Generator, times: pd.DatetimeIndex) -> None:
    df = town.readings
    stuck, spiky, drifting, offline = "vi-urb-05", "vi-urb-06", "vi-urb-07", "vi-par-15"
    day = pd.Timedelta(days=1)
    t0 = times[0]
    town.faults = {stuck: "stuck", spiky: "spikes", drifting: "drift", offline: "offline"}

    # Stuck from day 3 on: the firmware repeats its last value.
    m = (df["sensor"] == stuck) & (df["time"] >= t0 + 3 * day)
    df.loc[m, "temperature"] = df.loc[m, "temperature"].iloc[0]

    # One isolated spike of +6…10 °C in ~1.5 % of readings, never two in a row.
    idx = df.index[df["sensor"] == spiky][1:-1:67]
    df.loc[idx, "temperature"] += rng.uniform(6, 10, len(idx)) * rng.choice([-1, 1], len(idx))

    # Drift: +0 °C until day 3, then linear to +4 °C at the end (a failing radiation shield).
    m = df["sensor"] == drifting
    elapsed = (df.loc[m, "time"] - t0) / day
    df.loc[m, "temperature"] += np.clip((elapsed - 3) / (len(times) / 144 - 3), 0, None) * 4.0

    # Offline on day 5 from 02:00 to 14:00 local: half the day missing.
    m = (df["sensor"] == offline) & (df["time"] >= t0 + 4 * day + pd.Timedelta(hours=2)) & (
        df["time"] < t0 + 4 * day + pd.Timedelta(hours=14)
    )
    spikes = df.index[df.index.isin(idx)]
    kept = df.loc[~m].reset_index()
    town.readings = kept.drop(columns="index")
    town.readings.attrs["spikes"] = list(kept.index[kept["index"].isin(spikes)])
    # Impossible values a broken cable produces, on the already faulty spiking sensor.
    bad = town.readings.index[town.readings["sensor"] == spiky][[5, 300]]
    town.readings.loc[bad, "temperature"] = [-99.0, 85.0]
    town.readings.attrs["range"] = list(bad)


TownFactory = Callable[..., SyntheticTown]


@pytest.fixture(scope="session")
def make_town() -> TownFactory:
    """The generator itself, as a fixture: test modules cannot import conftest under importlib mode."""
    return build_town


@pytest.fixture(scope="module")
def module_db(request: pytest.FixtureRequest) -> str:
    """A database shared by the tests of one module (the simulated week is loaded once)."""
    return f"m_{abs(hash(request.node.nodeid)) % 10**8}"
