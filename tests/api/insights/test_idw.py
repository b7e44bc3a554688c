"""Inverse-distance weighting: exact at sensors, bounded by the sensors' range, empty beyond the max
distance, square cells in metres, and a cap on the grid size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from heatwatch.api.insights.idw import M_PER_DEG_LAT, SensorValue, grid_features, grid_meta, idw_grid, m_per_deg_lon
from heatwatch.api.insights.render import render_png, scale_length_m

LAT, LON = 48.1236, -1.2089


def at(dx_m: float, dy_m: float, value: float, name: str = "s") -> SensorValue:
    return SensorValue(name, LAT + dy_m / M_PER_DEG_LAT, LON + dx_m / m_per_deg_lon(LAT), value)


def test_two_sensors_midpoint_and_bounds() -> None:
    grid = idw_grid([at(-500, 0, 1.0, "a"), at(500, 0, 3.0, "b")], cell_m=50, max_distance_m=800)
    finite = grid.values[np.isfinite(grid.values)]
    assert finite.min() >= 1.0 - 1e-9 and finite.max() <= 3.0 + 1e-9
    # The middle column (equidistant) is the plain mean.
    row = grid.values.shape[0] // 2
    mid = np.argmin(np.abs(grid.lons - LON))
    assert grid.values[row, mid] == pytest.approx(2.0, abs=0.15)
    # Cells are square in metres.
    assert grid.dlon * m_per_deg_lon(grid.lat0) == pytest.approx(50, rel=1e-3)
    assert grid.dlat * M_PER_DEG_LAT == pytest.approx(50, rel=1e-6)


def test_cells_beyond_max_distance_are_empty() -> None:
    grid = idw_grid([at(0, 0, 2.0, "a"), at(3000, 0, 2.0, "b")], cell_m=100, max_distance_m=500)
    # Between the two sensors, 1500 m from both: nothing.
    col = np.argmin(np.abs(grid.lons - (LON + 1500 / m_per_deg_lon(LAT))))
    row = np.argmin(np.abs(grid.lats - LAT))
    assert math.isnan(grid.values[row, col])
    feats = grid_features(grid)
    assert len(feats) == grid.filled() < grid.values.size
    meta = grid_meta(grid)
    assert meta["filled_cells"] == len(feats) and meta["max_distance_m"] == 500
    for f in feats[:20]:
        ring = f["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) == 5


def test_a_cell_on_a_sensor_takes_its_value() -> None:
    grid = idw_grid([at(0, 0, 4.0, "a"), at(400, 0, 0.0, "b")], cell_m=100, max_distance_m=600, margin_m=50)
    row = np.argmin(np.abs(grid.lats - LAT))
    col = np.argmin(np.abs(grid.lons - LON))
    assert grid.values[row, col] > 3.5


def test_limits() -> None:
    with pytest.raises(ValueError, match="no sensor"):
        idw_grid([SensorValue("a", LAT, LON, float("nan"))])
    with pytest.raises(ValueError, match="cell limit"):
        idw_grid([at(0, 0, 1.0), at(20_000, 20_000, 1.0)], cell_m=25, max_distance_m=5000)


def test_png_render_and_scale() -> None:
    grid = idw_grid([at(-500, 0, -0.5, "a"), at(500, 300, 3.0, "b"), at(0, -400, 1.0, "c")])
    png = render_png(grid, "Vitré", "test", "Etalab-2.0")
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert scale_length_m(2400) == 500 and scale_length_m(800) == 200
