"""Land cover of a town on a 10 m Lambert-93 grid, and its shares within a radius of any point.

Each layer becomes a raster over the town's extent (:mod:`.extent`), at ``RES_M`` = 10 m (the resolution of
Copernicus' imperviousness product):

==============  =====================================================================================
``vegetation``  share of the cell under green-space polygons or tree crowns (0–1)
``canopy``      share of the cell under tree crowns: inventory points drawn as discs of their crown
                diameter, or crown polygons (0–1)
``impervious``  the imperviousness raster's mean over the cell (0–1; NaN where it has no data)
``building``    share of the cell under building footprints (0–1)
``volume``      building volume in the cell, m³ (footprint × height)
``water``       share of the cell under water (rivers as lines are drawn 8 m wide)
==============  =====================================================================================

Vector layers are drawn at 2 m (5 × 5 sub-cells per cell) and averaged, so a 6 m crown or a narrow
building counts for its area, not for a whole 10 m cell or nothing.

The share within a radius r of a point is the mean over a disc of radius r (:meth:`Cover.focal`): one
FFT convolution per layer and radius over the whole town, then a look-up per point. The same surfaces
serve a sensor's site context and every cell of a map, so a model fitted on sensors is applied to the
map with predictors computed the same way. Cells where a layer has no data (outside a raster's
coverage) are left out of the mean (the mean is over the disc's known cells); a disc with no known cell
is NaN.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from rasterio.features import rasterize
from rasterio.transform import from_origin
from scipy import ndimage
from scipy.signal import fftconvolve

from .extent import Extent
from .kinds import PARK_MIN_AREA_M2, LayerKind
from .store import LayerStore

RES_M = 10.0
SUB = 5  # vector layers drawn at RES_M / SUB
RIVER_WIDTH_M = 8.0


def _disc(radius_m: float) -> np.ndarray:
    r = radius_m / RES_M
    n = int(np.ceil(r))
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
    return (np.hypot(xx, yy) <= r).astype("float64")


def _fraction(geoms: list[Any], shape: tuple[int, int], extent: Extent, values: list[float] | None = None,
              merge_alg: str = "replace") -> np.ndarray:
    """Mean over each 10 m cell of a 2 m drawing of ``geoms`` (1 inside, or ``values`` summed)."""
    h, w = shape
    fine = from_origin(extent.xmin, extent.ymax, RES_M / SUB, RES_M / SUB)
    if not geoms:
        return np.zeros(shape, dtype="float32")
    from rasterio.enums import MergeAlg

    if values is None:
        shapes = ((g, 1) for g in geoms)
        arr = rasterize(shapes, out_shape=(h * SUB, w * SUB), transform=fine, fill=0, dtype="uint8")
    else:
        shapes = ((g, v) for g, v in zip(geoms, values, strict=True))
        arr = rasterize(shapes, out_shape=(h * SUB, w * SUB), transform=fine, fill=0, dtype="float32",
                        merge_alg=MergeAlg.add if merge_alg == "add" else MergeAlg.replace)
    return arr.reshape(h, SUB, w, SUB).mean(axis=(1, 3), dtype="float64").astype("float32")


@dataclass
class Cover:
    extent: Extent
    shape: tuple[int, int]
    surfaces: dict[str, np.ndarray]
    #: vector geometries kept for exact distances: water, parks, perimeters
    water: Any = None
    parks: Any = None
    perimeter: Any = None
    perimeter_labels: list[tuple[Any, str]] = field(default_factory=list)
    buildings: Any = None  # GeoDataFrame, for footprint sizes (LCZ rule)
    _focal: dict[tuple[str, float], np.ndarray] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def transform(self) -> Any:
        return from_origin(self.extent.xmin, self.extent.ymax, RES_M, RES_M)

    def has(self, name: str) -> bool:
        return name in self.surfaces

    def focal(self, name: str, radius_m: float) -> np.ndarray:
        """Mean of surface ``name`` over a disc of ``radius_m`` around each cell (sums for ``volume``)."""
        key = (name, float(radius_m))
        with self._lock:
            if key in self._focal:
                return self._focal[key]
        surf = self.surfaces[name]
        k = _disc(radius_m)
        known = np.isfinite(surf)
        data = np.where(known, surf, 0.0)
        num = fftconvolve(data, k, mode="same")
        if name == "volume":
            out = np.maximum(num, 0.0)  # a sum of m³, not a mean
        else:
            den = fftconvolve(known.astype("float64"), k, mode="same")
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.where(den > 0.5, num / np.maximum(den, 1e-9), np.nan)
            out = np.clip(out, 0.0, None)
        out = out.astype("float32")
        with self._lock:
            self._focal[key] = out
        return out

    def index(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, inside) of Lambert-93 points."""
        col = np.floor((np.asarray(x, float) - self.extent.xmin) / RES_M).astype(int)
        row = np.floor((self.extent.ymax - np.asarray(y, float)) / RES_M).astype(int)
        inside = (row >= 0) & (row < self.shape[0]) & (col >= 0) & (col < self.shape[1])
        return np.clip(row, 0, self.shape[0] - 1), np.clip(col, 0, self.shape[1] - 1), inside

    def sample(self, name: str, radius_m: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        arr = self.focal(name, radius_m)
        row, col, inside = self.index(x, y)
        out = arr[row, col].astype("float64")
        out[~inside] = np.nan
        return out

    def distance(self, which: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Exact distance (m) from each point to the water or to the nearest park; NaN without that layer."""
        geom = self.water if which == "water" else self.parks
        pts = shapely.points(np.asarray(x, float), np.asarray(y, float))
        if geom is None or geom.is_empty:
            return np.full(len(pts), np.nan)
        return shapely.distance(pts, geom)

    def distance_surface(self, which: str) -> np.ndarray | None:
        """Distance (m) from each cell to water/parks at 10 m, for maps and grids."""
        key = (f"dist_{which}", 0.0)
        with self._lock:
            if key in self._focal:
                return self._focal[key]
        geom = self.water if which == "water" else self.parks
        if geom is None or geom.is_empty:
            return None
        mask = rasterize([(geom, 1)], out_shape=self.shape, transform=self.transform, fill=0, dtype="uint8",
                         all_touched=True)
        out = (ndimage.distance_transform_edt(mask == 0) * RES_M).astype("float32")
        with self._lock:
            self._focal[key] = out
        return out

    def in_perimeter(self, x: np.ndarray, y: np.ndarray) -> list[str | None] | None:
        """The perimeter label each point lies in ('' for an unnamed one), None outside; None without a layer."""
        if not self.perimeter_labels:
            return None
        pts = shapely.points(np.asarray(x, float), np.asarray(y, float))
        out: list[str | None] = [None] * len(pts)
        for geom, label in self.perimeter_labels:
            hits = shapely.contains_xy(geom, np.asarray(x, float), np.asarray(y, float))
            for i in np.nonzero(hits)[0]:
                out[i] = out[i] or label
        return out


def build_cover(store: LayerStore, extent: Extent) -> Cover:
    """Draw the town's layers on its 10 m grid (see the module docstring)."""
    w = round((extent.xmax - extent.xmin) / RES_M)
    h = round((extent.ymax - extent.ymin) / RES_M)
    shape = (h, w)
    surfaces: dict[str, np.ndarray] = {}
    cover = Cover(extent, shape, surfaces)
    present = {i.kind for i in store.list()}
    box = shapely.box(*extent.bounds)

    crowns: list[Any] = []
    if LayerKind.trees in present:
        trees = store.read_kind(LayerKind.trees)
        assert trees is not None
        pts = trees.geometry.geom_type == "Point"
        crowns = list(trees.geometry[pts].buffer(trees.loc[pts, "crown_m"].to_numpy() / 2, 8)) + \
            list(trees.geometry[~pts])
        surfaces["canopy"] = _fraction(crowns, shape, extent)
    greens: list[Any] = []
    if LayerKind.vegetation in present:
        veg = store.read_kind(LayerKind.vegetation)
        assert veg is not None
        greens = list(veg.geometry)
        parks = veg.geometry[veg.geometry.area >= PARK_MIN_AREA_M2]
        cover.parks = shapely.union_all(list(parks)) if len(parks) else None
    if greens or crowns:
        surfaces["vegetation"] = _fraction(greens + crowns, shape, extent)
    if LayerKind.impervious in present:
        # Several rasters: the last imported wins where it has data (a newer product over an older one).
        acc = np.full(shape, np.nan, dtype="float32")
        for info in sorted(store.by_kind(LayerKind.impervious), key=lambda i: i.imported_at):
            arr, transform = store.read_raster(info.name)
            if arr.shape != shape or abs(transform.c - extent.xmin) > 1e-6 or abs(transform.f - extent.ymax) > 1e-6:
                from rasterio.warp import Resampling, reproject

                dst = np.full(shape, np.nan, dtype="float32")
                reproject(arr, dst, src_transform=transform, src_crs="EPSG:2154", dst_transform=cover.transform,
                          dst_crs="EPSG:2154", src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.average)
                arr = dst
            acc = np.where(np.isfinite(arr), arr, acc)
        surfaces["impervious"] = acc / 100.0
    if LayerKind.buildings in present:
        b = store.read_kind(LayerKind.buildings)
        assert b is not None
        b = b[b.intersects(box)]
        cover.buildings = b
        surfaces["building"] = _fraction(list(b.geometry), shape, extent)
        # Volume: height drawn at 2 m, summed over the 25 sub-cells of a cell × 4 m².
        fine = _fraction(list(b.geometry), shape, extent, values=list(b["height_m"].astype(float)))
        surfaces["volume"] = fine * (RES_M * RES_M)  # mean height over the cell × cell area = m³
    if LayerKind.water in present:
        wat = store.read_kind(LayerKind.water)
        assert wat is not None
        geoms = [g.buffer(RIVER_WIDTH_M / 2) if "Line" in g.geom_type else g for g in wat.geometry]
        cover.water = shapely.union_all(list(wat.geometry))
        surfaces["water"] = _fraction(geoms, shape, extent)
    if LayerKind.perimeter in present:
        per = store.read_kind(LayerKind.perimeter)
        assert per is not None
        cover.perimeter = shapely.union_all(list(per.geometry))
        labels = per["label"] if "label" in per else per["layer"]
        cover.perimeter_labels = [(g, str(lab) if lab is not None else str(layer))
                                  for g, lab, layer in zip(per.geometry, labels, per["layer"], strict=True)]
        for g, _ in cover.perimeter_labels:
            shapely.prepare(g)
    return cover


class CoverCache:
    """The last few towns' covers in this process, keyed by the layers' fingerprint: drawing a town takes a
    second or two, and maps, site context and grids all read the same surfaces."""

    def __init__(self, size: int = 4) -> None:
        self._items: OrderedDict[tuple[str, str, tuple[float, ...]], Cover] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, store: LayerStore, extent: Extent) -> Cover:
        key = (store.town, store.fingerprint(), extent.bounds)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        cover = build_cover(store, extent)
        with self._lock:
            self._items[key] = cover
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return cover


COVERS = CoverCache()
