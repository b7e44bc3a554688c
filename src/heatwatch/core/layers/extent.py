"""A town's extent in Lambert-93 (EPSG:2154): where its layers must lie and what the site context covers.

The towns file gives each town a position, not a boundary, and the registry places its sensors. The
extent is the square of ``HALF_SIDE_M`` around the town's position, widened to hold every placed
sensor of the town (its rural reference included) with ``SENSOR_MARGIN_M`` around it, snapped outward
to 200 m (so INSEE's 200 m squares and 10 m rasters align on it). A layer that does not reach the extent
is refused as "outside the town"; features wholly outside it are dropped at import (a département-wide
BD TOPO extract keeps only the town's buildings).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from pyproj import Transformer

from ..model import Sensor, Town

L93 = "EPSG:2154"
WGS84 = "EPSG:4326"
HALF_SIDE_M = 4000.0
SENSOR_MARGIN_M = 1000.0
SNAP_M = 200.0


@lru_cache(maxsize=8)
def transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def to_l93(lon: Iterable[float], lat: Iterable[float]) -> tuple[list[float], list[float]]:
    x, y = transformer(WGS84, L93).transform(list(lon), list(lat))
    return list(x), list(y)


def to_wgs84(x: Iterable[float], y: Iterable[float]) -> tuple[list[float], list[float]]:
    lon, lat = transformer(L93, WGS84).transform(list(x), list(y))
    return list(lon), list(lat)


@dataclass(frozen=True, slots=True)
class Extent:
    """(xmin, ymin, xmax, ymax) in EPSG:2154 metres."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.xmin, self.ymin, self.xmax, self.ymax)

    def intersects(self, b: tuple[float, float, float, float]) -> bool:
        return b[0] <= self.xmax and b[2] >= self.xmin and b[1] <= self.ymax and b[3] >= self.ymin

    def describe(self) -> dict[str, object]:
        lon, lat = to_wgs84([self.xmin, self.xmax], [self.ymin, self.ymax])
        return {"crs": L93, "bounds_m": [round(v, 1) for v in self.bounds],
                "bbox_wgs84": [round(lon[0], 6), round(lat[0], 6), round(lon[1], 6), round(lat[1], 6)],
                "rule": (f"{HALF_SIDE_M / 1000:g} km each side of the town's position, widened to its placed sensors "
                         f"+ {SENSOR_MARGIN_M:g} m, snapped to {SNAP_M:g} m")}


def town_extent(town: Town, sensors: Iterable[Sensor] = ()) -> Extent:
    (cx,), (cy,) = to_l93([town.longitude], [town.latitude])
    xmin, ymin, xmax, ymax = cx - HALF_SIDE_M, cy - HALF_SIDE_M, cx + HALF_SIDE_M, cy + HALF_SIDE_M
    placed = [s for s in sensors if s.town == town.id and s.latitude is not None and s.longitude is not None]
    if placed:
        xs, ys = to_l93([s.longitude for s in placed], [s.latitude for s in placed])  # type: ignore[misc]
        xmin, ymin = min(xmin, min(xs) - SENSOR_MARGIN_M), min(ymin, min(ys) - SENSOR_MARGIN_M)
        xmax, ymax = max(xmax, max(xs) + SENSOR_MARGIN_M), max(ymax, max(ys) + SENSOR_MARGIN_M)
    return Extent(math.floor(xmin / SNAP_M) * SNAP_M, math.floor(ymin / SNAP_M) * SNAP_M,
                  math.ceil(xmax / SNAP_M) * SNAP_M, math.ceil(ymax / SNAP_M) * SNAP_M)
