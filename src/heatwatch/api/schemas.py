"""Response models of the public endpoints, from which their OpenAPI schemas are generated.

Routes answer pre-rendered bytes (orjson) for speed, so FastAPI cannot infer their bodies: these models
say what the answers contain, and ``tests/api/test_openapi.py`` (with schemathesis) checks live answers
against the schemas generated from them. They are built from the models they describe — the kernel's
:class:`~heatwatch.core.model.Town` and :class:`~heatwatch.core.model.Sensor`, the dataset columns of
:mod:`.datasets` (themselves the stored schema of :mod:`heatwatch.core.measurements`) — so a field added
there is documented here without writing it twice.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

from heatwatch.core.datasets import ALERT, DAILY, HOURLY, READING, TOWN_DAILY, Column, Dataset
from heatwatch.core.model import Sensor, Town

from .routes.sensors import META_FIELDS
from .routes.towns import PUBLISHED_AS
from .routes.towns import PUBLISHED_FIELDS as TOWN_FIELDS

# UTC with Z by default; times=local writes the request's zone with its offset.
UTC_Z = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?(Z|[+-]\d{2}:\d{2})$"
UtcTime = Annotated[str, Field(pattern=UTC_Z, json_schema_extra={"format": "date-time"},
                               description="ISO 8601: UTC with Z, or with its UTC offset when times=local")]
_PY_TYPES: dict[str, Any] = {"datetime": str, "date": str, "string": str, "number": float, "integer": int,
                             "boolean": bool}
_FORMATS = {"datetime": "date-time", "date": "date"}


class _Open(BaseModel):
    # Answers may carry more members than documented (endpoint-specific meta keys): not an error.
    model_config = ConfigDict(extra="allow")


class Licence(_Open):
    id: str
    url: str
    title: str | None = None


class Query(_Open):
    path: str
    params: dict[str, str]


class Meta(_Open):
    """Etalab-2.0 attribution (licence, producer, last update) and the query that produced the data;
    endpoints add their own keys (returned, next, count, thresholds...)"""

    licence: Licence
    producer: str
    last_update: Annotated[str | None, Field(pattern=UTC_Z, json_schema_extra={"format": "date-time"},
                                             description="time of the newest data point (UTC)")]
    query: Query
    returned: int | None = Field(default=None, description="rows in this answer")
    next: str | None = Field(default=None, description="URL of the next page; null on the last")
    count: int | None = Field(default=None, description="all matching rows (count=true)")


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str


class Error(BaseModel):
    """Every 4xx/5xx answer of the api (``errors.py``)."""

    error: ErrorDetail


def _column_field(c: Column) -> tuple[Any, Any]:
    if c.name == "time":
        return UtcTime, ...
    extra = {"format": _FORMATS[c.type]} if c.type in _FORMATS else None
    description = f"{c.description} ({c.unit})" if c.unit else c.description
    return _PY_TYPES[c.type] | None, Field(description=description, json_schema_extra=extra)


def row_model(ds: Dataset, name: str) -> type[BaseModel]:
    """One JSON row of a dataset: every column present, null when the value is missing."""
    return create_model(name, __base__=_Open, **{c.name: _column_field(c) for c in ds.columns})


def envelope(name: str, row: Any) -> type[BaseModel]:
    return create_model(name, __base__=_Open, meta=(Meta, ...), data=(list[row], ...))


class Point(BaseModel):
    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=2, description="longitude, latitude (WGS 84)")


def collection(name: str, properties: Any = dict[str, Any]) -> type[BaseModel]:
    """An RFC 7946 FeatureCollection whose features have ``properties``; ``meta`` is a foreign member."""
    feature = create_model(
        f"{name}Feature", __base__=_Open, type=(Literal["Feature"], ...), id=(str | None, None),
        geometry=(Point | None, Field(description="the sensor's position; null when the registry does not place it")),
        properties=(properties, ...))
    return create_model(name, __base__=_Open, __doc__="RFC 7946 FeatureCollection; `meta` (the licence envelope) "
                        "is a foreign member", type=(Literal["FeatureCollection"], ...), meta=(Meta | None, None),
                        features=(list[feature], ...))  # type: ignore[valid-type]


# Towns: the published fields of the kernel's Town (``routes/towns.py``).
TownRow = create_model(
    "TownRow", __base__=_Open,
    **{PUBLISHED_AS.get(n, n): (Town.model_fields[n].annotation, Field(description=Town.model_fields[n].description))
       for n in TOWN_FIELDS})

_READING_VALUES = {c.name: _column_field(c) for c in READING.columns if c.name in READING.fields}
STATUS = Literal["ok", "offline", "retired", "unregistered", "no_data"]

LatestRow = create_model("LatestRow", __base__=_Open, town=(str, ...), sensor=(str, ...), time=(UtcTime, ...),
                         **_READING_VALUES, status=(STATUS, ...), network=(Literal["town", "citizen"], ...),
                         trust=(Literal["official", "provisional", "confirmed"], ...))
LatestReading = create_model("LatestReading", __base__=_Open, time=(UtcTime, ...), **_READING_VALUES)
# Sensors: the registry's published fields, nullable.
SensorRow = create_model(
    "SensorRow", __base__=_Open, town=(str, ...), id=(str, ...),
    **{n: (f.annotation | None, Field(default=None, description=f.description))
       for n, f in Sensor.model_fields.items() if n in META_FIELDS and n != "trust"},
    trust=(Literal["official", "provisional", "confirmed"], ...),
    position_blurred=(bool, Field(description="true for a private site shown on the privacy grid")),
    network=(Literal["town", "citizen"], ...),
    status=(STATUS, ...), reference=(bool, ...), latest=(LatestReading | None, ...))


NETWORK = Literal["town", "citizen"]
TRUST = Literal["official", "provisional", "confirmed"]


class UhiRow(_Open):
    sensor: str
    name: str | None
    site_class: str | None
    latitude: float | None
    longitude: float | None
    position_blurred: bool = Field(description="true for a private site shown on the privacy grid")
    network: NETWORK
    trust: TRUST
    uhi: float | None = Field(description="UHI intensity (°C)")
    t: float | None = Field(description="temperature: hourly mean, or Tn for a night (°C)")
    time: UtcTime


class DcatCatalog(_Open):
    context: Any = Field(alias="@context")
    type: Literal["dcat:Catalog"] = Field(alias="@type")
    dataset: list[dict[str, Any]] = Field(alias="dcat:dataset")


class DataPackage(_Open):
    profile: Literal["tabular-data-package"]
    name: str
    licenses: list[dict[str, Any]]
    resources: list[dict[str, Any]]


def models(episodes: Dataset) -> list[type[BaseModel]]:
    """Every documented response model, named as in ``components/schemas``."""
    return [
        Meta, Error,
        envelope("Towns", TownRow), collection("TownsGeoJSON"),
        envelope("Latest", LatestRow), collection("LatestGeoJSON", LatestRow),
        envelope("Sensors", SensorRow), collection("SensorsGeoJSON", SensorRow),
        envelope("Readings", row_model(READING, "ReadingRow")),
        envelope("Hourly", row_model(HOURLY, "HourlyRow")),
        envelope("Daily", row_model(DAILY, "DailyRow")),
        envelope("Indices", row_model(TOWN_DAILY, "IndicesRow")),
        envelope("CaniculeEpisodes", row_model(episodes, "CaniculeEpisodeRow")),
        envelope("Alerts", row_model(ALERT, "AlertRow")),
        envelope("UhiSnapshot", UhiRow), collection("UhiGeoJSON", UhiRow),
        DcatCatalog, DataPackage,
    ]


def components(episodes: Dataset) -> dict[str, Any]:
    """``components/schemas`` of the OpenAPI document, generated from :func:`models`."""
    _, top = models_json_schema([(m, "serialization") for m in models(episodes)],
                                ref_template="#/components/schemas/{model}")
    return top["$defs"]
