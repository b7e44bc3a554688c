"""Reading and checking a town's layer files: vectors through pyogrio/geopandas, rasters through rasterio,
occurrence tables (GBIF / INPN CSV) through pandas.

Every file ends in Lambert-93 (EPSG:2154), inside the town's extent, with the columns of its kind's roles
(:mod:`.kinds`), or is refused with a :class:`LayerError` saying what is wrong and what to do:

* no CRS (a Shapefile without its ``.prj``): refused unless ``crs`` is given;
* coordinates that contradict the CRS (metres in a file that says degrees, latitude and longitude
  swapped, a layer landing outside the town): refused, naming the likely CRS;
* empty file, or nothing left after the checks: refused;
* invalid geometries (self-intersecting rings...): repaired with ``make_valid``; geometries of the wrong
  type for the kind (a building as a point) or empty after repair: dropped and counted;
* features wholly outside the town's extent: dropped and counted.

The import report (:class:`Prepared.report`) says what was read, kept, repaired and dropped.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject

from ..errors import LayerError
from .extent import L93, Extent, transformer
from .kinds import (
    CROWN_PER_HEIGHT,
    DEFAULT_BUILDING_HEIGHT_M,
    DEFAULT_CROWN_M,
    FLOOR_HEIGHT_M,
    LINE,
    POINT,
    POLYGON,
    SPECS,
    LayerKind,
)

VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".zip", ".fgb")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
RASTER_SUFFIXES = (".tif", ".tiff")
RASTER_RES_M = 10.0
MAX_FEATURES = 2_000_000
#: files with more features than this are read through a spatial filter on the town's extent
FILTER_ABOVE = 200_000
_INSEE_ID = re.compile(r"N(\d+)E(\d+)")
_LAT_NAMES = ("decimallatitude", "latitude", "lat", "y_wgs84")
_LON_NAMES = ("decimallongitude", "longitude", "lon", "lng", "x_wgs84")


@dataclass
class Prepared:
    kind: LayerKind
    gdf: gpd.GeoDataFrame | None = None
    raster: np.ndarray | None = None  # float32, percent 0–100, NaN = nodata, on the extent's 10 m grid
    transform: Any = None
    source_crs: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        if self.gdf is not None:
            return len(self.gdf)
        return int(np.isfinite(self.raster).sum()) if self.raster is not None else 0


def _crs_name(crs: Any) -> str:
    try:
        c = CRS.from_user_input(crs)
    except CRSError:
        return str(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.name


def parse_crs(text: str | None) -> CRS | None:
    if text is None:
        return None
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise LayerError(f"--crs {text!r} is not a coordinate reference system: {exc}") from None


def _find(columns: list[str], candidates: tuple[str, ...], override: str | None, role: str, label: str) -> str | None:
    lower = {c.lower(): c for c in columns}
    if override is not None:
        if override in columns:
            return override
        if override.lower() in lower:
            return lower[override.lower()]
        raise LayerError(f"{label}: --field {role}={override}: no such column; columns are {', '.join(columns)}")
    for c in candidates:
        if c in lower:
            return lower[c]
    return None


def _geom_family(geom_type: str) -> str:
    if "Point" in geom_type:
        return POINT
    if "LineString" in geom_type:
        return LINE
    if "Polygon" in geom_type:
        return POLYGON
    return "other"


def _keep_family(geoms: gpd.GeoSeries, family: str) -> gpd.GeoSeries:
    """After make_valid a polygon may come back as a GeometryCollection: keep the parts of the wanted family."""
    def pick(g: Any) -> Any:
        if g is None or g.is_empty or _geom_family(g.geom_type) == family:
            return g
        parts = [p for p in shapely.get_parts(g) if _geom_family(p.geom_type) == family]
        return shapely.union_all(parts) if parts else None

    return geoms.apply(pick) if (geoms.geom_type == "GeometryCollection").any() else geoms


def _check_coordinates(gdf: gpd.GeoDataFrame, label: str) -> None:
    """Metres in a file that says degrees is the commonest wrong CRS (a Lambert-93 export tagged WGS84)."""
    if gdf.crs is None or not gdf.crs.is_geographic:
        return
    b = gdf.total_bounds
    if not (-180 <= b[0] <= 180 and -180 <= b[2] <= 180 and -90 <= b[1] <= 90 and -90 <= b[3] <= 90):
        l93 = 1e5 < b[0] < 1.3e6 and 6e6 < b[1] < 7.2e6
        guess = " — they look like Lambert-93 metres: give --crs EPSG:2154" if l93 else \
            ": give the file's real CRS with --crs"
        raise LayerError(f"{label}: the file says {_crs_name(gdf.crs)} (degrees) but its coordinates run "
                         f"x {b[0]:.0f}…{b[2]:.0f}, y {b[1]:.0f}…{b[3]:.0f}{guess}")


def _outside(label: str, bounds: tuple[float, float, float, float], extent: Extent,
             swapped_hint: str = "") -> LayerError:
    lon, lat = transformer(L93, "EPSG:4326").transform([bounds[0], bounds[2]], [bounds[1], bounds[3]])
    d = extent.describe()["bbox_wgs84"]
    return LayerError(
        f"{label}: outside the town — the layer covers lon {lon[0]:.4f}…{lon[1]:.4f}, lat {lat[0]:.4f}…{lat[1]:.4f} "
        f"and the town's extent is lon {d[0]}…{d[2]}, lat {d[1]}…{d[3]}{swapped_hint}; another town's file, or a "
        "wrong CRS (--crs)?")


def _swap_hint(gdf: gpd.GeoDataFrame, extent: Extent) -> str:
    if gdf.crs is None or not gdf.crs.is_geographic:
        return ""
    b = gdf.total_bounds
    x, y = transformer("EPSG:4326", L93).transform([b[1], b[3]], [b[0], b[2]])
    return " (with latitude and longitude swapped it would fit: are they?)" if extent.intersects(
        (min(x), min(y), max(x), max(y))) else ""


def _extent_in(crs: Any, extent: Extent, margin_m: float = 500.0) -> tuple[float, float, float, float] | None:
    """The town's extent (+ a margin) as a bounding box in another CRS, for a spatial filter; None if unknown."""
    try:
        c = CRS.from_user_input(crs)
        xs = [extent.xmin - margin_m, extent.xmax + margin_m]
        ys = [extent.ymin - margin_m, extent.ymax + margin_m]
        gx, gy = np.meshgrid(np.linspace(*xs, 5), np.linspace(*ys, 5))
        x, y = transformer(L93, c.to_string()).transform(gx.ravel(), gy.ravel())
    except (CRSError, ValueError):
        return None
    b = (float(np.min(x)), float(np.min(y)), float(np.max(x)), float(np.max(y)))
    return b if all(map(math.isfinite, b)) else None


def read_vector(path: Path, layer: str | None = None, extent: Extent | None = None) -> gpd.GeoDataFrame:
    """A vector layer. A large file (a département's BD TOPO, France's Filosofi squares) is read through a
    spatial filter on the town's extent, so only the town's features are loaded; a small one is read whole, so
    that a wrong CRS is diagnosed from its coordinates rather than seen as an empty town."""
    label = str(path)
    src = f"/vsizip/{path}" if path.suffix.lower() == ".zip" else str(path)
    try:
        layers = pyogrio.list_layers(src)
    except Exception as exc:  # pyogrio raises DataSourceError and a few GDAL errors: all mean "cannot read"
        raise LayerError(f"{label}: cannot read as a vector file: {exc}") from None
    if layer is None and len(layers) > 1:
        names = ", ".join(str(n) for n, _ in layers)
        raise LayerError(f"{label} holds {len(layers)} layers ({names}): choose one with --source-layer")
    if layer is not None and layer not in {str(n) for n, _ in layers}:
        raise LayerError(f"{label}: no layer {layer!r}; it holds {', '.join(str(n) for n, _ in layers)}")
    try:
        info = pyogrio.read_info(src, layer=layer)
        n = info["features"]
        bbox = _extent_in(info["crs"], extent) if (extent is not None and info.get("crs") and
                                                    (n < 0 or n > FILTER_ABOVE)) else None
        gdf = pyogrio.read_dataframe(src, layer=layer, bbox=bbox, max_features=MAX_FEATURES + 1)
        if len(gdf) > MAX_FEATURES:
            raise LayerError(f"{label}: more than {MAX_FEATURES} features in the town's extent; cut the file first")
        if bbox is not None and gdf.empty:
            raise LayerError(f"{label}: none of its {n} features lies in the town's extent (another area, or a "
                             "wrong CRS: give it with --crs)")
        return gdf
    except LayerError:
        raise
    except Exception as exc:
        raise LayerError(f"{label}: cannot read as a vector file: {exc}") from None


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in ("\t", ";", ",")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def read_table(path: Path) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """An occurrence or population table: GBIF's simple CSV (tab-separated), INPN exports (``;``), or any CSV
    with latitude/longitude (WGS84) columns — or INSEE's square ids (``Idcar_200m``: CRS3035RES200mN…E…)."""
    label = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LayerError(f"cannot read {label}: {exc}") from None
    for enc in ("utf-8-sig", "cp1252"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    if not text.strip():
        raise LayerError(f"{label}: empty file")
    delim = _sniff_delimiter(text.split("\n", 1)[0])
    # GBIF's simple CSV is tab-separated and unquoted: a stray '"' in a locality must not swallow lines.
    quoting = csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL
    try:
        df = pd.read_csv(io.StringIO(text), sep=delim, dtype=str, quoting=quoting, keep_default_na=False,
                         on_bad_lines="error")
    except (pd.errors.ParserError, ValueError) as exc:
        raise LayerError(f"{label}: not a readable {'tab' if delim == chr(9) else repr(delim)}-separated table: "
                         f"{exc}") from None
    if df.empty:
        raise LayerError(f"{label}: a header and no rows")
    cols = list(df.columns)
    lower = {c.lower(): c for c in cols}
    lat = next((lower[c] for c in _LAT_NAMES if c in lower), None)
    lon = next((lower[c] for c in _LON_NAMES if c in lower), None)
    notes: dict[str, Any] = {"rows": len(df), "delimiter": {"\t": "tab", ";": ";", ",": ","}[delim]}
    if lat is None or lon is None:
        idcar = lower.get("idcar_200m")
        if idcar is None:
            raise LayerError(f"{label}: no latitude/longitude columns (tried {', '.join(_LAT_NAMES)} / "
                             f"{', '.join(_LON_NAMES)}) and no INSEE square id (Idcar_200m); columns are "
                             f"{', '.join(cols)}")
        m = df[idcar].str.extract(_INSEE_ID)
        ok = m.notna().all(axis=1)
        ys, xs = m[0][ok].astype(float), m[1][ok].astype(float)
        geoms = shapely.box(xs, ys, xs + 200, ys + 200)
        notes["dropped_no_position"] = int((~ok).sum())
        return gpd.GeoDataFrame(df[ok].reset_index(drop=True), geometry=list(geoms), crs="EPSG:3035"), notes
    la = pd.to_numeric(df[lat].str.replace(",", ".", regex=False), errors="coerce")
    lo = pd.to_numeric(df[lon].str.replace(",", ".", regex=False), errors="coerce")
    ok = la.notna() & lo.notna()
    notes["dropped_no_position"] = int((~ok).sum())
    if not ok.any():
        raise LayerError(f"{label}: no row has a numeric {lat}/{lon}")
    bad = ok & ((la.abs() > 90) | (lo.abs() > 180))
    if bad.any():
        raise LayerError(f"{label}: {int(bad.sum())} rows have {lat}/{lon} outside ±90/±180 (first at row "
                         f"{int(bad.idxmax()) + 2}): the table's coordinates must be WGS84 degrees")
    df = df[ok].reset_index(drop=True)
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(lo[ok], la[ok]), crs="EPSG:4326"), notes


def _numeric(series: pd.Series) -> pd.Series:
    if series.dtype == object:
        series = series.astype(str).str.replace(",", ".", regex=False).str.strip()
    return pd.to_numeric(series, errors="coerce")


def _dates(series: pd.Series) -> pd.Series:
    """ISO dates, date-times and GBIF's ranges ("2021-06-01/2021-06-30": the first day) → date strings;
    French day-first dates (14/06/2021) too."""
    s = series.astype(str).str.strip().str.split("/").str[0].where(~series.astype(str).str.match(r"^\d{2}/"),
                                                                   series.astype(str).str.strip())
    iso = pd.to_datetime(s.str.slice(0, 10), errors="coerce", format="%Y-%m-%d")
    fr = pd.to_datetime(s.str.slice(0, 10), errors="coerce", format="%d/%m/%Y")
    d = iso.fillna(fr)
    return d.dt.strftime("%Y-%m-%d").where(d.notna(), None)


def _roles(gdf: gpd.GeoDataFrame, kind: LayerKind, fields: dict[str, str], label: str,
           report: dict[str, Any]) -> gpd.GeoDataFrame:
    spec = SPECS[kind]
    unknown = sorted(set(fields) - set(spec.roles))
    if unknown:
        raise LayerError(f"--field {unknown[0]}=…: a {kind} layer reads "
                         f"{', '.join(spec.roles) if spec.roles else 'no attribute'}")
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    found = {role: _find(cols, names, fields.get(role), role, label) for role, names in spec.roles.items()}
    missing = sorted(r for r in spec.required if found.get(r) is None)
    if missing:
        r = missing[0]
        raise LayerError(f"{label}: no column for {r} (tried {', '.join(spec.roles[r])}); columns are "
                         f"{', '.join(cols)} — name it with --field {r}=COLUMN")
    report["columns"] = {r: c for r, c in found.items() if c is not None}
    out = gpd.GeoDataFrame({"source_id": np.arange(1, len(gdf) + 1)}, geometry=gdf.geometry.values, crs=gdf.crs)
    out.index = gdf.index
    for role, col in found.items():
        if col is None:
            continue
        if role in ("crown_m", "height_m", "floors", "population"):
            v = _numeric(gdf[col])
            out[role] = v.where(v > 0) if role != "population" else v.where(v >= 0)
        elif role == "date":
            out[role] = _dates(gdf[col])
        else:
            out[role] = gdf[col].astype(str).str.strip().replace({"": None, "nan": None, "None": None})
    if kind is LayerKind.trees:
        crown = out["crown_m"] if "crown_m" in out else pd.Series(np.nan, index=out.index)
        height = out["height_m"] if "height_m" in out else pd.Series(np.nan, index=out.index)
        from_height = crown.isna() & height.notna()
        default = crown.isna() & height.isna()
        out["crown_m"] = crown.where(crown.notna(), height * CROWN_PER_HEIGHT).fillna(DEFAULT_CROWN_M).clip(0.5, 40)
        report["crown_from_height"] = int(from_height.sum())
        report["crown_default"] = int(default.sum())
    if kind is LayerKind.buildings:
        h = out["height_m"] if "height_m" in out else pd.Series(np.nan, index=out.index)
        floors = out["floors"] if "floors" in out else pd.Series(np.nan, index=out.index)
        from_floors = h.isna() & floors.notna()
        out["height_m"] = h.where(h.notna(), floors * FLOOR_HEIGHT_M)
        report["height_from_floors"] = int(from_floors.sum())
        report["height_default"] = int(out["height_m"].isna().sum())
        out["height_m"] = out["height_m"].fillna(DEFAULT_BUILDING_HEIGHT_M).clip(1, 300)
    if kind is LayerKind.biodiversity:
        before = len(out)
        if "basis" in out:
            # GBIF keeps absences as records: an absence is no occurrence.
            out = out[~out["basis"].fillna("").str.upper().isin({"ABSENT"})]
        if "occurrencestatus" in {c.lower() for c in cols}:
            status = gdf.loc[out.index, next(c for c in cols if c.lower() == "occurrencestatus")].astype(str)
            out = out[status.str.upper() != "ABSENT"]
        report["dropped_absent"] = before - len(out)
        n = len(out)
        out = out[out["species"].notna()]
        report["dropped_no_species"] = n - len(out)
        n = len(out)
        out = out[out["date"].notna()]
        report["dropped_no_date"] = n - len(out)
    if kind is LayerKind.population:
        n = len(out)
        out = out[out["population"].notna()]
        report["dropped_no_population"] = n - len(out)
    return out


def prepare_vector(gdf: gpd.GeoDataFrame, kind: LayerKind, extent: Extent, *, label: str, crs: CRS | None = None,
                   fields: dict[str, str] | None = None, report: dict[str, Any] | None = None) -> Prepared:
    """Check and normalise a vector layer already read; see the module docstring for the rules."""
    spec = SPECS[kind]
    report = dict(report or {})
    report["features_read"] = len(gdf)
    if gdf.empty:
        raise LayerError(f"{label}: empty layer (no feature)")
    if crs is not None:
        if gdf.crs is not None and CRS.from_user_input(gdf.crs) != crs:
            report.setdefault("notes", []).append(f"the file's CRS {_crs_name(gdf.crs)} replaced by --crs "
                                                  f"{_crs_name(crs)}")
        gdf = gdf.set_crs(crs, allow_override=True)
    if gdf.crs is None:
        raise LayerError(f"{label}: no coordinate reference system (a Shapefile without its .prj?); give it with "
                         "--crs, e.g. --crs EPSG:2154 for Lambert-93 or --crs EPSG:4326 for GPS degrees")
    source_crs = _crs_name(gdf.crs)
    _check_coordinates(gdf, label)
    geoms = gdf.geometry
    null = geoms.isna() | geoms.is_empty
    report["dropped_empty_geometry"] = int(null.sum())
    gdf = gdf[~null]
    if gdf.empty:
        raise LayerError(f"{label}: every feature has an empty or missing geometry")
    families = gdf.geometry.geom_type.map(_geom_family)
    wrong = ~families.isin(spec.geometries)
    if wrong.all():
        got = ", ".join(sorted(set(gdf.geometry.geom_type)))
        want = " or ".join(sorted(spec.geometries))
        raise LayerError(f"{label}: a {kind} layer takes {want} geometries ({spec.what}); this file has {got}")
    report["dropped_wrong_geometry"] = int(wrong.sum())
    gdf = gdf[~wrong]
    invalid = ~gdf.geometry.is_valid
    report["repaired"] = int(invalid.sum())
    if invalid.any():
        fixed = gdf.geometry.copy()
        fixed[invalid] = shapely.make_valid(fixed[invalid].values)
        family = _geom_family(gdf.geometry[~invalid].geom_type.iloc[0]) if (~invalid).any() else \
            next(iter(spec.geometries - {LINE})) if POLYGON in spec.geometries else next(iter(spec.geometries))
        fixed = _keep_family(fixed, family)
        gdf = gdf.set_geometry(fixed)
        gone = gdf.geometry.isna() | gdf.geometry.is_empty
        report["dropped_unrepairable"] = int(gone.sum())
        gdf = gdf[~gone]
        if gdf.empty:
            raise LayerError(f"{label}: no geometry left after repairing the invalid ones")
    out = _roles(gdf, kind, fields or {}, label, report)
    try:
        out = out.to_crs(L93)
    except Exception as exc:  # pyproj raises for an unusable CRS
        raise LayerError(f"{label}: cannot reproject from {source_crs} to Lambert-93: {exc}") from None
    b = out.total_bounds
    if not np.all(np.isfinite(b)):
        raise LayerError(f"{label}: coordinates do not reproject to Lambert-93 (wrong CRS {source_crs}?)")
    if not extent.intersects(tuple(b)):
        raise _outside(label, tuple(b), extent, _swap_hint(gdf, extent))
    inside = out.intersects(shapely.box(*extent.bounds))
    report["dropped_outside_town"] = int((~inside).sum())
    out = out[inside].reset_index(drop=True)
    if out.empty:
        raise _outside(label, tuple(b), extent)
    report["kept"] = len(out)
    report["source_crs"] = source_crs
    return Prepared(kind, gdf=out, source_crs=source_crs, report=report)


def prepare_raster(path: Path, kind: LayerKind, extent: Extent, *, crs: CRS | None = None) -> Prepared:
    """An imperviousness raster onto the town's 10 m Lambert-93 grid (mean of the source cells; values outside
    0–100 and the file's nodata are nodata; a 0–1 float raster is read as a fraction and scaled to %)."""
    label = str(path)
    report: dict[str, Any] = {}
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise LayerError(f"{label}: cannot read as a raster: {exc}") from None
    with src:
        if src.count < 1:
            raise LayerError(f"{label}: a raster without bands")
        src_crs = crs if crs is not None else src.crs
        if src_crs is None:
            raise LayerError(f"{label}: no coordinate reference system; give it with --crs (Copernicus HRL rasters "
                             "are EPSG:3035)")
        src_crs = CRS.from_user_input(src_crs)
        b = src.bounds
        if src_crs.is_geographic and not (-180 <= b.left <= 180 and -90 <= b.bottom <= 90):
            raise LayerError(f"{label}: the file says {_crs_name(src_crs)} (degrees) but its bounds run "
                             f"{b.left:.0f}…{b.right:.0f}: give its real CRS with --crs")
        x, y = transformer(src_crs.to_string(), L93).transform([b.left, b.right, b.left, b.right],
                                                               [b.bottom, b.bottom, b.top, b.top])
        bounds_l93 = (min(x), min(y), max(x), max(y))
        if not all(map(math.isfinite, bounds_l93)) or not extent.intersects(bounds_l93):
            raise _outside(label, bounds_l93 if all(map(math.isfinite, bounds_l93)) else (0, 0, 0, 0), extent)
        # Only the town's part of the file is read: a Copernicus tile is 100 km wide (10⁸ cells).
        from rasterio.windows import Window, from_bounds

        box = _extent_in(src_crs, extent, margin_m=100.0)
        full = Window(0, 0, src.width, src.height)
        window = full
        if box is not None:
            try:
                window = from_bounds(*box, transform=src.transform).round_offsets().round_lengths()
                window = window.intersection(full)
            except (rasterio.errors.WindowError, ValueError):
                window = full
        win_transform = src.window_transform(window)
        data = src.read(1, masked=True, window=window).astype("float32")
        arr = data.filled(np.nan)
        valid = np.isfinite(arr)
        if not valid.any():
            raise LayerError(f"{label}: every cell is nodata")
        vmax = float(np.nanmax(arr))
        if arr.dtype.kind == "f" and vmax <= 1.0 and np.nanmin(arr) >= 0:
            arr = arr * 100
            report.setdefault("notes", []).append("values 0–1 read as a fraction and scaled to percent")
        out_of_range = valid & ((arr < 0) | (arr > 100))
        # Copernicus HRL IMD: 254 unclassifiable, 255 outside area; both are nodata, not 100 % sealed.
        report["cells_out_of_range_as_nodata"] = int(out_of_range.sum())
        arr[out_of_range] = np.nan
        width = round((extent.xmax - extent.xmin) / RASTER_RES_M)
        height = round((extent.ymax - extent.ymin) / RASTER_RES_M)
        transform = from_origin(extent.xmin, extent.ymax, RASTER_RES_M, RASTER_RES_M)
        dst = np.full((height, width), np.nan, dtype="float32")
        reproject(arr, dst, src_transform=win_transform, src_crs=src_crs, dst_transform=transform, dst_crs=L93,
                  src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.average)
    if not np.isfinite(dst).any():
        raise _outside(label, bounds_l93, extent)
    report.update({"source_crs": _crs_name(src_crs), "source_resolution": [abs(src.res[0]), abs(src.res[1])],
                   "cells": int(dst.size), "cells_with_data": int(np.isfinite(dst).sum()),
                   "resolution_m": RASTER_RES_M})
    return Prepared(kind, raster=dst, transform=transform, source_crs=_crs_name(src_crs), report=report)


def prepare_file(path: Path, kind: LayerKind, extent: Extent, *, crs: str | None = None,
                 fields: dict[str, str] | None = None, source_layer: str | None = None) -> Prepared:
    """Read, check and normalise one file of ``kind`` (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise LayerError(f"{path}: no such file")
    suffix = path.suffix.lower()
    spec = SPECS[kind]
    given = parse_crs(crs)
    if spec.raster:
        if suffix not in RASTER_SUFFIXES:
            raise LayerError(f"{path}: a {kind} layer is a raster ({spec.what}); give a GeoTIFF (.tif)")
        return prepare_raster(path, kind, extent, crs=given)
    if suffix in RASTER_SUFFIXES:
        raise LayerError(f"{path}: a {kind} layer is a vector layer ({spec.what}), not a raster")
    if suffix in TABLE_SUFFIXES:
        if kind not in (LayerKind.biodiversity, LayerKind.population, LayerKind.trees):
            raise LayerError(f"{path}: a table is read for biodiversity, population or trees layers only; a {kind} "
                             "layer needs a GeoJSON, GeoPackage or Shapefile")
        gdf, report = read_table(path)
        return prepare_vector(gdf, kind, extent, label=str(path), crs=given, fields=fields, report=report)
    if suffix not in VECTOR_SUFFIXES:
        raise LayerError(f"{path}: unknown file type {suffix!r}; vectors: {', '.join(VECTOR_SUFFIXES)}; rasters: "
                         f"{', '.join(RASTER_SUFFIXES)}; tables: {', '.join(TABLE_SUFFIXES)}")
    vec = read_vector(path, source_layer, extent if given is None else None)
    return prepare_vector(vec, kind, extent, label=str(path), crs=given, fields=fields)
