"""The DCAT-AP catalogue (JSON-LD) and the Frictionless data package, built from :mod:`heatwatch.core.datasets`
and the monthly archives (:mod:`heatwatch.core.archives`).

What data.gouv.fr's DCAT harvester (udata) reads, and how it is written here (docs/interop.md):

* one ``dcat:Dataset`` per town and kind of data, its URI built from ``HEATWATCH_API_PUBLIC_URL`` (the harvester
  keys re-harvests on it), published by the town's organisation with the town's contact point (``[town.publisher]``
  in the towns file, else the api's producer and contact);
* its distributions: each closed month's archive files (``dcat:downloadURL`` to the file's stable URL,
  ``dcat:byteSize``, ``spdx:checksum`` SHA-256, ``dct:issued``, ``dct:temporal`` of the month, the version note),
  and the live API query as an access-only distribution served by the API (``dcat:accessService``);
* ``dct:accrualPeriodicity`` in the EU frequency vocabulary as udata maps it: ``UPDATE_CONT`` for continuously
  updated data (udata reads the EU ``CONT`` as "several times a day"), ``HOURLY``, ``DAILY``;
* ``dct:spatial``: the commune's INSEE URI with a WKT and GeoJSON polygon (udata only keeps polygons) and the
  INSEE code; ``dcat:theme`` from the EU data-theme vocabulary; ``dct:conformsTo`` the dataset's Table Schema;
* two ``dcat:DataService``: the open-data API (OpenAPI) and the SensorThings API;
* provenance per source of readings (:mod:`heatwatch.core.provenance`): each dataset's ``dct:provenance`` names
  its sources (the town's network, residents, sensor.community) with their licences; a per-sensor dataset of a
  town with ODbL sources has its distributions under the ODbL (share-alike, the licence the rows together can be
  offered under) plus the town network's rows alone (``network=town``) under the Licence Ouverte.

Every referenced node carries its DCAT-AP class, so the DCAT-AP 2.1.1 SHACL shapes check their ranges
(``tests/api/test_archives.py`` runs pyshacl with them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from heatwatch.core.archives import Manifest
from heatwatch.core.datasets import ALERT, DAILY, HOURLY, READING, TOWN_DAILY, Dataset, table_schema
from heatwatch.core.measurements import qc_flag_table
from heatwatch.core.model import Sensor, Town
from heatwatch.core.provenance import ETALAB, LICENCES, ODBL, Source, combined_licence, licences, sources
from heatwatch.core.settings import ApiOptions

from .formats import LICENCE

EU_FREQ = "http://publications.europa.eu/resource/authority/frequency/"
EU_FILETYPE = "http://publications.europa.eu/resource/authority/file-type/"
EU_THEME = "http://publications.europa.eu/resource/authority/data-theme/"
EU_ACCESS = "http://publications.europa.eu/resource/authority/access-right/PUBLIC"
IANA = "https://www.iana.org/assignments/media-types/"
INSEE_COMMUNE = "http://id.insee.fr/geo/commune/"
GEOJSON_LITERAL = "https://www.iana.org/assignments/media-types/application/vnd.geo+json"
WKT_LITERAL = "http://www.opengis.net/ont/geosparql#wktLiteral"
STA_STANDARD = "http://www.opengis.net/doc/is/sensorthings/1.1"
ADMS_PUBLISHER_TYPE = "http://purl.org/adms/publishertype/"
ADMS_LICENCE_TYPE = "http://purl.org/adms/licencetype/"
AVAILABILITY = "http://publications.europa.eu/resource/authority/planned-availability/"
OPENAPI_STANDARD = "https://spec.openapis.org/oas/v3.1.0"
#: Half-size of the box given as a town's spatial coverage (degrees latitude; longitude scaled): the area the
#: sensors cover, not the commune's boundary (which heatwatch does not hold).
BOX_DEG = 0.04

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "adms": "http://www.w3.org/ns/adms#",
    "locn": "http://www.w3.org/ns/locn#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "spdx": "http://spdx.org/rdf/terms#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "dcatap": "http://data.europa.eu/r5r/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "dcat:startDate": {"@type": "xsd:dateTime"},
    "dcat:endDate": {"@type": "xsd:dateTime"},
    "dct:issued": {"@type": "xsd:dateTime"},
    "dct:modified": {"@type": "xsd:dateTime"},
    "dcat:byteSize": {"@type": "xsd:decimal"},  # DCAT 2's range (DCAT-AP 2.1 checks it; 3.0 reads it too)
    "spdx:checksumValue": {"@type": "xsd:hexBinary"},
    "dcat:downloadURL": {"@type": "@id"},
    "dcat:accessURL": {"@type": "@id"},
    "dcat:endpointURL": {"@type": "@id"},
    "dcat:endpointDescription": {"@type": "@id"},
    "dcat:servesDataset": {"@type": "@id"},
    "dcatap:availability": {"@id": "http://data.europa.eu/r5r/availability", "@type": "@id"},
}

# Published per town: (dataset, API path, formats of the live query).
PUBLISHED: tuple[tuple[Dataset, str, tuple[str, ...]], ...] = (
    (READING, "/v1/readings", ("csv", "json", "parquet")),
    (HOURLY, "/v1/hourly", ("csv", "json", "parquet")),
    (DAILY, "/v1/daily", ("csv", "json", "parquet")),
    (TOWN_DAILY, "/v1/indices", ("csv", "json", "parquet")),
    (ALERT, "/v1/alerts", ("csv", "json", "parquet")),
)
_FILETYPE = {"csv": "CSV", "json": "JSON", "parquet": "PARQUET", "geojson": "GEOJSON", "csv.gz": "CSV"}
_MEDIA = {"csv": "text/csv", "json": "application/json", "parquet": "application/vnd.apache.parquet",
          "geojson": "application/geo+json", "csv.gz": "text/csv"}
#: The dataset's frequency (core/datasets.py, EU vocabulary) → the term udata maps to the same meaning.
UDATA_FREQUENCY = {"CONT": "UPDATE_CONT"}
THEMES = (("ENVI", "Environnement"), ("REGI", "Régions et villes"))


def _url(base: str, path: str, params: Mapping[str, str]) -> str:
    return f"{base}{path}?{urlencode(params)}"


def _concept(uri: str, label: str | None = None, kind: str = "skos:Concept") -> dict[str, Any]:
    node: dict[str, Any] = {"@id": uri, "@type": kind}
    if label:
        node["skos:prefLabel"] = label
    return node


def _licence(lic: Mapping[str, str] = LICENCE) -> dict[str, Any]:
    kind = "ShareAlike" if lic["id"] == ODBL["id"] else "Attribution"
    return {"@id": lic["url"], "@type": "dct:LicenseDocument", "dct:title": lic["title"],
            "dct:type": {"@id": ADMS_LICENCE_TYPE + kind, "@type": "skos:Concept", "skos:prefLabel": kind}}


def _provenance(ds: Dataset, srcs: list[Source]) -> dict[str, Any]:
    """The dataset's sources and their licences, in words (``dct:ProvenanceStatement``)."""
    if not srcs:
        text = "Sources: the town's own sensor network, under the Licence Ouverte 2.0."
    elif ds.per_sensor:
        text = ("Sources, each row under its source's licence (its sensor's network and trust are columns): "
                + "; ".join(s.describe() for s in srcs) + ".")
        if combined_licence(srcs) is ODBL:
            text += (" As a whole under the ODbL 1.0 (share-alike); the town network's rows alone (network=town) "
                     "under the Licence Ouverte 2.0.")
    else:
        text = ("Computed by heatwatch from the town's network and its confirmed citizen sensors (weighted; "
                "network=town gives the town network's values alone). Sources: "
                + "; ".join(s.describe() for s in srcs) + ".")
        if combined_licence(srcs) is ODBL:
            text += " Contains information from the ODbL sources above, made available under the ODbL 1.0."
    return {"@type": "dct:ProvenanceStatement", "rdfs:label": text}


def _publisher(base: str, town: Town | None, config: ApiOptions) -> dict[str, Any]:
    pub = town.publisher if town else None
    name = (pub.name if pub and pub.name else None) or config.producer
    node: dict[str, Any] = {"@id": f"{base}/v1/catalog#publisher-{town.id}" if town and pub and pub.name
                            else f"{base}/v1/catalog#publisher", "@type": ["foaf:Agent", "foaf:Organization"],
                            "foaf:name": name,
                            "dct:type": {"@id": ADMS_PUBLISHER_TYPE + "LocalAuthority", "@type": "skos:Concept",
                                         "skos:prefLabel": "Local Authority"}}
    if pub and pub.url:
        node["foaf:homepage"] = {"@id": pub.url, "@type": "foaf:Document"}
    return node


def _contact(town: Town | None, config: ApiOptions) -> dict[str, Any]:
    pub = town.publisher if town else None
    email = (pub.email if pub and pub.email else None) or config.contact_email
    name = (pub.contact if pub and pub.contact else None) or (pub.name if pub and pub.name else None) \
        or config.producer
    node: dict[str, Any] = {"@type": ["vcard:Kind", "vcard:Organization"], "vcard:fn": name,
                            "vcard:hasEmail": {"@id": f"mailto:{email}"}}
    if pub and pub.url:
        node["vcard:hasURL"] = {"@id": pub.url}
    return node


def _spatial(town: Town) -> dict[str, Any]:
    """The commune as INSEE names it, with a box around the town (udata keeps polygons, not points)."""
    lat, lon, d = town.latitude, town.longitude, BOX_DEG
    dl = d * 1.5  # a degree of longitude is about two thirds of one of latitude at these latitudes
    ring = [[lon - dl, lat - d], [lon + dl, lat - d], [lon + dl, lat + d], [lon - dl, lat + d], [lon - dl, lat - d]]
    wkt = "POLYGON((" + ", ".join(f"{x:.4f} {y:.4f}" for x, y in ring) + "))"
    geojson = json.dumps({"type": "Polygon", "coordinates": [[[round(x, 4), round(y, 4)] for x, y in ring]]})
    # One geometry (DCAT-AP allows one), as GeoJSON: the literal type udata's harvester reads.
    return {"@id": INSEE_COMMUNE + town.insee, "@type": "dct:Location",
            "skos:prefLabel": f"{town.name} ({town.insee})", "dct:identifier": town.insee,
            "locn:geometry": {"@value": geojson, "@type": GEOJSON_LITERAL},
            "dcat:bbox": {"@value": wkt, "@type": WKT_LITERAL},
            "dcat:centroid": {"@value": f"POINT({lon:.4f} {lat:.4f})", "@type": WKT_LITERAL}}


def _format(fmt: str) -> dict[str, Any]:
    return {"@id": EU_FILETYPE + _FILETYPE[fmt], "@type": "dct:MediaTypeOrExtent"}


def _media(fmt: str) -> dict[str, Any]:
    return {"@id": IANA + _MEDIA[fmt], "@type": "dct:MediaType"}


def services(base: str, dataset_ids: list[str]) -> list[dict[str, Any]]:
    """The API itself, and its SensorThings view, as data services serving every dataset."""
    common = {"dct:license": _licence(), "dct:accessRights": {"@id": EU_ACCESS, "@type": "dct:RightsStatement"},
              "dcat:servesDataset": dataset_ids}
    return [
        {"@id": f"{base}/v1/catalog#api", "@type": "dcat:DataService",
         "dct:title": "heatwatch — API de données ouvertes",
         "dct:description": "JSON, CSV, GeoJSON, Parquet and XLSX answers on any range (within caps), with the "
                            "licence and attribution on every answer; OpenAPI description.",
         "dcat:endpointURL": f"{base}/v1", "dcat:endpointDescription": f"{base}/openapi.json",
         "dct:conformsTo": {"@id": OPENAPI_STANDARD, "@type": "dct:Standard"}, **common},
        {"@id": f"{base}/v1/catalog#sta", "@type": "dcat:DataService",
         "dct:title": "heatwatch — OGC SensorThings API v1.1",
         "dct:description": "The sensors, their datastreams and observations through the OGC SensorThings API "
                            "(read-only).",
         "dcat:endpointURL": f"{base}/sta/v1.1", "dcat:endpointDescription": f"{base}/sta/v1.1",
         "dct:conformsTo": {"@id": STA_STANDARD, "@type": "dct:Standard"}, **common},
    ]


def archive_distributions(base: str, ident: str, ds: Dataset, town: Town, manifests: list[Manifest],
                          licence: Mapping[str, str] = LICENCE) -> list[dict[str, Any]]:
    """Each closed month's files of ``ds``: the real downloads, with size, checksum, issue date and period."""
    out = []
    schema = {"@id": f"{base}/v1/schemas/{ds.id}.json", "@type": "dct:Standard"}
    for m in manifests:
        current = m.current
        if current is None:
            continue
        for f in current.files:
            if f.dataset != ds.id:
                continue
            url = f"{base}/v1/archives/{town.id}/{m.month}/{f.dataset}.{f.format}"
            label = "CSV compressé (gzip)" if f.format == "csv.gz" else "Parquet"
            dist: dict[str, Any] = {
                "@id": f"{base}/v1/catalog#{ident}-{m.month}-{f.format.replace('.', '-')}",
                "@type": "dcat:Distribution",
                "dct:title": f"{ds.title} — {town.name} — {m.month} ({label})",
                "dct:description": f"{ds.title}, {town.name}, {m.month} (local calendar month), version "
                                   f"{current.version}: {current.note}. {f.rows} rows.",
                "dcat:downloadURL": url, "dcat:accessURL": url,
                "dcat:byteSize": str(f.bytes),  # a string: JSON-LD types only strings (a number is xsd:integer)
                "spdx:checksum": {"@type": "spdx:Checksum",
                                  "spdx:algorithm": {"@id": "spdx:checksumAlgorithm_sha256",
                                                     "@type": "spdx:ChecksumAlgorithm"},
                                  "spdx:checksumValue": f.sha256},
                "dct:issued": current.issued,
                "dct:temporal": {"@type": "dct:PeriodOfTime", "dcat:startDate": m.start, "dcat:endDate": m.end},
                "dct:format": _format(f.format), "dcat:mediaType": _media(f.format),
                # The licence the manifest records for the file's rows; files issued before: the dataset's.
                "dct:license": _licence(LICENCES.get(f.licence or "", licence)), "dct:conformsTo": schema,
                "dcatap:availability": AVAILABILITY + "STABLE",
                "adms:versionNotes": current.note,
            }
            if f.compression == "gzip":
                dist["dcat:compressFormat"] = {"@id": IANA + "application/gzip", "@type": "dct:MediaType"}
            out.append(dist)
    return out


def dcat_catalogue(base: str, towns: Mapping[str, Town], config: ApiOptions,
                   coverage: Mapping[tuple[str, str], tuple[str | None, str | None]],
                   archives: Mapping[str, list[Manifest]] | None = None,
                   sensors: Mapping[str, list[Sensor]] | None = None) -> dict[str, Any]:
    """``coverage[(dataset id, town id)]`` = (first, last) ISO times, None when there is no data yet;
    ``archives[town id]``: the town's archived months (:func:`heatwatch.core.archives.list_manifests`);
    ``sensors[town id]``: the town's registered sensors, retired included (the sources of its data)."""
    archives = archives or {}
    sensors = sensors or {}
    datasets = []
    for town in towns.values():
        srcs = sources(sensors.get(town.id, []))
        for ds, path, formats in PUBLISHED:
            first, last = coverage.get((ds.id, town.id), (None, None))
            ident = f"heatwatch-{town.id}-{ds.id}"
            frequency = UDATA_FREQUENCY.get(ds.frequency, ds.frequency)
            # Rows of several sources: the licence they can be offered under together (core/provenance.py).
            lic = combined_licence(srcs) if ds.per_sensor else ETALAB
            licence = _licence(lic)
            live = [
                {
                    "@id": f"{base}/v1/catalog#{ident}-api-{fmt}",
                    "@type": "dcat:Distribution",
                    "dct:title": f"{ds.title} — {town.name} (API, {_FILETYPE[fmt]})",
                    "dct:description": f"The API query: the last days by default, any range with from/to "
                                       f"(see {base}/docs). Monthly files are the other distributions.",
                    "dcat:accessURL": _url(base, path, {"town": town.id, "format": fmt}),
                    "dcat:accessService": {"@id": f"{base}/v1/catalog#api", "@type": "dcat:DataService"},
                    "dct:format": _format(fmt), "dcat:mediaType": _media(fmt), "dct:license": licence,
                    "dcatap:availability": AVAILABILITY + "AVAILABLE",
                    **({"dct:conformsTo": {"@id": f"{base}/v1/schemas/{ds.id}.json", "@type": "dct:Standard"}}
                       if fmt == "csv" else {}),
                }
                for fmt in formats
            ]
            if lic is not ETALAB:
                # The town network's rows alone stay under the Licence Ouverte: a distribution of their own.
                live += [
                    {
                        "@id": f"{base}/v1/catalog#{ident}-api-town-{fmt}",
                        "@type": "dcat:Distribution",
                        "dct:title": f"{ds.title} — {town.name}, réseau de la ville (API, {_FILETYPE[fmt]})",
                        "dct:description": "The API query restricted to the town's own network (network=town): "
                                           "no citizen data, under the Licence Ouverte 2.0.",
                        "dcat:accessURL": _url(base, path, {"town": town.id, "network": "town", "format": fmt}),
                        "dcat:accessService": {"@id": f"{base}/v1/catalog#api", "@type": "dcat:DataService"},
                        "dct:format": _format(fmt), "dcat:mediaType": _media(fmt), "dct:license": _licence(ETALAB),
                        "dcatap:availability": AVAILABILITY + "AVAILABLE",
                        **({"dct:conformsTo": {"@id": f"{base}/v1/schemas/{ds.id}.json", "@type": "dct:Standard"}}
                           if fmt == "csv" else {}),
                    }
                    for fmt in formats
                ]
            entry: dict[str, Any] = {
                "@id": f"{base}/v1/catalog#{ident}",
                "@type": "dcat:Dataset",
                "dct:identifier": ident,
                "dct:title": f"{ds.title} — {town.name}",
                "dct:description": f"{ds.description} Town: {town.name} (INSEE {town.insee}). Monthly files "
                                   f"(CSV.gz, Parquet) with their SHA-256 once a month closes; the API for any "
                                   f"range. Columns, units and quality flags: {base}/v1/schemas/{ds.id}.json, "
                                   f"{base}/v1/qc-flags.",
                "dcat:keyword": ["îlot de chaleur urbain", "température", "canicule", "climat urbain", town.name,
                                 ds.id],
                "dcat:theme": [_concept(EU_THEME + code, label) for code, label in THEMES],
                "dct:publisher": _publisher(base, town, config),
                "dcat:contactPoint": _contact(town, config),
                "dct:license": licence,
                "dct:provenance": _provenance(ds, srcs),
                "dct:accessRights": {"@id": EU_ACCESS, "@type": "dct:RightsStatement"},
                "dct:accrualPeriodicity": {"@id": EU_FREQ + frequency, "@type": "dct:Frequency"},
                "dct:spatial": _spatial(town),
                "dct:language": {"@id": "http://publications.europa.eu/resource/authority/language/FRA",
                                 "@type": "dct:LinguisticSystem"},
                "dct:conformsTo": {"@id": f"{base}/v1/schemas/{ds.id}.json", "@type": "dct:Standard"},
                "dcat:landingPage": {"@id": f"{base}/docs", "@type": "foaf:Document"},
                "dcat:distribution": [*archive_distributions(base, ident, ds, town, archives.get(town.id, []),
                                                             lic), *live],
            }
            if first or last:
                temporal: dict[str, Any] = {"@type": "dct:PeriodOfTime"}
                if first:
                    temporal["dcat:startDate"] = first
                if last:
                    temporal["dcat:endDate"] = last
                entry["dct:temporal"] = temporal
            if last:
                entry["dct:modified"] = last
            datasets.append(entry)
    ids = [d["@id"] for d in datasets]
    starts = [c[0] for c in coverage.values() if c[0]]
    ends = [c[1] for c in coverage.values() if c[1]]
    dates: dict[str, Any] = {}
    if starts:
        dates["dct:issued"] = min(starts)
    if ends:
        dates["dct:modified"] = max(ends)
    return {
        "@context": CONTEXT,
        "@id": f"{base}/v1/catalog",
        "@type": "dcat:Catalog",
        "dct:title": "heatwatch — îlots de chaleur urbains (" + ", ".join(t.name for t in towns.values()) + ")",
        "dct:description": "Temperature and humidity measured by urban sensor networks, and the heat indicators "
                           "computed from them, as open data under the Licence Ouverte 2.0 (residents' and "
                           "sensor.community data under their own licence: each dataset's provenance).",
        "dct:publisher": _publisher(base, None, config),
        "dct:license": _licence(),
        "dct:language": {"@id": "http://publications.europa.eu/resource/authority/language/FRA",
                         "@type": "dct:LinguisticSystem"},
        "foaf:homepage": {"@id": f"{base}/docs", "@type": "foaf:Document"},
        "dct:spatial": [_spatial(t) for t in towns.values()],
        **dates,
        "dcat:themeTaxonomy": {"@id": EU_THEME.rstrip("/"), "@type": "skos:ConceptScheme",
                               "dct:title": "Data theme (EU Publications Office)"},
        "dcat:dataset": datasets,
        "dcat:service": services(base, ids),
    }


QC_FLAGS_SCHEMA: dict[str, Any] = {
    "fields": [
        {"name": "bit", "type": "integer", "description": "the flag's value: qc is the sum of the flags set",
         "constraints": {"required": True, "unique": True, "minimum": 1}},
        {"name": "name", "type": "string", "constraints": {"required": True, "unique": True}},
        {"name": "meaning", "type": "string"},
        {"name": "value_unusable", "type": "boolean", "description": "the hourly value is left out of indices"},
        {"name": "day_unusable", "type": "boolean",
         "description": "the sensor-day is left out of daily statistics"},
        {"name": "information", "type": "boolean", "description": "never makes anything unusable"},
    ],
    "primaryKey": ["bit"],
}


def qc_flags_resource(base: str) -> dict[str, Any]:
    """The qc bit table inline, so the package alone says what every ``qc`` value means."""
    names = [f["name"] for f in QC_FLAGS_SCHEMA["fields"]]
    rows = [[getattr(f, n) for n in names] for f in qc_flag_table()]
    return {"name": "qc-flags", "title": "The qc bit table",
            "description": f"What each bit of the qc field of hourly and daily rows means; qc = 0: every check "
                           f"passed. Also at {base}/v1/qc-flags (JSON, CSV).",
            "profile": "tabular-data-resource", "data": [names, *rows], "schema": QC_FLAGS_SCHEMA}


_CSV_DIALECT = {"delimiter": ",", "lineTerminator": "\r\n", "quoteChar": '"', "doubleQuote": True, "header": True}


def _dp_licence(lic: Mapping[str, str]) -> dict[str, str]:
    return {"name": lic["spdx"], "path": lic["url"], "title": lic["title"]}


def _dp_sources(srcs: list[Source]) -> list[dict[str, str]]:
    return [{"title": s.describe(), **({"path": s.kind.path} if s.kind.path else {})} for s in srcs]


def datapackage(base: str, towns: Mapping[str, Town], config: ApiOptions,
                archives: Mapping[str, list[Manifest]] | None = None,
                sensors: Mapping[str, list[Sensor]] | None = None) -> dict[str, Any]:
    """A Frictionless Data Package: each town's live CSV export of each dataset, and each closed month's CSV.gz
    archive file with its SHA-256 as ``hash``. No ``bytes``: frictionless 5 counts no bytes of a remote file and
    would report every archive invalid ("actual is None"); the size is in ``/v1/archives`` and the catalogue.

    Each resource names its ``sources`` and ``licenses`` (:mod:`heatwatch.core.provenance`): a per-sensor resource of
    a town with ODbL sources lists the ODbL first (the rows together), then its sources' other licences, and the
    town network's rows alone are a resource of their own (``network=town``) under the Licence Ouverte."""
    licenses = [_dp_licence(LICENCE)]
    all_licences: dict[str, dict[str, str]] = {LICENCE["id"]: LICENCE}
    all_sources: dict[str, dict[str, str]] = {}
    resources: list[dict[str, Any]] = [qc_flags_resource(base)]
    for town in towns.values():
        srcs = sources((sensors or {}).get(town.id, []))
        for src in srcs:
            all_licences.setdefault(src.licence["id"], src.licence)
            all_sources.setdefault(src.kind.id, {"title": f"{src.kind.title} ({src.kind.producer})",
                                                 **({"path": src.kind.path} if src.kind.path else {})})
        combined = combined_licence(srcs)
        mixed = [_dp_licence(combined), *(_dp_licence(x) for x in licences(srcs) if x["id"] != combined["id"])]
        for ds, path, _ in PUBLISHED:
            resources.append({
                "name": f"{ds.id}-{town.id}",
                "title": f"{ds.title} — {town.name}",
                "description": ds.description,
                "path": _url(base, path, {"town": town.id, "format": "csv"}),
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "profile": "tabular-data-resource",
                "dialect": _CSV_DIALECT,
                "schema": table_schema(ds),
                "licenses": mixed if ds.per_sensor else licenses,
                "sources": _dp_sources(srcs),
            })
            if ds.per_sensor and combined["id"] != LICENCE["id"]:
                resources.append({
                    **resources[-1], "name": f"{ds.id}-{town.id}-town-network",
                    "title": f"{ds.title} — {town.name}, réseau de la ville",
                    "description": f"{ds.description} The town's own network only (network=town).",
                    "path": _url(base, path, {"town": town.id, "network": "town", "format": "csv"}),
                    "licenses": licenses, "sources": _dp_sources([s for s in srcs if s.kind.id == "town_network"]),
                })
        by_id = {ds.id: ds for ds, _, _ in PUBLISHED}
        for m in (archives or {}).get(town.id, []):
            for f in m.current.files if m.current else []:
                ds = by_id.get(f.dataset)
                if ds is None or f.format != "csv.gz":  # a tabular data package holds CSV; Parquet is in DCAT
                    continue
                resources.append({
                    "name": f"{ds.id}-{town.id}-{m.month}",
                    "title": f"{ds.title} — {town.name} — {m.month}",
                    "description": f"{ds.description} Monthly archive, version {m.current.version}: "
                                   f"{m.current.note}.",
                    "path": f"{base}/v1/archives/{town.id}/{m.month}/{f.dataset}.csv.gz",
                    "format": "csv",
                    "compression": "gz",
                    "mediatype": "text/csv",
                    "encoding": "utf-8",
                    "hash": f"sha256:{f.sha256}",
                    "profile": "tabular-data-resource",
                    "dialect": _CSV_DIALECT,
                    "schema": table_schema(ds),
                    "licenses": mixed if ds.per_sensor else licenses,
                    "sources": _dp_sources(srcs),
                })
    return {
        "profile": "tabular-data-package",
        "name": "heatwatch",
        "title": "heatwatch — îlots de chaleur urbains (Vitré, Saint-Omer)",
        "description": "CSV exports of the heatwatch open-data API and its monthly archives. Times are UTC "
                       "(ISO 8601 with Z). An export's path returns the default time window (add from/to to the "
                       "URL for others); an archive's path is the month's current version.",
        "homepage": f"{base}/docs",
        "licenses": [_dp_licence(x) for x in all_licences.values()],
        "sources": list(all_sources.values()),
        "contributors": [{"title": config.producer, "email": config.contact_email, "role": "publisher"}],
        "resources": resources,
    }
