"""Writes the small layer files the tests read (tests/data/layers/): SYNTHETIC data for Vitré's example
sensors, in the real formats towns get them in.

* ``vitre_layers.gpkg`` — a GeoPackage (EPSG:2154) with two layers: ``espaces_verts`` (green-space polygons,
  ``TYPE``) and ``arbres`` (a tree inventory: points with ``diametre_couronne`` and ``hauteur``, some missing);
* ``bdtopo_batiment.shp`` (+ .shx .dbf .prj .cpg) — buildings in IGN BD TOPO's BATIMENT shape: ``ID``,
  ``NATURE``, ``HAUTEUR`` (some empty), ``NB_ETAGES`` (EPSG:2154);
* ``impermeabilite_hrl.tif`` — an imperviousness GeoTIFF in Copernicus HRL IMD style: EPSG:3035, 10 m, uint8
  0–100 %, 254 unclassifiable, 255 outside area (nodata);
* ``gbif_occurrences.csv`` — a GBIF "simple CSV" download: tab-separated, GBIF's 50 columns;
* ``cours_eau.geojson`` — the Vilaine (a line) and a pond (a polygon), RFC 7946 WGS84;
* ``perimetre_spr.geojson`` — a heritage perimeter (site patrimonial remarquable), WGS84;
* ``filosofi_200m.gpkg`` — INSEE Filosofi-style 200 m squares (``idcar_200m``, ``ind``, ``men``) in EPSG:3035.

The values are invented (seeded); shapes, columns, CRSs, codes and nodata conventions are the real ones.
Run from the repository root: ``.venv/bin/python scripts/make_layer_testdata.py`` (deterministic output).
"""

from __future__ import annotations

import csv
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.transform import from_origin

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "layers"
TO_L93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
TO_WGS = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True)

# Vitré's example sensors (src/heatwatch/data/sensors/vitre.csv) and the tree canopy wanted within 100 m.
SITES = {
    "vitre-centre-01": (48.12445, -1.21045, 0.06, "centre"),
    "vitre-centre-02": (48.12405, -1.20860, 0.02, "centre"),
    "vitre-centre-03": (48.12320, -1.20790, 0.14, "centre"),
    "vitre-centre-04": (48.12390, -1.21230, 0.24, "centre"),
    "vitre-centre-06": (48.12260, -1.20630, 0.10, "centre"),
    "vitre-gare-01": (48.12130, -1.20760, 0.04, "centre"),
    "vitre-parc-01": (48.11950, -1.20120, 0.55, "park"),
    "vitre-parc-02": (48.12690, -1.21330, 0.45, "park"),
    "vitre-vilaine-01": (48.12600, -1.21080, 0.30, "water"),
    "vitre-vilaine-02": (48.12670, -1.21520, 0.35, "water"),
    "vitre-sub-01": (48.11890, -1.21980, 0.20, "suburb"),
    "vitre-sub-02": (48.13300, -1.20500, 0.28, "suburb"),
    "vitre-za-01": (48.13500, -1.19600, 0.03, "za"),
}
GBIF_COLUMNS = [
    "gbifID", "datasetKey", "occurrenceID", "kingdom", "phylum", "class", "order", "family", "genus", "species",
    "infraspecificEpithet", "taxonRank", "scientificName", "verbatimScientificName",
    "verbatimScientificNameAuthorship", "countryCode", "locality", "stateProvince", "occurrenceStatus",
    "individualCount", "publishingOrgKey", "decimalLatitude", "decimalLongitude", "coordinateUncertaintyInMeters",
    "coordinatePrecision", "elevation", "elevationAccuracy", "depth", "depthAccuracy", "eventDate", "day", "month",
    "year", "taxonKey", "speciesKey", "basisOfRecord", "institutionCode", "collectionCode", "catalogNumber",
    "recordNumber", "identifiedBy", "dateIdentified", "license", "rightsHolder", "recordedBy", "typeStatus",
    "establishmentMeans", "lastInterpreted", "mediaType", "issue",
]
SPECIES = [
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Sapindales", "Sapindaceae", "Acer", "Acer campestre"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Fagales", "Fagaceae", "Quercus", "Quercus robur"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Lamiales", "Oleaceae", "Fraxinus", "Fraxinus excelsior"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Asterales", "Asteraceae", "Bellis", "Bellis perennis"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Asterales", "Asteraceae", "Taraxacum", "Taraxacum officinale"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Urticaceae", "Urtica", "Urtica dioica"),
    ("Plantae", "Tracheophyta", "Liliopsida", "Poales", "Poaceae", "Poa", "Poa annua"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Parus", "Parus major"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Cyanistes", "Cyanistes caeruleus"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Turdidae", "Turdus", "Turdus merula"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Fringillidae", "Fringilla", "Fringilla coelebs"),
    ("Animalia", "Chordata", "Aves", "Columbiformes", "Columbidae", "Columba", "Columba palumbus"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Passeridae", "Passer", "Passer domesticus"),
    ("Animalia", "Chordata", "Aves", "Apodiformes", "Apodidae", "Apus", "Apus apus"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Sylviidae", "Sylvia", "Sylvia atricapilla"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Troglodytidae", "Troglodytes", "Troglodytes troglodytes"),
    ("Animalia", "Chordata", "Aves", "Piciformes", "Picidae", "Dendrocopos", "Dendrocopos major"),
    ("Animalia", "Arthropoda", "Insecta", "Lepidoptera", "Nymphalidae", "Pararge", "Pararge aegeria"),
    ("Animalia", "Arthropoda", "Insecta", "Lepidoptera", "Nymphalidae", "Aglais", "Aglais io"),
    ("Animalia", "Arthropoda", "Insecta", "Lepidoptera", "Pieridae", "Pieris", "Pieris rapae"),
    ("Animalia", "Arthropoda", "Insecta", "Hymenoptera", "Apidae", "Bombus", "Bombus terrestris"),
    ("Animalia", "Arthropoda", "Insecta", "Hymenoptera", "Apidae", "Apis", "Apis mellifera"),
    ("Animalia", "Arthropoda", "Insecta", "Odonata", "Coenagrionidae", "Ischnura", "Ischnura elegans"),
    ("Animalia", "Chordata", "Mammalia", "Eulipotyphla", "Erinaceidae", "Erinaceus", "Erinaceus europaeus"),
    ("Animalia", "Chordata", "Mammalia", "Chiroptera", "Vespertilionidae", "Pipistrellus", "Pipistrellus pipistrellus"),
    ("Animalia", "Chordata", "Amphibia", "Anura", "Bufonidae", "Bufo", "Bufo spinosus"),
]


def l93(lat: float, lon: float) -> tuple[float, float]:
    x, y = TO_L93.transform(lon, lat)
    return float(x), float(y)


def main() -> None:
    rng = np.random.default_rng(16)
    OUT.mkdir(parents=True, exist_ok=True)
    pts = {k: l93(v[0], v[1]) for k, v in SITES.items()}
    cx, cy = l93(48.1236, -1.2089)

    # Green spaces: the two parks, a riverside strip, gardens in the suburbs.
    greens = []
    for sid, kind in (("vitre-parc-01", "PARC"), ("vitre-parc-02", "PARC")):
        x, y = pts[sid]
        greens.append((kind, shapely.box(x - 140, y - 110, x + 120, y + 130)))
    for sid in ("vitre-vilaine-01", "vitre-vilaine-02"):
        x, y = pts[sid]
        greens.append(("BERGES", shapely.box(x - 150, y - 25, x + 150, y + 40)))
    for sid in ("vitre-sub-01", "vitre-sub-02"):
        x, y = pts[sid]
        for _ in range(6):
            gx, gy = x + rng.uniform(-150, 150), y + rng.uniform(-150, 150)
            greens.append(("JARDIN", shapely.box(gx, gy, gx + rng.uniform(20, 45), gy + rng.uniform(20, 45))))
    # A self-intersecting ring ("bow tie"), as hand-drawn files have: the import repairs it.
    x, y = pts["vitre-centre-04"]
    greens.append(("SQUARE", shapely.Polygon([(x + 30, y + 30), (x + 60, y + 60), (x + 60, y + 30), (x + 30, y + 60)])))
    veg = gpd.GeoDataFrame({"TYPE": [g[0] for g in greens], "NOM": [f"espace {i}" for i in range(len(greens))]},
                           geometry=[g[1] for g in greens], crs="EPSG:2154")

    # Trees: within 100 m of each site, as many crowns as give its wanted canopy, plus scattered street trees.
    tx, ty, crown, height = [], [], [], []
    for sid, (_, _, share, _) in SITES.items():
        x, y = pts[sid]
        target = share * np.pi * 100**2
        area = 0.0
        while area < target:
            r, a = 95 * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
            d = rng.uniform(6, 12)
            tx.append(x + r * np.cos(a))
            ty.append(y + r * np.sin(a))
            crown.append(d)
            height.append(round(d / 0.6 + rng.normal(0, 1), 1))
            area += np.pi * (d / 2) ** 2 * 0.8  # crowns overlap a little
    for _ in range(150):
        tx.append(cx + rng.uniform(-2500, 2500))
        ty.append(cy + rng.uniform(-2000, 2000))
        crown.append(rng.uniform(4, 10))
        height.append(round(crown[-1] / 0.6, 1))
    crown_col = [round(c, 1) if i % 9 else None for i, c in enumerate(crown)]  # some inventories miss crowns
    trees = gpd.GeoDataFrame({"essence": rng.choice(["Tilia cordata", "Acer platanoides", "Platanus x hispanica",
                                                      "Quercus robur"], len(tx)),
                              "diametre_couronne": crown_col, "hauteur": height},
                             geometry=gpd.points_from_xy(tx, ty), crs="EPSG:2154")
    gpkg = OUT / "vitre_layers.gpkg"
    gpkg.unlink(missing_ok=True)
    pyogrio.write_dataframe(veg, gpkg, layer="espaces_verts", driver="GPKG")
    pyogrio.write_dataframe(trees, gpkg, layer="arbres", driver="GPKG")

    # Buildings: blocks around urban sites (tall in the centre), houses in suburbs, sheds in the business park.
    rows = []
    for sid, (_, _, _, zone) in SITES.items():
        if zone in ("park", "water"):
            continue
        x, y = pts[sid]
        n, size, h = {"centre": (28, (12, 22), (9, 16)), "suburb": (22, (9, 12), (5, 7)),
                      "za": (8, (30, 60), (7, 10))}[zone]
        for _ in range(n):
            bx, by = x + rng.uniform(-160, 160), y + rng.uniform(-160, 160)
            if np.hypot(bx - x, by - y) < 12:
                continue
            w, d = rng.uniform(*size), rng.uniform(*size)
            hh = round(float(rng.uniform(*h)), 1)
            rows.append({"ID": f"BATIMENT{len(rows):016d}", "NATURE": "Indifférenciée", "USAGE1": "Résidentiel",
                         "HAUTEUR": hh if len(rows) % 11 else None, "NB_ETAGES": max(1, int(hh // 3)),
                         "geometry": shapely.box(bx, by, bx + w, by + d)})
    bat = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:2154")
    for f in OUT.glob("bdtopo_batiment.*"):
        f.unlink()
    pyogrio.write_dataframe(bat, OUT / "bdtopo_batiment.shp", driver="ESRI Shapefile", encoding="UTF-8")

    # Water: the Vilaine as a line past both riverside sensors, and a pond.
    (x1, y1), (x2, y2) = pts["vitre-vilaine-02"], pts["vitre-vilaine-01"]
    river = shapely.LineString([(x1 - 800, y1 + 60), (x1, y1 + 50), (x2, y2 + 45), (x2 + 900, y2 + 20)])
    px, py = pts["vitre-parc-01"]
    pond = shapely.Point(px + 60, py - 60).buffer(25)
    water = gpd.GeoDataFrame({"NOM": ["La Vilaine", "Étang du parc"]}, geometry=[river, pond], crs="EPSG:2154")
    (OUT / "cours_eau.geojson").unlink(missing_ok=True)
    pyogrio.write_dataframe(water.to_crs("EPSG:4326"), OUT / "cours_eau.geojson", driver="GeoJSON",
                            layer_options={"COORDINATE_PRECISION": 7})

    # Heritage perimeter around the castle and the old town.
    a, b = pts["vitre-centre-04"], pts["vitre-centre-03"]
    spr = shapely.box(min(a[0], b[0]) - 120, min(a[1], b[1]) - 80, max(a[0], b[0]) + 90, max(a[1], b[1]) + 220)
    per = gpd.GeoDataFrame({"nom": ["Site patrimonial remarquable de Vitré"]}, geometry=[spr], crs="EPSG:2154")
    (OUT / "perimetre_spr.geojson").unlink(missing_ok=True)
    pyogrio.write_dataframe(per.to_crs("EPSG:4326"), OUT / "perimetre_spr.geojson", driver="GeoJSON",
                            layer_options={"COORDINATE_PRECISION": 7})

    # Imperviousness, HRL style: rasterised in Lambert-93 then written in EPSG:3035 like the Copernicus product.
    res = 10.0
    x0, y0 = cx - 1800, cy + 1700
    w, h = 360, 340
    t93 = from_origin(x0, y0, res, res)
    gx = x0 + res * (np.arange(w) + 0.5)
    gy = y0 - res * (np.arange(h) + 0.5)
    xx, yy = np.meshgrid(gx, gy)
    dist = np.hypot(xx - cx, yy - cy)
    imp = np.clip(85 - dist / 25 + rng.normal(0, 6, dist.shape), 5, 98)
    za = pts["vitre-za-01"]
    imp[np.hypot(xx - za[0], yy - za[1]) < 250] = 88
    for _, g in greens:
        imp[rasterize([(g, 1)], out_shape=(h, w), transform=t93).astype(bool)] = 8
    imp[rasterize([(river.buffer(12), 1), (pond, 1)], out_shape=(h, w), transform=t93).astype(bool)] = 0
    built = rasterize([(g, 1) for g in bat.geometry], out_shape=(h, w), transform=t93).astype(bool)
    imp[built] = 100
    imp = imp.astype("uint8")
    imp[:, :6] = 255  # outside area
    imp[150:154, 200:204] = 254  # unclassifiable
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    bounds = (x0, y0 - h * res, x0 + w * res, y0)
    t3035, w2, h2 = calculate_default_transform("EPSG:2154", "EPSG:3035", w, h, *bounds, resolution=res)
    out = np.full((h2, w2), 255, dtype="uint8")
    reproject(imp, out, src_transform=t93, src_crs="EPSG:2154", dst_transform=t3035, dst_crs="EPSG:3035",
              src_nodata=None, dst_nodata=255, resampling=Resampling.nearest)
    with rasterio.open(OUT / "impermeabilite_hrl.tif", "w", driver="GTiff", width=w2, height=h2, count=1,
                       dtype="uint8", crs="EPSG:3035", transform=t3035, nodata=255, compress="deflate") as dst:
        dst.write(out, 1)

    # GBIF simple CSV: richer in parks and along the river, poorer in the dense centre and the business park.
    richness = {"park": 22, "water": 18, "suburb": 12, "centre": 6, "za": 4}
    recs = []
    for sid, (_, _, _, zone) in SITES.items():
        x, y = pts[sid]
        pool = SPECIES[: richness[zone]]
        for _ in range(24 if zone != "centre" else 14):
            sp = pool[int(rng.integers(len(pool)))]
            ox, oy = x + rng.normal(0, 60), y + rng.normal(0, 60)
            lon, lat = TO_WGS.transform(ox, oy)
            day = f"20{rng.integers(21, 25)}-{rng.integers(4, 10):02d}-{rng.integers(1, 29):02d}"
            recs.append((sp, lat, lon, day))
    recs.append(((*SPECIES[0][:-1], ""), 48.1236, -1.2089, "2023-05-02"))  # identified to genus only
    with open(OUT / "gbif_occurrences.csv", "w", encoding="utf-8", newline="") as f:
        wr = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n", escapechar="\\")
        wr.writerow(GBIF_COLUMNS)
        for i, (sp, lat, lon, day) in enumerate(recs):
            kingdom, phylum, cls, order, family, genus, species = sp
            y_, m_, d_ = day.split("-")
            row = {c: "" for c in GBIF_COLUMNS}
            row.update({"gbifID": str(4000000000 + i), "datasetKey": "50c9509d-22c7-4a22-a47d-8c48425ef4a7",
                        "occurrenceID": f"https://www.inaturalist.org/observations/{180000000 + i}",
                        "kingdom": kingdom, "phylum": phylum, "class": cls, "order": order, "family": family,
                        "genus": genus, "species": species, "taxonRank": "SPECIES" if species else "GENUS",
                        "scientificName": species or genus, "verbatimScientificName": species or genus,
                        "countryCode": "FR", "locality": "Vitré", "stateProvince": "Bretagne",
                        "occurrenceStatus": "PRESENT", "decimalLatitude": f"{lat:.6f}",
                        "decimalLongitude": f"{lon:.6f}", "coordinateUncertaintyInMeters": "15.0",
                        "eventDate": f"{day}T10:{i % 60:02d}", "day": str(int(d_)), "month": str(int(m_)),
                        "year": y_, "taxonKey": str(2880000 + i % 50), "speciesKey": str(2880000 + i % 50),
                        "basisOfRecord": "HUMAN_OBSERVATION", "institutionCode": "iNaturalist",
                        "collectionCode": "Observations", "license": "CC_BY_NC_4_0",
                        "recordedBy": "observer", "lastInterpreted": "2025-01-10T12:00:00.000Z",
                        "mediaType": "StillImage", "issue": "COORDINATE_ROUNDED"})
            wr.writerow([row[c] for c in GBIF_COLUMNS])

    # INSEE Filosofi-style 200 m squares (EPSG:3035, ids from the south-west corner).
    t = Transformer.from_crs("EPSG:2154", "EPSG:3035", always_xy=True)
    ex, ey = t.transform(cx, cy)
    ex0, ey0 = int(ex // 200 * 200) - 1600, int(ey // 200 * 200) - 1600
    cells = []
    for i in range(16):
        for j in range(16):
            x, y = ex0 + 200 * i, ey0 + 200 * j
            d = np.hypot(x + 100 - ex, y + 100 - ey)
            ind = float(max(0.0, 420 * np.exp(-d / 900) + rng.normal(0, 15)))
            if ind < 11:  # INSEE publishes no square below 11 households
                continue
            cells.append({"idcar_200m": f"CRS3035RES200mN{y}E{x}", "ind": round(ind, 1), "men": round(ind / 2.1, 1),
                          "geometry": shapely.box(x, y, x + 200, y + 200)})
    pop = gpd.GeoDataFrame(cells, geometry="geometry", crs="EPSG:3035")
    (OUT / "filosofi_200m.gpkg").unlink(missing_ok=True)
    pyogrio.write_dataframe(pop, OUT / "filosofi_200m.gpkg", layer="carreaux_200m_met", driver="GPKG")
    print(f"wrote {', '.join(sorted(p.name for p in OUT.iterdir()))}")


if __name__ == "__main__":
    main()
