"""The DCAT-AP catalogue (JSON-LD) and the Frictionless data package, built from :mod:`.datasets`.

DCAT-AP is what data.gouv.fr's harvester reads: a ``dcat:Catalog`` with one ``dcat:Dataset`` per
town and kind of data, each with its distributions (one per format), licence, temporal coverage,
update frequency (EU frequency vocabulary), publisher and contact point. Terms follow DCAT-AP 2.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from heatwatch.core.datasets import ALERT, DAILY, HOURLY, READING, TOWN_DAILY, Dataset, table_schema
from heatwatch.core.model import Town
from heatwatch.core.settings import ApiOptions

from .formats import LICENCE

EU_FREQ = "http://publications.europa.eu/resource/authority/frequency/"
EU_FILETYPE = "http://publications.europa.eu/resource/authority/file-type/"
IANA = "https://www.iana.org/assignments/media-types/"

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "adms": "http://www.w3.org/ns/adms#",
    "locn": "http://www.w3.org/ns/locn#",
    "dcat:startDate": {"@type": "xsd:dateTime"},
    "dcat:endDate": {"@type": "xsd:dateTime"},
    "dct:issued": {"@type": "xsd:dateTime"},
    "dct:modified": {"@type": "xsd:dateTime"},
    "dcat:downloadURL": {"@type": "@id"},
    "dcat:accessURL": {"@type": "@id"},
    "dcat:landingPage": {"@type": "@id"},
    "dct:conformsTo": {"@type": "@id"},
}

# Published per town: (dataset, API path, formats). Frequencies: CONT for raw data and alerts.
PUBLISHED: tuple[tuple[Dataset, str, tuple[str, ...]], ...] = (
    (READING, "/v1/readings", ("csv", "json", "parquet")),
    (HOURLY, "/v1/hourly", ("csv", "json", "parquet")),
    (DAILY, "/v1/daily", ("csv", "json", "parquet")),
    (TOWN_DAILY, "/v1/indices", ("csv", "json", "parquet")),
    (ALERT, "/v1/alerts", ("csv", "json", "parquet")),
)
_FILETYPE = {"csv": "CSV", "json": "JSON", "parquet": "PARQUET", "geojson": "GEOJSON"}
_MEDIA = {"csv": "text/csv", "json": "application/json", "parquet": "application/vnd.apache.parquet",
          "geojson": "application/geo+json"}


def _url(base: str, path: str, params: Mapping[str, str]) -> str:
    return f"{base}{path}?{urlencode(params)}"


def dcat_catalogue(base: str, towns: Mapping[str, Town], config: ApiOptions,
                   coverage: Mapping[tuple[str, str], tuple[str | None, str | None]]) -> dict[str, Any]:
    """``coverage[(dataset id, town id)]`` = (first, last) ISO times, None when there is no data yet."""
    publisher = {"@id": f"{base}/#publisher", "@type": "foaf:Agent", "foaf:name": config.producer}
    contact = {"@type": "vcard:Organization", "vcard:fn": config.producer,
               "vcard:hasEmail": {"@id": f"mailto:{config.contact_email}"}}
    licence = {"@id": LICENCE["url"], "@type": "dct:LicenseDocument", "dct:title": LICENCE["title"]}
    datasets = []
    for town in towns.values():
        for ds, path, formats in PUBLISHED:
            first, last = coverage.get((ds.id, town.id), (None, None))
            ident = f"heatwatch-{town.id}-{ds.id}"
            entry: dict[str, Any] = {
                "@id": f"{base}/v1/catalog#{ident}",
                "@type": "dcat:Dataset",
                "dct:identifier": ident,
                "dct:title": f"{ds.title} — {town.name}",
                "dct:description": f"{ds.description} Town: {town.name} (INSEE {town.insee}).",
                "dcat:keyword": ["îlot de chaleur urbain", "température", "canicule", town.name, ds.id],
                "dct:publisher": publisher,
                "dcat:contactPoint": contact,
                "dct:license": licence,
                "dct:accessRights": {"@id": "http://publications.europa.eu/resource/authority/access-right/PUBLIC"},
                "dct:accrualPeriodicity": {"@id": EU_FREQ + ds.frequency},
                "dct:spatial": {"@type": "dct:Location",
                                "@id": f"https://geo.api.gouv.fr/communes/{town.insee}",
                                "locn:geometry": f"POINT({town.longitude} {town.latitude})"},
                "dcat:landingPage": f"{base}/docs",
                "dcat:distribution": [
                    {
                        "@id": f"{base}/v1/catalog#{ident}-{fmt}",
                        "@type": "dcat:Distribution",
                        "dct:title": f"{ds.title} — {town.name} ({_FILETYPE[fmt]})",
                        "dcat:accessURL": _url(base, path, {"town": town.id, "format": fmt}),
                        "dcat:downloadURL": _url(base, path, {"town": town.id, "format": fmt}),
                        "dct:format": {"@id": EU_FILETYPE + _FILETYPE[fmt]},
                        "dcat:mediaType": {"@id": IANA + _MEDIA[fmt]},
                        "dct:license": licence,
                        **({"dct:conformsTo": f"{base}/v1/datapackage.json"} if fmt == "csv" else {}),
                    }
                    for fmt in formats
                ],
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
    return {
        "@context": CONTEXT,
        "@id": f"{base}/v1/catalog",
        "@type": "dcat:Catalog",
        "dct:title": "heatwatch — îlots de chaleur urbains (Vitré, Saint-Omer)",
        "dct:description": "Temperature and humidity measured by urban sensor networks, and the heat indicators "
                           "computed from them, as open data under the Licence Ouverte 2.0.",
        "dct:publisher": publisher,
        "dct:license": licence,
        "dct:language": {"@id": "http://publications.europa.eu/resource/authority/language/FRA"},
        "foaf:homepage": {"@id": f"{base}/docs"},
        "dcat:dataset": datasets,
    }


def datapackage(base: str, towns: Mapping[str, Town], config: ApiOptions) -> dict[str, Any]:
    """A Frictionless Data Package describing each CSV export (one resource per town and dataset)."""
    resources = []
    for town in towns.values():
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
                "dialect": {"delimiter": ",", "lineTerminator": "\r\n", "quoteChar": '"', "doubleQuote": True,
                            "header": True},
                "schema": table_schema(ds),
                "licenses": [{"name": LICENCE["spdx"], "path": LICENCE["url"], "title": LICENCE["title"]}],
            })
    return {
        "profile": "tabular-data-package",
        "name": "heatwatch",
        "title": "heatwatch — îlots de chaleur urbains (Vitré, Saint-Omer)",
        "description": "CSV exports of the heatwatch open-data API. Times are UTC (ISO 8601 with Z). Each "
                       "resource path returns the default time window; add from/to to the URL for others.",
        "homepage": f"{base}/docs",
        "licenses": [{"name": LICENCE["spdx"], "path": LICENCE["url"], "title": LICENCE["title"]}],
        "contributors": [{"title": config.producer, "email": config.contact_email, "role": "publisher"}],
        "resources": resources,
    }
