"""``/sta/v1.1``: the OGC SensorThings API (Sensing, read-only) over heatwatch's registry and stored data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from ..deps import CtxDep
from ..formats import JSONBytes, dumps
from ..sensorinfo import list_sensors
from .model import ENTITY_SETS, Model
from .observations import Observations
from .odata import parse_options
from .service import NotFound, Service

PREFIX = "/sta/v1.1"
router = APIRouter(prefix=PREFIX, tags=["SensorThings API"])

#: The conformance classes served (OGC 18-088 v1.1): docs/interop.md lists each requirement and its test.
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]

Top = Annotated[str | None, Query(alias="$top", max_length=12, description="page size (default 100, at most the "
                                                                         "api's page cap)")]
Skip = Annotated[str | None, Query(alias="$skip", max_length=12, description="entities to skip")]
Count = Annotated[str | None, Query(alias="$count", max_length=5, description="true: add @iot.count")]
Filter = Annotated[str | None, Query(alias="$filter", max_length=2000, description=(
    "comparisons (eq ne gt ge lt le), and/or/not, parentheses, string and geospatial functions (docs/interop.md)"))]
OrderBy = Annotated[str | None, Query(alias="$orderby", max_length=500, description="properties, asc or desc")]
Select = Annotated[str | None, Query(alias="$select", max_length=500, description="properties to return")]
Expand = Annotated[str | None, Query(alias="$expand", max_length=1000, description="related entities to embed, "
                                                                                   "with nested options")]
SkipToken = Annotated[str | None, Query(alias="$skiptoken", max_length=60, description="from @iot.nextLink")]

STA_RESPONSES: dict[int | str, dict[str, Any]] = {400: {"description": "a query option that cannot be read"},
                                                  404: {"description": "no such entity or path"}}


def _service(ctx: Any) -> Service:
    model = Model(list_sensors(ctx.registry, None, include_retired=True), ctx.settings.towns)
    base = f"{ctx.base_url}{PREFIX}"
    obs = Observations(ctx.store, model, base, raw_days=ctx.config.max_raw_days,
                       hourly_days=ctx.config.max_hourly_days)
    return Service(model, obs, base, ctx.config.max_page_size)


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


@router.get("", summary="SensorThings service root", description=(
    "The entity sets and serverSettings.conformance of heatwatch's read-only OGC SensorThings API v1.1."))
async def root(ctx: CtxDep) -> Response:
    base = f"{ctx.base_url}{PREFIX}"
    return _json({"value": [{"name": s, "url": f"{base}/{s}"} for s in ENTITY_SETS],
                  "serverSettings": {"conformance": CONFORMANCE}})


@router.get("/{resource_path:path}", summary="SensorThings resources", responses=STA_RESPONSES,
            response_class=JSONBytes, description=(
                "Things (sensor sites), Locations and FeaturesOfInterest (positions, blurred for private sites), "
                "HistoricalLocations, Sensors (device models), ObservedProperties, Datastreams (per sensor: raw "
                "temperature and humidity, hourly means) and Observations, with $filter, $orderby, $top, $skip, "
                "$count, $select and $expand. Paths, ids and conformance: docs/interop.md."))
async def resource(ctx: CtxDep, resource_path: str, top: Top = None, skip: Skip = None, count: Count = None,
                   filter: Filter = None, orderby: OrderBy = None, select: Select = None, expand: Expand = None,
                   skiptoken: SkipToken = None) -> Response:
    if resource_path.strip("/") == "":
        return await root(ctx)
    opts = parse_options({"$top": top, "$skip": skip, "$count": count, "$filter": filter, "$orderby": orderby,
                          "$select": select, "$expand": expand, "$skiptoken": skiptoken})
    svc = _service(ctx)
    target = svc.resolve(resource_path)
    target.path = resource_path.strip("/")
    if target.kind == "collection":
        return _json(await svc.collection(target, opts))
    if target.kind == "ref":
        page = await svc.collection(target, opts)
        refs: dict[str, Any] = {k: v for k, v in page.items() if k != "value"}
        refs["value"] = [{"@iot.selfLink": e["@iot.selfLink"]} for e in page["value"] if "@iot.selfLink" in e]
        return _json(refs)
    assert target.id is not None
    entity = await svc.fetch(target.set, target.id)
    if target.kind == "ref1":
        return _json({"@iot.selfLink": svc.self_link(target.set, target.id)})
    if target.kind == "entity":
        return _json(await svc.render(target.set, entity, opts))
    rendered = await svc.render(target.set, entity, parse_options({}))
    prop = target.prop or ""
    key = {"id": "@iot.id", "selfLink": "@iot.selfLink"}.get(prop, prop)
    if key not in rendered:
        raise NotFound(f"{target.set} has no property {prop!r}")
    if target.kind == "value":
        value = rendered[key]
        text = value if isinstance(value, str) else dumps(value).decode()
        return Response(text.encode(), media_type="text/plain; charset=utf-8")
    return _json({prop: rendered[key]})
