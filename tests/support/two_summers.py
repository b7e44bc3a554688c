"""Two summers of daily aggregates around winter works, from a seeded panel of heatwatch.simulate.panels: the
summer after is warmer (+2 °C) and calmer than the one before, and the treated street is a hot spot that feels
the weather more than its peers. Written as the analytics writer does (daily points at local midnight; the
``uhi_night_max`` of day D is the night ending on the morning of D), with the rural reference's daily Tn and Tx
placed so that the effect evaluation reads, for the night of row D, the panel's weather of that night
(reference Tn of D, Tx of D − 1).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from heatwatch.simulate.panels import AFTER, BEFORE, PanelSpec, summer_panel

TZ = ZoneInfo("Europe/Paris")
SUMMER_DAYS = 107  # 1 June – 15 September
WORKS = (date(2024, 11, 18), date(2025, 3, 7))  # a winter planting


def summer(year: int) -> list[date]:
    return [date(year, 6, 1) + timedelta(days=i) for i in range(SUMMER_DAYS)]


def spec(controls: int, effect: float) -> PanelSpec:
    return PanelSpec(days_before=SUMMER_DAYS, days_after=SUMMER_DAYS, controls=controls, hot_spot=True,
                     warmer_after=2.0, calmer_after=0.5, missing=0.03, effect=effect)


def lines(town: str, treated: str, controls: list[str], reference: str, effect: float, seed: int,
          station: str | None = None) -> list[str]:
    """Daily rows of the treated and control sensors; the weather as the rural reference sensor's daily rows,
    or (``station``) as the town's published reference (town_daily tn_ref/tx_ref from that station)."""
    p = summer_panel(np.random.default_rng(seed), spec(len(controls), effect))
    days = [*summer(WORKS[0].year), *summer(WORKS[1].year)]
    assert len(days) == len(p.period) and (p.period[:SUMMER_DAYS] == BEFORE).all()
    assert (p.period[SUMMER_DAYS:] == AFTER).all()
    sensors = [treated, *controls]
    out = []
    for t, day in enumerate(days):
        ts = int(datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp() * 1000)
        for j, s in enumerate(sensors):
            v = p.values[t, j]
            if np.isnan(v):
                continue
            out.append(f"daily,town={town},sensor={s} uhi_night_max={v:.5f},uhi_mean={v / 2:.5f},hours_ge_30=0i,"
                       f"tn=17.0,tx=27.0,coverage=1.0,qc=0i {ts}")
        # Tx of D is the afternoon before the night of row D + 1.
        nxt = t + 1 if t + 1 < len(days) and days[t + 1] - day == timedelta(days=1) else t
        tn, tx = p.weather[t, 0], p.weather[nxt, 1]
        if station is None:
            out.append(f"daily,town={town},sensor={reference} tn={tn:.4f},tx={tx:.4f},"
                       f"uhi_night_max=0.0,uhi_mean=0.0,hours_ge_30=0i,coverage=1.0,qc=0i {ts}")
        else:
            out.append(f'town_daily,town={town} tn_ref={tn:.4f},tx_ref={tx:.4f},ibm_source="station:{station}",'
                       f"uhi_mean=1.0,sensors_ok=5i {ts}")
    return out
