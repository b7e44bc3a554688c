"""What each kind of layer is, which geometries it takes, and which attributes heatwatch reads from it.

A town's files come from many producers and name the same thing differently (``HAUTEUR`` in IGN's BD
TOPO, ``hauteur`` in a town's tree inventory, ``Ind`` or ``ind`` in INSEE's Filosofi squares). Each kind
lists the *roles* it reads and, for each role, the column names tried in order (case-insensitive);
``--field role=COLUMN`` on the command line names another one. On import a role's values are copied
into a column of the role's name in the stored layer, so nothing downstream depends on the producer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class LayerKind(StrEnum):
    vegetation = "vegetation"  # green spaces, lawns, woods: polygons
    trees = "trees"  # a tree inventory (points with crown diameter or height) or crown polygons
    impervious = "impervious"  # imperviousness raster, 0–100 % (Copernicus HRL IMD style)
    buildings = "buildings"  # footprints with heights (BD TOPO BATIMENT style)
    water = "water"  # rivers, ponds, canals: polygons or lines
    biodiversity = "biodiversity"  # occurrences (GBIF / INPN CSV, or points)
    perimeter = "perimeter"  # a heritage perimeter (site patrimonial remarquable) or any area of interest
    population = "population"  # residents per square (INSEE Filosofi 200 m style)


POINT, LINE, POLYGON = "point", "line", "polygon"


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: LayerKind
    geometries: frozenset[str]
    #: role -> candidate column names, first match wins (case-insensitive)
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: roles without which the layer is refused
    required: frozenset[str] = frozenset()
    raster: bool = False
    what: str = ""


SPECS: dict[LayerKind, KindSpec] = {
    LayerKind.vegetation: KindSpec(
        LayerKind.vegetation, frozenset({POLYGON}),
        {"category": ("category", "type", "nature", "categorie", "typologie", "class")},
        what="green-space polygons (parks, gardens, lawns, woods)"),
    LayerKind.trees: KindSpec(
        LayerKind.trees, frozenset({POINT, POLYGON}),
        {"crown_m": ("crown_m", "crown_diameter", "diametre_couronne", "diam_couronne", "diametre_houppier",
                     "houppier", "couronne", "crown"),
         "height_m": ("height_m", "hauteur", "hauteur_m", "height", "haut_tot", "hauteur_totale"),
         "species": ("species", "espece", "essence", "genre_espece", "nom_latin", "taxon")},
        what="a tree inventory (points with crown diameter or height) or crown polygons"),
    LayerKind.impervious: KindSpec(
        LayerKind.impervious, frozenset(), raster=True,
        what="an imperviousness raster, 0–100 % (Copernicus HRL Imperviousness Density style; values above 100 "
             "are nodata)"),
    LayerKind.buildings: KindSpec(
        LayerKind.buildings, frozenset({POLYGON}),
        {"height_m": ("height_m", "hauteur", "height", "haut_moy", "h_moy"),
         "floors": ("nb_etages", "nombre_d_etages", "floors", "etages", "building:levels")},
        what="building footprints with heights (IGN BD TOPO BATIMENT style: HAUTEUR, NB_ETAGES)"),
    LayerKind.water: KindSpec(LayerKind.water, frozenset({POLYGON, LINE}), what="rivers, canals, ponds"),
    LayerKind.biodiversity: KindSpec(
        LayerKind.biodiversity, frozenset({POINT}),
        {"species": ("species", "nomscientifiqueref", "scientificname", "nom_scientifique", "lb_nom", "taxon"),
         "date": ("eventdate", "dateobservation", "date_observation", "datedebut", "date_debut", "date"),
         "basis": ("basisofrecord", "basis", "statutobservation")},
        required=frozenset({"species", "date"}),
        what="species occurrences (GBIF simple CSV, INPN/OpenObs export, or points)"),
    LayerKind.perimeter: KindSpec(
        LayerKind.perimeter, frozenset({POLYGON}), {"label": ("label", "nom", "name", "libelle")},
        what="a perimeter: heritage site (site patrimonial remarquable), works area, neighbourhood"),
    LayerKind.population: KindSpec(
        LayerKind.population, frozenset({POLYGON}),
        {"population": ("population", "ind", "pop", "nb_ind", "individus")},
        required=frozenset({"population"}),
        what="residents per square (INSEE Filosofi 200 m: Ind / ind)"),
}

#: a tree inventory without crown diameter: crown ≈ this share of the height (urban broadleaves,
#: a round figure of allometric tables such as Pretzsch et al. 2015; the import report says when used)
CROWN_PER_HEIGHT = 0.6
#: a tree with neither crown nor height
DEFAULT_CROWN_M = 5.0
#: a building without height: floors × this, else the default
FLOOR_HEIGHT_M = 3.0
DEFAULT_BUILDING_HEIGHT_M = 6.0
#: a green-space polygon at least this large counts as a park for "distance to the nearest park"
PARK_MIN_AREA_M2 = 5000.0
