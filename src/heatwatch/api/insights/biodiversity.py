"""Heat × biodiversity on a grid of street blocks, and where greening pays most (docs/science/drivers.md).

Cells of ``cell_m`` (100–200 m) in Lambert-93, aligned on multiples of the cell size, kept within
``REACH_M`` of a non-reference sensor: beyond it the drivers model would extrapolate its heat. Per cell:

* ``uhi_model`` — the season's nocturnal UHI the drivers model predicts from the cell's surroundings
  within 100 m (at the cell centre), with its 95 % interval;
* ``canopy``, ``impervious`` — shares of the cell itself (%); ``residents`` — from a population layer
  (squares split by area), null without one;
* ``occurrences``, ``species`` (observed richness), ``obs_days`` (distinct observation dates: the effort);
  ``richness_index`` — observed richness over the richness expected for that effort, from the
  species–effort curve fitted over the town's cells (log S = a + b log days): 1 = as rich as the town's
  cells with the same effort. Cells observed on fewer than ``MIN_DAYS`` days get no index.
* ``class`` — heat tercile (cool / mid / hot over the cells) × richness (rich: index ≥ the median over
  indexed cells, else poor): "cool refuge", "hot and poor", "hot but rich", "cool but poor",
  "intermediate", or "too few observations".

Greening priorities: cells ranked by the mean of their percentile ranks on modelled UHI, sealed share and
residents (when a population layer exists) — hot, sealed, inhabited first — each with the cooling the model
expects from +``SCENARIO_CANOPY`` points of canopy around it (capped by the room left) and its interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from .drivers import DriversModel

REACH_M = 800.0
MIN_DAYS = 3
SCENARIO_CANOPY = 20.0
CLASSES = ("cool refuge", "hot and poor", "hot but rich", "cool but poor", "intermediate", "too few observations")


@dataclass
class CellGrid:
    cells: list[dict[str, Any]]
    summary: dict[str, Any]


def _pct_rank(v: np.ndarray) -> np.ndarray:
    return (stats.rankdata(v, method="average") - 1) / max(len(v) - 1, 1)


def build_cells(model: DriversModel, store: Any, cover: Any, sensors: list[Any], cell_m: float) -> CellGrid:
    """The grid (module docstring). ``store``: the town's LayerStore; ``cover``: its land-cover surfaces."""
    import geopandas as gpd
    import shapely

    from heatwatch.core.layers import LayerKind
    from heatwatch.core.layers.extent import to_l93, to_wgs84
    from heatwatch.core.privacy import public_sensors

    # Cells are kept within REACH_M of a sensor: the edge of that disc must not outline a resident's home, so
    # private sites count at their privacy-grid position here (core/privacy.py).
    placed = [s for s in public_sensors(sensors) if s.latitude is not None and s.longitude is not None
              and not s.is_reference]
    sx, sy = to_l93([s.longitude for s in placed], [s.latitude for s in placed])
    sx_a, sy_a = np.array(sx), np.array(sy)
    ext = cover.extent
    x0 = math.floor(max(ext.xmin, sx_a.min() - REACH_M) / cell_m) * cell_m
    x1 = math.ceil(min(ext.xmax, sx_a.max() + REACH_M) / cell_m) * cell_m
    y0 = math.floor(max(ext.ymin, sy_a.min() - REACH_M) / cell_m) * cell_m
    y1 = math.ceil(min(ext.ymax, sy_a.max() + REACH_M) / cell_m) * cell_m
    cx = np.arange(x0, x1, cell_m) + cell_m / 2
    cy = np.arange(y0, y1, cell_m) + cell_m / 2
    gx, gy = (a.ravel() for a in np.meshgrid(cx, cy))
    near = np.min(np.hypot(gx[:, None] - sx_a[None, :], gy[:, None] - sy_a[None, :]), axis=1) <= REACH_M
    gx, gy = gx[near], gy[near]
    n = len(gx)
    preds = np.column_stack([cover.sample(c.rsplit("_", 1)[0], 100, gx, gy) * 100 for c in model.columns])
    ok = np.all(np.isfinite(preds), axis=1)
    uhi = np.full(n, np.nan)
    uhi_sd = np.full(n, np.nan)
    if ok.any():
        uhi[ok], uhi_sd[ok] = model.posterior.predict(preds[ok])
    # Shares of the cell itself: the mean of the 10 m surfaces over the cell's own square.
    half = cell_m / 2
    own = {}
    for name in ("canopy", "impervious"):
        if cover.has(name):
            surf = cover.surfaces[name]
            vals = []
            for x, y in zip(gx, gy, strict=True):
                r0, c0, _ = cover.index(np.array([x - half + 1]), np.array([y + half - 1]))
                r1, c1, _ = cover.index(np.array([x + half - 1]), np.array([y - half + 1]))
                block = surf[r0[0]:r1[0] + 1, c0[0]:c1[0] + 1]
                vals.append(float(np.nanmean(block)) * 100 if np.isfinite(block).any() else np.nan)
            own[name] = np.array(vals)
        else:
            own[name] = np.full(n, np.nan)
    boxes = shapely.box(gx - half, gy - half, gx + half, gy + half)
    cells_gdf = gpd.GeoDataFrame({"i": np.arange(n)}, geometry=boxes, crs="EPSG:2154")
    residents = np.full(n, np.nan)
    pop = store.read_kind(LayerKind.population)
    if pop is not None and len(pop):
        pop = pop.assign(area=pop.geometry.area)
        inter = gpd.overlay(cells_gdf, pop[["population", "area", "geometry"]], how="intersection",
                            keep_geom_type=True)
        inter["share"] = inter.geometry.area / inter["area"] * inter["population"]
        sums = inter.groupby("i")["share"].sum()
        residents = np.zeros(n)
        residents[sums.index.to_numpy()] = sums.to_numpy()
    occ_n = np.zeros(n, int)
    species = np.zeros(n, int)
    days = np.zeros(n, int)
    occ = store.read_kind(LayerKind.biodiversity)
    has_bio = occ is not None and len(occ) > 0
    if has_bio:
        j = gpd.sjoin(occ[["species", "date", "geometry"]], cells_gdf, predicate="within", how="inner")
        g = j.groupby("i")
        idx = g.size().index.to_numpy()
        occ_n[idx] = g.size().to_numpy()
        species[idx] = g["species"].nunique().to_numpy()
        days[idx] = g["date"].nunique().to_numpy()
    # Effort correction: the town's species–effort curve over cells observed on enough days.
    index = np.full(n, np.nan)
    curve: dict[str, Any] = {"status": "no biodiversity layer"} if not has_bio else {}
    enough = days >= MIN_DAYS
    if has_bio and enough.sum() >= 5:
        b, a = np.polyfit(np.log(days[enough]), np.log(np.maximum(species[enough], 1)), 1)
        expected = np.exp(a + b * np.log(np.maximum(days, 1)))
        index[enough] = species[enough] / expected[enough]
        curve = {"status": "ok", "form": "log(species) = a + b·log(observation days)", "a": round(float(a), 3),
                 "b": round(float(b), 3), "cells": int(enough.sum())}
    elif has_bio:
        curve = {"status": f"fewer than 5 cells observed on {MIN_DAYS}+ days: no effort correction, no class"}
    finite = np.isfinite(uhi)
    t1, t2 = (np.nanpercentile(uhi[finite], [100 / 3, 200 / 3]) if finite.any() else (np.nan, np.nan))
    med = float(np.nanmedian(index)) if np.isfinite(index).any() else np.nan
    lon, lat = to_wgs84(gx.tolist(), gy.tolist())
    rows = []
    for k in range(n):
        heat = None if not finite[k] else "cool" if uhi[k] <= t1 else "hot" if uhi[k] > t2 else "mid"
        if not np.isfinite(index[k]) or heat is None:
            cls = "too few observations"
        elif heat == "mid":
            cls = "intermediate"
        else:
            rich = index[k] >= med
            cls = {("cool", True): "cool refuge", ("hot", False): "hot and poor", ("hot", True): "hot but rich",
                   ("cool", False): "cool but poor"}[(heat, rich)]
        rows.append({
            "cell": f"L93_{int(gx[k] - half)}_{int(gy[k] - half)}_{int(cell_m)}",
            "x_l93": float(gx[k]), "y_l93": float(gy[k]), "longitude": round(lon[k], 6), "latitude": round(lat[k], 6),
            "uhi_model": _round(uhi[k], 2),
            "uhi_model_lo": _round(uhi[k] - 1.96 * uhi_sd[k], 2), "uhi_model_hi": _round(uhi[k] + 1.96 * uhi_sd[k], 2),
            "heat": heat, "canopy": _round(own["canopy"][k], 1), "impervious": _round(own["impervious"][k], 1),
            "canopy_100": _round(preds[k, model.columns.index("canopy_100")], 1) if "canopy_100" in model.columns
            else None,
            "residents": _round(residents[k], 0), "occurrences": int(occ_n[k]), "species": int(species[k]),
            "obs_days": int(days[k]), "richness_index": _round(index[k], 2), "class": cls,
        })
    summary = {"cells": n, "cell_m": cell_m, "reach_m": REACH_M, "min_obs_days": MIN_DAYS, "effort_curve": curve,
               "heat_terciles_c": [_round(t1, 2), _round(t2, 2)], "richness_median_index": _round(med, 2),
               "classes": {c: sum(1 for r in rows if r["class"] == c) for c in CLASSES}}
    both = np.isfinite(index) & finite
    if both.sum() >= 5:
        rho_u, p_u = stats.spearmanr(index[both], uhi[both])
        summary["spearman_richness_vs_uhi"] = {"rho": _round(rho_u, 2), "p": _round(p_u, 3), "cells": int(both.sum())}
        can = own["canopy"]
        both_c = both & np.isfinite(can)
        if both_c.sum() >= 5:
            rho_c, p_c = stats.spearmanr(index[both_c], can[both_c])
            summary["spearman_richness_vs_canopy"] = {"rho": _round(rho_c, 2), "p": _round(p_c, 3),
                                                      "cells": int(both_c.sum())}
    return CellGrid(rows, summary)


def _round(v: float, nd: int) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


def priorities(grid: CellGrid, model: DriversModel, canopy_points: float = SCENARIO_CANOPY) -> list[dict[str, Any]]:
    """Cells ranked for greening (module docstring), each with the model's expected cooling."""
    rows = [r for r in grid.cells if r["uhi_model"] is not None and r["impervious"] is not None]
    if not rows:
        return []
    uhi = np.array([r["uhi_model"] for r in rows])
    sealed = np.array([r["impervious"] for r in rows])
    parts = [_pct_rank(uhi), _pct_rank(sealed)]
    with_people = any(r["residents"] is not None for r in rows)
    if with_people:
        parts.append(_pct_rank(np.array([r["residents"] or 0.0 for r in rows])))
    score = np.mean(parts, axis=0)
    col = "canopy_100" if "canopy_100" in model.columns else model.columns[0]
    out = []
    for r, sc in zip(rows, score, strict=True):
        current = r.get("canopy_100") if col == "canopy_100" else None
        room = canopy_points if current is None else max(0.0, min(canopy_points, 100 - current))
        mean, lo, hi, _ = model.change({col: room})
        out.append({**{k: r[k] for k in ("cell", "longitude", "latitude", "x_l93", "y_l93", "uhi_model", "impervious",
                                          "canopy", "residents", "class")},
                    "score": round(float(sc), 3), "canopy_added": round(room, 1),
                    "cooling_c": round(mean, 2), "cooling_lo": round(lo, 2), "cooling_hi": round(hi, 2)})
    out.sort(key=lambda d: (-d["score"], d["cell"]))
    for i, d in enumerate(out, 1):
        d["rank"] = i
    return out
