"""Inverse-distance-weighted (IDW) grid of UHI intensity over a town, from its sensors.

Method (Shepard 1968). Positions are projected to metres on a local equirectangular plane
(x = R·Δλ·cos φ0, y = R·Δφ, centred on the sensors: error well under 0.1 % over a town of a few
kilometres). The value of a cell centre at distance d_i from sensor i is

    v = Σ w_i v_i / Σ w_i,   w_i = 1 / d_i^p   (p = ``power``, 2 by default),

using only the sensors within ``max_distance_m``; a cell with no sensor that close is left empty
(NaN → null in GeoJSON, transparent on the PNG). A cell that holds sensors shows what was measured
there — the mean of those sensors — rather than a blend with neighbours a cell or more away: with
cells of 100 m, a hot spot would otherwise be diluted by the streets around it and its hottest
cell would drift to its open side (docs/science/rankings-maps.md, "Maps").

Limits, to read before drawing conclusions from a map:

* IDW is an exact, purely geometric interpolator: it knows nothing of buildings, streets, parks,
  water, relief or wind. Between sensors it only blends their values; it never produces a value
  outside the range of the sensors, so a hot spot with no sensor in it stays invisible.
* It draws "bull's-eyes" around each sensor, and a sensor on an atypical spot (a sunny wall, a
  courtyard) colours its whole neighbourhood.
* With a few dozen sensors per town, the grid shows where the sensors are hot or cool, not a
  model of the heat island. Kriging or regression on land cover (LCZ, imperviousness) would do
  better but needs more sensors (variogram fit) and land-cover data; the empty cells beyond
  ``max_distance_m`` are there so nobody reads values where nothing was measured.
* The cell size is a display choice: a 100 m cell does not mean 100 m resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
MAX_CELLS = 40_000  # a bound on work and on GeoJSON size (one polygon per cell)


@dataclass(frozen=True, slots=True)
class SensorValue:
    sensor: str
    latitude: float
    longitude: float
    value: float


@dataclass(frozen=True, slots=True)
class Grid:
    """Cell centres along each axis (degrees) and values[row=lat, col=lon], NaN = empty cell."""

    lons: np.ndarray
    lats: np.ndarray
    values: np.ndarray
    cell_m: float
    power: float
    max_distance_m: float
    sensors: tuple[SensorValue, ...]

    @property
    def dlon(self) -> float:
        return float(self.lons[1] - self.lons[0]) if len(self.lons) > 1 else self.cell_m / m_per_deg_lon(self.lat0)

    @property
    def dlat(self) -> float:
        return float(self.lats[1] - self.lats[0]) if len(self.lats) > 1 else self.cell_m / M_PER_DEG_LAT

    @property
    def lat0(self) -> float:
        return float(np.mean(self.lats))

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the cell edges."""
        return (float(self.lons[0] - self.dlon / 2), float(self.lats[0] - self.dlat / 2),
                float(self.lons[-1] + self.dlon / 2), float(self.lats[-1] + self.dlat / 2))

    def filled(self) -> int:
        return int(np.isfinite(self.values).sum())

    def stats(self) -> dict[str, Any]:
        v = self.values[np.isfinite(self.values)]
        return {"cells": int(self.values.size), "filled_cells": int(v.size),
                "min": float(v.min()) if v.size else None, "max": float(v.max()) if v.size else None}


M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180


def m_per_deg_lon(lat: float) -> float:
    return M_PER_DEG_LAT * math.cos(math.radians(lat))


def idw_grid(sensors: list[SensorValue], *, cell_m: float = 100.0, power: float = 2.0,
             max_distance_m: float = 600.0, margin_m: float | None = None) -> Grid:
    """The interpolated grid over the sensors' bounding box widened by ``margin_m`` (default: the
    max distance, so every cell that can hold a value is inside). Cells are square in metres.

    Raises ValueError without sensors, on non-positive parameters, or when the grid would exceed
    :data:`MAX_CELLS` (ask for a larger ``cell_m``).
    """
    pts = [s for s in sensors if math.isfinite(s.value) and math.isfinite(s.latitude) and math.isfinite(s.longitude)]
    if not pts:
        raise ValueError("no sensor with a position and a value")
    if cell_m <= 0 or max_distance_m <= 0 or power <= 0:
        raise ValueError("cell size, max distance and power must be positive")
    margin = max_distance_m if margin_m is None else margin_m
    lat = np.array([s.latitude for s in pts])
    lon = np.array([s.longitude for s in pts])
    val = np.array([s.value for s in pts])
    lat0 = float((lat.min() + lat.max()) / 2)
    lon0 = float((lon.min() + lon.max()) / 2)
    kx, ky = m_per_deg_lon(lat0), M_PER_DEG_LAT
    sx, sy = (lon - lon0) * kx, (lat - lat0) * ky
    x0, x1 = sx.min() - margin, sx.max() + margin
    y0, y1 = sy.min() - margin, sy.max() + margin
    nx = max(1, math.ceil((x1 - x0) / cell_m))
    ny = max(1, math.ceil((y1 - y0) / cell_m))
    if nx * ny > MAX_CELLS:
        raise ValueError(f"{nx}×{ny} = {nx * ny} cells at {cell_m:g} m is above the {MAX_CELLS} cell limit; "
                         f"use a larger cell size (at least {math.ceil(cell_m * math.sqrt(nx * ny / MAX_CELLS))} m)")
    # Centre the grid on the box so the margin is even on both sides.
    cx = x0 + (x1 - x0 - nx * cell_m) / 2 + cell_m * (np.arange(nx) + 0.5)
    cy = y0 + (y1 - y0 - ny * cell_m) / 2 + cell_m * (np.arange(ny) + 0.5)
    gx, gy = np.meshgrid(cx, cy)  # (ny, nx)
    d = np.hypot(gx[..., None] - sx, gy[..., None] - sy)  # (ny, nx, sensors)
    near = d <= max_distance_m
    with np.errstate(divide="ignore"):
        w = np.where(near, 1.0 / np.maximum(d, 1e-9) ** power, 0.0)
    wsum = w.sum(axis=-1)
    with np.errstate(invalid="ignore"):
        values = (w * val).sum(axis=-1) / wsum
    values[~near.any(axis=-1)] = np.nan
    # A cell holding sensors shows the mean of what they measured (see the module docstring).
    ox = x0 + (x1 - x0 - nx * cell_m) / 2
    oy = y0 + (y1 - y0 - ny * cell_m) / 2
    col = np.clip(((sx - ox) // cell_m).astype(int), 0, nx - 1)
    row = np.clip(((sy - oy) // cell_m).astype(int), 0, ny - 1)
    total = np.zeros((ny, nx))
    count = np.zeros((ny, nx))
    np.add.at(total, (row, col), val)
    np.add.at(count, (row, col), 1)
    held = count > 0
    values[held] = total[held] / count[held]
    return Grid(lons=lon0 + cx / kx, lats=lat0 + cy / ky, values=values, cell_m=float(cell_m), power=float(power),
                max_distance_m=float(max_distance_m), sensors=tuple(pts))


def grid_features(grid: Grid, decimals: int = 2) -> list[dict[str, Any]]:
    """One GeoJSON Polygon Feature per non-empty cell, with its value (RFC 7946: lon, lat; CCW ring)."""
    feats: list[dict[str, Any]] = []
    hx, hy = grid.dlon / 2, grid.dlat / 2
    rows, cols = np.nonzero(np.isfinite(grid.values))
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        lon, lat = float(grid.lons[c]), float(grid.lats[r])
        w, e, s, n = round(lon - hx, 6), round(lon + hx, 6), round(lat - hy, 6), round(lat + hy, 6)
        feats.append({
            "type": "Feature",
            "id": f"r{r}c{c}",
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
            "properties": {"uhi": round(float(grid.values[r, c]), decimals), "row": r, "col": c},
        })
    return feats


def grid_meta(grid: Grid) -> dict[str, Any]:
    return {
        "method": "inverse distance weighting",
        "power": grid.power,
        "cell_m": grid.cell_m,
        "max_distance_m": grid.max_distance_m,
        "bbox": [round(v, 6) for v in grid.bbox],
        "shape": [int(grid.values.shape[0]), int(grid.values.shape[1])],
        **grid.stats(),
        "limits": ("IDW only blends the sensors' values by distance: no land cover, no values beyond the sensors' "
                   "range; cells farther than max_distance_m from every sensor are left empty."),
    }
