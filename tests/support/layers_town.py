"""Vitré with its layers (the committed synthetic real-format files of tests/data/layers/) and a summer whose
nocturnal heat island is made from them with a known law:

    uhi_night_max = 1.2 + CANOPY_PER_10 × canopy_100 / 10 + IMPERVIOUS_PER_10 × impervious_100 / 10
                    + a site effect N(0, SITE_SD) + a daily N(0, 0.3)

so the drivers model must find the canopy effect within its interval. One seeded draw: a 95 % interval misses
the truth on 1 draw in 20 by design (the seed used by default is such a hit; the coverage over many draws is
measured by ``python -m bench.drivers``). Hot hours: on the HOT_DAYS, hours at
or above 30 °C grow with the site's nocturnal UHI (afternoon hourly rows are written for those days).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from heatwatch.core.layers import LayerKind, LayerStore, town_extent
from heatwatch.core.layers.context import site_context
from heatwatch.core.layers.io import prepare_file
from heatwatch.core.model import Sensor, Town

DATA = Path(__file__).resolve().parent.parent / "data" / "layers"
TZ = ZoneInfo("Europe/Paris")
SEASON = 2025
FIRST = date(2025, 6, 1)
DAYS = 45
CANOPY_PER_10 = -0.4  # °C per +10 points of tree canopy within 100 m
IMPERVIOUS_PER_10 = 0.15
SITE_SD = 0.12
HOT_DAYS = [date(2025, 6, 20) + timedelta(days=i) for i in range(6)]
FILES = [("vitre_layers.gpkg", "vegetation", {"source_layer": "espaces_verts"}, "espaces_verts"),
         ("vitre_layers.gpkg", "trees", {"source_layer": "arbres"}, "arbres"),
         ("bdtopo_batiment.shp", "buildings", {}, "batiments"),
         ("impermeabilite_hrl.tif", "impervious", {}, "impermeabilite"),
         ("cours_eau.geojson", "water", {}, "eau"),
         ("perimetre_spr.geojson", "perimeter", {}, "spr"),
         ("gbif_occurrences.csv", "biodiversity", {}, "gbif"),
         ("filosofi_200m.gpkg", "population", {}, "population")]


def import_layers(layers_dir: Path, town: Town, sensors: list[Sensor]) -> LayerStore:
    store = LayerStore(layers_dir, town.id)
    ext = town_extent(town, sensors)
    for file, kind, kw, name in FILES:
        store.add(prepare_file(DATA / file, LayerKind(kind), ext, **kw), name, source=f"test: {file}",
                  licence="synthetic test data")
    return store


@dataclass
class LayeredSeason:
    lines: list[str] = field(default_factory=list)
    context: dict[str, dict] = field(default_factory=dict)
    truth: dict[str, float] = field(default_factory=dict)  # site -> expected season mean of uhi_night_max


def local_midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp() * 1000)


def layered_season(store: LayerStore, town: Town, sensors: list[Sensor], seed: int = 18) -> LayeredSeason:
    rng = np.random.default_rng(seed)
    out = LayeredSeason()
    ctx = {r["sensor"]: r for r in site_context(store, town, sensors)["sensors"]}
    out.context = ctx
    refs = {s.id for s in sensors if s.is_reference}
    days = [FIRST + timedelta(days=i) for i in range(DAYS)]
    for s in sensors:
        if s.retired or s.town != town.id:
            continue
        c = ctx[s.id]
        level = 0.0 if s.id in refs else (1.2 + CANOPY_PER_10 * c["canopy_100"] / 10
                                          + IMPERVIOUS_PER_10 * c["impervious_100"] / 10 + rng.normal(0, SITE_SD))
        out.truth[s.id] = level
        for day in days:
            uhi_n = 0.0 if s.id in refs else level + rng.normal(0, 0.3)
            hot = day in HOT_DAYS
            tn = 15.0 + (6.0 if hot else 0.0) + max(uhi_n, 0) * 0.8
            tx = 26.0 + (8.0 if hot else 0.0)
            out.lines.append(
                f"daily,town={town.id},sensor={s.id} tn={tn:.4f},tx={tx:.4f},t_mean={(tn + tx) / 2:.4f},"
                f"uhi_mean={uhi_n / 2:.4f},uhi_night_max={uhi_n:.4f},tropical_night={'true' if tn >= 20 else 'false'},"
                f"coverage=1.0,qc=0i {local_midnight_ms(day)}")
            if hot:
                # Afternoon hours of a hot day: the hotter the site's nights, the more hours above 30 °C.
                n_hot = int(max(0, min(10, round(3 + 2 * level))))
                for h in range(10):
                    ts = int(datetime(day.year, day.month, day.day, 11 + h, tzinfo=TZ).timestamp() * 1000)
                    t = 31.0 if h < n_hot else 28.0
                    out.lines.append(f"hourly,town={town.id},sensor={s.id} t_mean={t},uhi={level:.3f},n=6i,qc=0i {ts}")
    return out
