"""Choosing a map's method: regression-kriging where the town's layers allow it and it cross-validates at
least as well as IDW, else IDW, which then says why (docs/science/drivers.md, "Maps")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heatwatch.core.model import Sensor, Town

from .drivers import NotEnoughData
from .idw import Grid, SensorValue

IDW = "inverse distance weighting"
RK = "regression-kriging"
PREDICTOR_COLUMNS = ("canopy_100", "vegetation_100", "impervious_100")


@dataclass
class MapMethod:
    grid: Grid
    method: str
    reason: str
    se: np.ndarray | None = None  # per cell, RK only
    details: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        return {"method": self.method, "method_reason": self.reason, **self.details}

    def note(self) -> str | None:
        if self.method != RK:
            return None
        cv = self.details.get("cross_validation", {})
        return (f"régression-krigeage (couches du territoire + krigeage des résidus), cellule {self.grid.cell_m:g} m, "
                f"erreur en validation croisée {cv.get('rmse_regression_kriging')} °C (IDW "
                f"{cv.get('rmse_idw')} °C) · {len(self.grid.sensors)} capteurs")


def held_cells(grid: Grid) -> dict[tuple[int, int], float]:
    """Cells holding sensors → the mean of their values (the rule of :func:`.idw.idw_grid`)."""
    w, s, _, _ = grid.bbox
    acc: dict[tuple[int, int], list[float]] = {}
    for p in grid.sensors:
        c = min(max(int((p.longitude - w) // grid.dlon), 0), len(grid.lons) - 1)
        r = min(max(int((p.latitude - s) // grid.dlat), 0), len(grid.lats) - 1)
        acc.setdefault((r, c), []).append(p.value)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def choose_method(requested: str, idw: Grid, points: list[SensorValue], town: Town, sensors: list[Sensor],
                  layers_dir: Path, power: float, max_distance_m: float) -> MapMethod:
    """``requested``: auto, idw or regression-kriging. Blocking (layers, fits): run in a thread."""
    if requested == "idw":
        return MapMethod(idw, IDW, "asked for (method=idw)")
    from heatwatch.core.layers import LayerStore
    from heatwatch.core.layers.context import cover_for, site_context
    from heatwatch.core.layers.extent import to_l93

    from .kriging import regression_kriging

    store = LayerStore(layers_dir, town.id)
    if not store.exists() or not store.list():
        return MapMethod(idw, IDW, "no land-cover layer for this town (heatwatch layers import): regression-kriging "
                                   "needs tree canopy or vegetation, or imperviousness")
    active = [s for s in sensors if not s.retired]
    contexts = {r["sensor"]: r for r in site_context(store, town, active)["sensors"]}
    values = {p.sensor: p.value for p in points}
    sxy = dict(zip([p.sensor for p in points], zip(*to_l93([p.longitude for p in points],
                                                           [p.latitude for p in points]), strict=True), strict=True))
    rows, cols = np.nonzero(np.isfinite(idw.values))
    lon = idw.lons[cols]
    lat = idw.lats[rows]
    cx, cy = to_l93(lon.tolist(), lat.tolist())
    cx_a, cy_a = np.array(cx), np.array(cy)
    cover = cover_for(store, town, active)
    cell_ctx = {c: (cover.sample(c.rsplit("_", 1)[0], 100, cx_a, cy_a) * 100 if cover.has(c.rsplit("_", 1)[0])
                    else np.full(len(cx_a), np.nan)) for c in PREDICTOR_COLUMNS}
    try:
        rk = regression_kriging(values, contexts, sxy, cx_a, cy_a, cell_ctx, power=power,
                                max_distance_m=max_distance_m)
    except NotEnoughData as exc:
        return MapMethod(idw, IDW, f"regression-kriging not possible: {exc}")
    cv = rk.cv
    details = {"cross_validation": cv,
               "regression": {"effects": rk.model.effects(), "n_sensors": rk.model.n,
                              "dropped_predictors": rk.model.dropped},
               "variogram": {"model": "exponential", "partial_sill": round(rk.variogram[0], 4),
                             "range_m": rk.variogram[1], "nugget": round(rk.variogram[2], 4),
                             "chosen_by": "leave-one-out error on the residuals among fixed candidates"}}
    if cv.get("status") != "ok":
        return MapMethod(idw, IDW, f"regression-kriging could not be cross-validated ({cv.get('status')})", None,
                         {"cross_validation": cv})
    if requested == "auto" and cv["rmse_regression_kriging"] > cv["rmse_idw"]:
        return MapMethod(idw, IDW, f"regression-kriging's cross-validated error ({cv['rmse_regression_kriging']} °C) "
                                   f"is not below IDW's ({cv['rmse_idw']} °C) on these sensors", None,
                         {"cross_validation": cv})
    values_grid = np.full(idw.values.shape, np.nan)
    se_grid = np.full(idw.values.shape, np.nan)
    values_grid[rows, cols] = rk.values
    se_grid[rows, cols] = rk.se
    missing = int(np.sum(~np.isfinite(rk.values)))
    for (r, c), v in held_cells(idw).items():
        values_grid[r, c] = v  # a cell holding sensors shows what they measured
    grid = dataclasses.replace(idw, values=values_grid)
    details["cells_without_predictors"] = missing
    reason = ("asked for (method=regression-kriging)" if requested != "auto" else
              "the town's layers give the predictors and regression-kriging cross-validates at least as well as IDW")
    return MapMethod(grid, RK, reason, se_grid, details)


def features_with_se(features: list[dict[str, Any]], se: np.ndarray | None) -> list[dict[str, Any]]:
    if se is None:
        return features
    for f in features:
        p = f["properties"]
        v = se[p["row"], p["col"]]
        p["se"] = round(float(v), 3) if np.isfinite(v) else None
    return features
