"""A simulated town for judging QC: real hot spots and cool spots of several sizes, and faults.

Used by the QC tests and by ``python -m bench.qc`` (docs/science/qc.md, validation table). What
makes it harder than a uniform synthetic town is what a real sited network looks like: a dozen
street sensors of one kind close together, some streets genuinely hotter or cooler than the
others night after night (the finding, not a fault), parks, suburbs, a rural reference, sunny
and overcast days and a heat wave. Faulty sensors are streets like the others with one fault
each; ``truth`` says which of their readings are faulty.

A module, not conftest: test modules cannot import conftest under importlib mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from heatwatch.analytics.qc import Site
from heatwatch.analytics.sun import solar_elevation

TOWN = "vitre"
CENTRE = (48.1236, -1.2089)
TZ = "Europe/Paris"

#: Healthy sites: id -> (class, LCZ, night UHI at full calm °C, daytime offset °C, metres east, north)
HEALTHY: dict[str, tuple[str, str, float, float, float, float]] = {
    **{f"street-{i:02d}": ("urban", "LCZ 2", 2.8 + 0.05 * i, 0.5, 80.0 * (i % 4), 80.0 * (i // 4))
       for i in range(12)},
    # Hot spots, night-time UHI above the streets' 2.8–3.3 by +0.6, +1.5 (the +4.6 °C of the issue), +2.7.
    "hot-small": ("urban", "LCZ 2", 3.9, 0.6, 120.0, 300.0),
    "hot-spot": ("urban", "LCZ 2", 4.6, 0.6, -100.0, 150.0),
    "hot-large": ("urban", "LCZ 2", 5.8, 0.7, 350.0, 60.0),
    # Cool spots: tree-lined streets, −0.8, −1.6, −2.4 below the other streets at night, cooler by day.
    "cool-small": ("urban", "LCZ 2", 2.2, 0.2, 200.0, -80.0),
    "cool-spot": ("urban", "LCZ 2", 1.4, -0.2, -60.0, -120.0),
    "cool-large": ("urban", "LCZ 2", 0.6, -0.6, 400.0, 400.0),
    **{f"park-{i}": ("park", "LCZ B", 0.5 + 0.1 * i, -0.4, 600.0 + 150.0 * i, -300.0) for i in range(4)},
    **{f"suburb-{i}": ("suburban", "LCZ 6", 1.4 + 0.1 * i, 0.2, -900.0, 200.0 * i) for i in range(4)},
    "rural-ref": ("rural_reference", "LCZ D", 0.0, 0.0, 3500.0, -2500.0),
}
#: Faulty street sensors: id -> fault kind. Each is an ordinary street (UHI 3.0) but for its fault.
FAULTS = {
    "f-stuck": "persistence", "f-spikes": "spike", "f-shift": "step", "f-shift-long": "step",
    "f-drift-fast": "drift", "f-drift-slow": "drift", "f-sun": "radiation", "f-offset": "spatial",
    "f-range": "range", "f-indoor": "correlation",
}
#: What a fault is expected to be flagged as (any of these bits counts as caught).
EXPECTED = {
    "persistence": ("PERSISTENCE", "MONTH_FLAGGED"), "spike": ("SPIKE",), "step": ("STEP",),
    "drift": ("DRIFT", "MONTH_FLAGGED"), "radiation": ("RADIATION",),
    "spatial": ("SPATIAL_LOW", "SPATIAL_HIGH", "MONTH_FLAGGED"), "range": ("RANGE",),
    "correlation": ("MONTH_CORRELATION", "SPATIAL_LOW", "SPATIAL_HIGH", "MONTH_FLAGGED"),
}


@dataclass
class QcTown:
    readings: pd.DataFrame
    sites: dict[str, Site]
    #: readings of faulty sensors while their fault acts (same index as ``readings``)
    truth: pd.Series
    #: |faulty − fault-free| temperature of each reading, °C (0 for healthy sensors)
    error: pd.Series
    kinds: dict[str, str] = field(default_factory=dict)
    references: frozenset[str] = frozenset({"rural-ref"})
    #: sunshine on an open site at each time (0…1: the sun's height and the day's clouds)
    sun: pd.Series | None = None

    @property
    def cool_sites(self) -> list[str]:
        return [s for s, site in self.sites.items() if site.site_class in ("park", "water", "rural_reference")]

    @property
    def healthy(self) -> list[str]:
        return sorted(set(self.readings["sensor"].unique()) - set(self.kinds))

    @property
    def hot_and_cool_spots(self) -> list[str]:
        return [s for s in self.healthy if s.startswith(("hot", "cool"))]


def _offset(east_m: float, north_m: float) -> tuple[float, float]:
    lat = CENTRE[0] + north_m / 111_195.0
    lon = CENTRE[1] + east_m / (111_195.0 * np.cos(np.radians(CENTRE[0])))
    return float(lat), float(lon)


#: The second town of the issue: four dense streets whose nocturnal UHI runs 1.5× that of four
#: parks and suburbs, and the rural reference.
DENSE_STREETS: dict[str, tuple[str, str, float, float, float, float]] = {
    **{f"dense-{i}": ("urban", "LCZ 2", 3.0 + 0.1 * i, 0.6, 60.0 * i, 0.0) for i in range(4)},
    "park-a": ("park", "LCZ B", 2.0, -0.3, 500.0, 300.0), "park-b": ("park", "LCZ B", 1.9, -0.4, 700.0, 300.0),
    "suburb-a": ("suburban", "LCZ 6", 2.0, 0.2, -600.0, 0.0), "suburb-b": ("suburban", "LCZ 6", 2.1, 0.2, -800.0, 0.0),
    "rural-ref": ("rural_reference", "LCZ D", 0.0, 0.0, 3500.0, -2500.0),
}


#: The town of the issue: a dozen street sensors of one kind close together at +2.8…3.3 °C at
#: night, one genuine hot spot at +4.6 °C, two parks and the rural reference.
HOT_SPOT_TOWN: dict[str, tuple[str, str, float, float, float, float]] = {
    **{f"street-{i:02d}": ("urban", "LCZ 2", 2.8 + 0.5 * i / 11, 0.4, 70.0 * (i % 4), 70.0 * (i // 4))
       for i in range(12)},
    "hot-spot": ("urban", "LCZ 2", 4.6, 0.5, 120.0, 260.0),
    "park-north": ("park", "LCZ B", 0.8, -0.4, 300.0, 600.0),
    "park-south": ("park", "LCZ B", 0.6, -0.5, 200.0, -400.0),
    "vitre-rural-01": ("rural_reference", "LCZ D", 0.0, 0.0, 3000.0, -2000.0),
}


def build(seed: int = 1, days: int = 21, start: str = "2025-07-01", step_min: int = 5,
          faults: bool = True, layout: dict[str, tuple[str, str, float, float, float, float]] | None = None,
          clear_nights: bool = False) -> QcTown:
    """Readings every ``step_min`` minutes over whole local days from ``start``.

    ``layout`` replaces the healthy sites (e.g. :data:`DENSE_STREETS`); faults are added unless off.
    ``clear_nights``: every night calm and clear, so each site reaches its full night-time UHI.
    """
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(start, tz=TZ).tz_convert("UTC")
    last = (pd.Timestamp(start) + pd.Timedelta(days=days)).tz_localize(TZ).tz_convert("UTC")
    times = pd.date_range(first, last, freq=f"{step_min}min", inclusive="left")
    hours = (times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(hours=1)
    elev = solar_elevation(hours.to_numpy(), *CENTRE)
    local = times.tz_convert(TZ)
    local_h = np.asarray(local.hour + local.minute / 60, dtype=np.float64)
    day = ((local.normalize().tz_localize(None) - pd.Timestamp(start)) / pd.Timedelta(days=1)).to_numpy().astype(int)

    # Weather per day: cloudiness (0 clear) and a mean that builds a heat wave from day 8 to 13.
    cloud = np.clip(rng.beta(0.8, 1.2, days + 1), 0, 1)
    wave = np.where((np.arange(days + 1) >= 8) & (np.arange(days + 1) <= 13), 1.0, 0.0)
    cloud = np.where(wave > 0, cloud * 0.2, cloud)
    mean = 19.0 + np.cumsum(rng.normal(0, 0.6, days + 1)) * 0.5 + 6.0 * wave
    amp = 11.0 * (1 - 0.6 * cloud)
    uhi_factor = np.clip(0.45 + 0.75 * (1 - cloud) + rng.normal(0, 0.08, days + 1), 0.35, 1.25)
    if clear_nights:
        uhi_factor = np.ones(days + 1)
    d = np.clip(day, 0, days)
    # Day-to-day changes spread over the day (from 15:00 to 15:00), not jumps at midnight.
    frac = day + local_h / 24.0
    knots = np.arange(days + 1) + 0.625
    base = (np.interp(frac, knots, mean) + np.interp(frac, knots, amp) / 2
            * np.sin(2 * np.pi * (local_h - 9.0) / 24))
    # Night weight from the sun: the heat island builds after sunset and fades after sunrise.
    night = np.clip((6.0 - elev) / 12.0, 0.0, 1.0)
    sun = np.clip(np.sin(np.radians(np.clip(elev, 0, None))), 0, 1) * (1 - cloud[d])

    sites: dict[str, Site] = {}
    frames = []
    truth_parts = []
    error_parts = []
    specs = dict(HEALTHY if layout is None else layout)
    if faults:
        for k, sid in enumerate(FAULTS):
            specs[sid] = ("urban", "LCZ 2", 3.0, 0.5, 40.0 + 60.0 * (k % 5), 350.0 + 60.0 * (k // 5))
    for sid, (cls, lcz, night_uhi, day_off, east, north) in specs.items():
        lat, lon = _offset(east, north)
        sites[sid] = Site(site_class=cls, lcz=lcz, latitude=lat, longitude=lon)
        eps = rng.normal(0, 0.06, len(times))
        noise = np.empty_like(eps)
        noise[0] = eps[0]
        for k in range(1, len(eps)):
            noise[k] = 0.85 * noise[k - 1] + eps[k]
        bias = 0.0 if cls == "rural_reference" else rng.normal(0, 0.1)
        t = (base + night_uhi * uhi_factor[d] * night + day_off * (1 - night) + bias + noise)
        bad = np.zeros(len(times), dtype=bool)
        clean_t = t
        kind = FAULTS.get(sid)
        if kind is not None:
            t, bad = _inject(sid, t, times, sun, rng, day)
        frames.append(pd.DataFrame({"town": TOWN, "sensor": sid, "time": times, "temperature": np.round(t, 2),
                                    "humidity": np.clip(np.round(60 - 2 * (t - 20), 1), 5, 100)}))
        truth_parts.append(bad)
        error_parts.append(np.abs(t - clean_t))
    readings = pd.concat(frames, ignore_index=True)
    truth = pd.Series(np.concatenate(truth_parts), index=readings.index)
    error = pd.Series(np.concatenate(error_parts), index=readings.index)
    if faults and layout is None:
        # A 4-hour outage on a healthy street, its last and first readings equal: a gap is no persistence.
        m = (readings["sensor"] == "street-03")
        idx = readings.index[m]
        cut = idx[(times >= first + pd.Timedelta(days=5, hours=20)) & (times < first + pd.Timedelta(days=6))]
        readings.loc[cut[-1] + 1, "temperature"] = readings.loc[cut[0] - 1, "temperature"]
        keep = ~readings.index.isin(cut)
        readings, truth, error = (x[keep].reset_index(drop=True) for x in (readings, truth, error))
    return QcTown(readings, sites, truth, error, kinds={s: FAULTS[s] for s in FAULTS if faults},
                  sun=pd.Series(sun, index=times))


def _inject(sid: str, t: np.ndarray, times: pd.DatetimeIndex, sun: np.ndarray, rng: np.random.Generator,
            day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = t.copy()
    bad = np.zeros(len(t), dtype=bool)
    t0 = times[0]
    since = (times - t0) / pd.Timedelta(days=1)
    since = np.asarray(since, dtype=np.float64)
    if sid == "f-stuck":  # frozen firmware for 20 hours on day 4
        m = (since >= 4.3) & (since < 4.3 + 20 / 24)
        t[m] = t[np.flatnonzero(m)[0] - 1]
        bad = m
    elif sid == "f-spikes":  # an isolated ±6…10 °C reading every ~2 hours
        idx = np.arange(7, len(t) - 1, 23)
        t[idx] += rng.uniform(6, 10, len(idx)) * rng.choice([-1, 1], len(idx))
        bad[idx] = True
    elif sid == "f-shift":  # a −15 °C excursion of 50 min, at night (it would reach Tn), every 3 days
        for start in np.arange(1.1, since.max(), 3.0):
            m = (since >= start) & (since < start + 50 / 1440)
            t[m] -= 15.0
            bad |= m
    elif sid == "f-shift-long":  # a connector that slips: +8 °C for 6 hours, twice
        for start in (6.4, 15.7):
            m = (since >= start) & (since < start + 0.25)
            t[m] += 8.0
            bad |= m
    elif sid == "f-drift-fast":  # a failing shield: +0.5 °C a day from day 6
        t += np.clip(since - 6, 0, None) * 0.5
        bad = since >= 6 + 1.0 / 0.5  # faulty once it is 1 °C off
    elif sid == "f-drift-slow":  # +0.15 °C a day from day 2
        t += np.clip(since - 2, 0, None) * 0.15
        bad = since >= 2 + 1.0 / 0.15
    elif sid == "f-sun":  # no radiation shield: up to +3.5 °C in clear sunshine, nothing at night
        t += 3.5 * sun
        bad = 3.5 * sun > 1.0
    elif sid == "f-offset":  # calibration error: −8 °C from the start (installed so: no step to see)
        t = t - 8.0
        bad[:] = True
    elif sid == "f-range":  # a cable fault: impossible values for the season, now and then
        idx = np.arange(100, len(t), 600)
        t[idx] = rng.choice([-9.5, 48.5], len(idx))
        bad[idx] = True
    elif sid == "f-indoor":  # moved indoors on day 2: 24 °C with a 1 °C cycle of its own
        m = since >= 2
        local_h = times.tz_convert(TZ).hour.to_numpy()
        t = np.where(m, 24.0 + 0.5 * np.sin(2 * np.pi * (local_h - 14) / 24) + rng.normal(0, 0.05, len(t)), t)
        bad = m
    return t, bad


#: Residents' stations added to a town by :func:`with_citizens`: id -> (kind, the street it stands next to).
CITIZENS = {
    # An unshielded kit in a sunny courtyard: a street's night, and in sunshine up to +4 °C more (clear sky).
    "c-courtyard": ("sunny_courtyard", "street-05"),
    # A kit moved indoors: a damped, lagged echo of the outdoor cycle around 24 °C.
    "c-indoor": ("indoor", "street-09"),
    # A well-sited kit in a street: the street's air with a small bias and its own noise.
    "c-street": ("healthy", "street-02"),
}


def with_citizens(town: QcTown, seed: int = 0, sun_c: float = 4.0) -> QcTown:
    """``town`` plus the residents' stations of :data:`CITIZENS` (crowd sites, 40 m from their street)."""
    rng = np.random.default_rng(seed)
    r = town.readings
    frames = [r]
    sites = dict(town.sites)
    kinds = dict(town.kinds)
    for sid, (kind, next_to) in CITIZENS.items():
        base = r[r["sensor"] == next_to]
        t = base["temperature"].to_numpy(dtype=np.float64)
        times = pd.DatetimeIndex(base["time"])
        if kind == "sunny_courtyard":
            assert town.sun is not None
            t = t + sun_c * town.sun.reindex(times).to_numpy(dtype=np.float64)
        elif kind == "indoor":
            step = max(round(pd.Timedelta(hours=3) / (times[1] - times[0])), 1)
            lagged = np.concatenate([np.full(step, t[0]), t[:-step]])
            t = 24.0 + 0.25 * (lagged - np.mean(t)) + rng.normal(0, 0.03, len(t))
        else:
            t = t + rng.normal(0.2, 0.1) + rng.normal(0, 0.08, len(t))
        frames.append(base.assign(sensor=sid, temperature=np.round(t, 2)))
        near = sites[next_to]
        assert near.latitude is not None and near.longitude is not None
        sites[sid] = Site(site_class=near.site_class, lcz=None, latitude=near.latitude + 40 / 111_195.0,
                          longitude=near.longitude, crowd=True)
        if kind != "healthy":
            kinds[sid] = kind
    return QcTown(pd.concat(frames, ignore_index=True), sites, pd.Series(False, index=range(0)),
                  pd.Series(0.0, index=range(0)), kinds=kinds, references=town.references, sun=town.sun)
