"""A town's layers in one GeoPackage, ``<data_dir>/layers/<town>.gpkg``: the file a technician can open
in QGIS as it is.

* Vector layers are GeoPackage feature tables in Lambert-93 (EPSG:2154), one per layer, named by the
  layer's name; rasters (imperviousness) are GeoPackage gridded-coverage tables (float32 percent, NaN =
  nodata) on the town's 10 m grid.
* ``heatwatch_layers`` (an attributes table) says, per layer: kind, source, licence, import time, the
  file's CRS and what the import checks did.
* ``heatwatch_site_context`` keeps the last site context computed, with the fingerprint of the layers and
  sensor positions it was computed from (:mod:`.context`), so a change of either recomputes it.

Written by the command line (``heatwatch layers import``) and read by the api and the report; writes
take an exclusive lock file next to the GeoPackage so two imports never interleave.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio

from ..errors import LayerError
from .extent import L93, transformer
from .io import Prepared
from .kinds import SPECS, LayerKind

# pyogrio logs every write at INFO ("Created N records"): the import's own report says it better.
logging.getLogger("pyogrio._io").setLevel(logging.WARNING)

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,40}")
_RESERVED_PREFIXES = ("gpkg_", "heatwatch_", "rtree_", "sqlite_", "gpkgext_")

_META = """
CREATE TABLE IF NOT EXISTS heatwatch_layers (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    licence TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    source_file TEXT,
    source_crs TEXT,
    features INTEGER,
    raster INTEGER NOT NULL DEFAULT 0,
    bbox TEXT,
    report TEXT
);
CREATE TABLE IF NOT EXISTS heatwatch_site_context (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    computed_at TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


def valid_name(name: str) -> str:
    if not NAME_RE.fullmatch(name) or name.startswith(_RESERVED_PREFIXES):
        raise LayerError(f"layer name {name!r}: lower-case letters, digits and _, starting with a letter, at most 41 "
                         "characters, not starting with gpkg_/heatwatch_/rtree_")
    return name


@dataclass(frozen=True, slots=True)
class LayerInfo:
    name: str
    kind: LayerKind
    source: str
    licence: str
    imported_at: str
    source_file: str | None
    source_crs: str | None
    features: int
    raster: bool
    bbox: list[float] | None
    report: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": str(self.kind), "source": self.source, "licence": self.licence,
                "imported_at": self.imported_at, "source_file": self.source_file, "source_crs": self.source_crs,
                "stored_crs": L93, "features" if not self.raster else "cells_with_data": self.features,
                "geometry": "raster" if self.raster else "vector", "bbox_wgs84": self.bbox, "import": self.report}


class LayerStore:
    """One town's GeoPackage. Cheap to create; opens connections per call (several api workers may read)."""

    def __init__(self, folder: Path, town: str) -> None:
        self.folder = Path(folder)
        self.town = town
        self.path = self.folder / f"{town}.gpkg"

    # Low level --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f".{self.town}.gpkg.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.executescript(_META)
            yield db
        finally:
            db.close()

    def exists(self) -> bool:
        return self.path.exists()

    def _drop_table(self, db: sqlite3.Connection, table: str) -> None:
        """Remove a feature or tile table and every GeoPackage record of it (what GDAL's DeleteLayer does)."""
        for (trigger,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                                     (table,)).fetchall():
            db.execute(f'DROP TRIGGER IF EXISTS "{trigger}"')
        has_geom_cols = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_geometry_columns'").fetchone()
        if has_geom_cols:
            for (column,) in db.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?",
                                        (table,)).fetchall():
                db.execute(f'DROP TABLE IF EXISTS "rtree_{table}_{column}"')  # its shadow tables go with it
        db.execute(f'DROP TABLE IF EXISTS "{table}"')
        for meta in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions", "gpkg_ogr_contents",
                     "gpkg_tile_matrix", "gpkg_tile_matrix_set", "gpkg_2d_gridded_coverage_ancillary",
                     "gpkg_2d_gridded_tile_ancillary", "gpkg_metadata_reference"):
            cols = {r[1] for r in db.execute(f'PRAGMA table_info("{meta}")').fetchall()}
            key = "table_name" if "table_name" in cols else "tpudt_name" if "tpudt_name" in cols else None
            if key is not None:
                db.execute(f'DELETE FROM "{meta}" WHERE {key} = ?', (table,))

    # Reads ------------------------------------------------------------------------------

    def list(self) -> list[LayerInfo]:
        if not self.exists():
            return []
        with self._db() as db:
            rows = db.execute("SELECT name, kind, source, licence, imported_at, source_file, source_crs, features, "
                              "raster, bbox, report FROM heatwatch_layers ORDER BY kind, name").fetchall()
        return [LayerInfo(r[0], LayerKind(r[1]), r[2], r[3], r[4], r[5], r[6], int(r[7] or 0), bool(r[8]),
                          json.loads(r[9]) if r[9] else None, json.loads(r[10]) if r[10] else {}) for r in rows]

    def get(self, name: str) -> LayerInfo | None:
        return next((i for i in self.list() if i.name == name), None)

    def by_kind(self, kind: LayerKind) -> list[LayerInfo]:
        return [i for i in self.list() if i.kind is kind]

    def read(self, name: str) -> gpd.GeoDataFrame:
        """A vector layer in Lambert-93."""
        info = self.get(name)
        if info is None or info.raster:
            raise LayerError(f"no vector layer {name!r} in {self.town}'s layers")
        return pyogrio.read_dataframe(self.path, layer=name)

    def read_kind(self, kind: LayerKind) -> gpd.GeoDataFrame | None:
        """Every layer of a vector kind, concatenated (a town may import its parks and its woods apart)."""
        frames = [self.read(i.name).assign(layer=i.name) for i in self.by_kind(kind) if not i.raster]
        if not frames:
            return None
        return gpd.GeoDataFrame(gpd.pd.concat(frames, ignore_index=True), crs=L93)

    def read_raster(self, name: str) -> tuple[np.ndarray, Any]:
        info = self.get(name)
        if info is None or not info.raster:
            raise LayerError(f"no raster layer {name!r} in {self.town}'s layers")
        with rasterio.open(f"GPKG:{self.path}:{name}") as src:
            return src.read(1).astype("float32"), src.transform

    def fingerprint(self) -> str:
        """Changes whenever a layer is imported, replaced or removed."""
        text = "|".join(f"{i.name}:{i.kind}:{i.imported_at}" for i in self.list())
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # Writes -----------------------------------------------------------------------------

    def add(self, prepared: Prepared, name: str | None = None, *, source: str, licence: str,
            source_file: str | None = None) -> LayerInfo:
        """Store a checked layer under ``name`` (default: its kind), replacing a layer of that name."""
        name = valid_name(name or str(prepared.kind))
        imported = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._lock():
            previous = self.get(name)
            if previous is not None and previous.kind is not prepared.kind:
                raise LayerError(f"layer {name!r} is a {previous.kind} layer; remove it first or choose another "
                                 f"--name for this {prepared.kind} layer")
            if self.exists():
                with self._db() as db:
                    self._drop_table(db, name)
            if prepared.raster is not None:
                h, w = prepared.raster.shape
                with rasterio.open(self.path, "w", driver="GPKG", width=w, height=h, count=1, dtype="float32",
                                   crs=L93, transform=prepared.transform, RASTER_TABLE=name,
                                   APPEND_SUBDATASET="YES" if self.path.exists() else "NO",
                                   TILE_FORMAT="TIFF") as dst:
                    dst.write(prepared.raster, 1)
                t = prepared.transform
                bounds = (t.c, t.f + t.e * h, t.c + t.a * w, t.f)
            else:
                assert prepared.gdf is not None
                pyogrio.write_dataframe(prepared.gdf, self.path, layer=name, driver="GPKG")
                bounds = tuple(prepared.gdf.total_bounds)
            lon, lat = transformer(L93, "EPSG:4326").transform([bounds[0], bounds[2]], [bounds[1], bounds[3]])
            bbox = [round(lon[0], 6), round(lat[0], 6), round(lon[1], 6), round(lat[1], 6)]
            with self._db() as db:
                db.execute("INSERT OR REPLACE INTO heatwatch_layers (name, kind, source, licence, imported_at, "
                           "source_file, source_crs, features, raster, bbox, report) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                           (name, str(prepared.kind), source, licence, imported, source_file, prepared.source_crs,
                            prepared.count, int(prepared.raster is not None), json.dumps(bbox),
                            json.dumps(prepared.report, default=str)))
        info = self.get(name)
        assert info is not None
        return info

    def remove(self, name: str) -> None:
        with self._lock():
            if self.get(name) is None:
                raise LayerError(f"no layer {name!r} in {self.town}'s layers")
            with self._db() as db:
                self._drop_table(db, name)
                db.execute("DELETE FROM heatwatch_layers WHERE name = ?", (name,))

    # Site context cache -----------------------------------------------------------------

    def cached_context(self, fingerprint: str) -> dict[str, Any] | None:
        if not self.exists():
            return None
        with self._db() as db:
            row = db.execute("SELECT fingerprint, data FROM heatwatch_site_context WHERE id = 1").fetchone()
        return json.loads(row[1]) if row and row[0] == fingerprint else None

    def store_context(self, fingerprint: str, data: dict[str, Any]) -> None:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        with self._lock(), self._db() as db:
            db.execute("INSERT OR REPLACE INTO heatwatch_site_context (id, fingerprint, computed_at, data) "
                       "VALUES (1, ?, ?, ?)", (fingerprint, now, json.dumps(data, allow_nan=False)))


def kinds_present(store: LayerStore) -> set[LayerKind]:
    return {i.kind for i in store.list()}


__all__ = ["SPECS", "LayerInfo", "LayerStore", "kinds_present", "valid_name"]
