"""The DCAT-AP catalogue (JSON-LD) for data.gouv.fr harvesting and the Frictionless datapackage.json."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from heatwatch.core import archives as A
from heatwatch.core.datasets import DATASETS, table_schema

from ..catalogue import PUBLISHED, datapackage, dcat_catalogue
from ..deps import Ctx, CtxDep, DecimalParam, TimesParam
from ..errors import not_found
from ..respond import cached_json
from ..responses import JSONLDBytes
from ..sensorinfo import list_sensors
from ..timeutil import iso_z
from .archives import archives_version

router = APIRouter(prefix="/v1", tags=["catalogue"])

CATALOGUE_TTL_S = 600.0  # coverage moves by an hour at most between analytics runs


def base_url(ctx: Ctx) -> str:
    # HEATWATCH_API_PUBLIC_URL (or the loopback listen address): never the request's Host header, which would
    # let one forged request rewrite the cached catalogue every harvester then reads.
    return ctx.base_url


async def _coverage(ctx: Ctx) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """First and last time of every (dataset, town): two aggregate queries per dataset, all towns at once."""
    async def one(ds: Any) -> dict[tuple[str, str], tuple[str | None, str | None]]:
        starts, ends = await ctx.store.coverage(ds)
        out: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        for town in set(starts) | set(ends):
            out[(ds.id, town)] = (iso_z(starts.get(town)), iso_z(ends.get(town)))
        return out

    merged: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    for part in await asyncio.gather(*(one(ds) for ds, _, _ in PUBLISHED)):
        merged.update(part)
    return merged


def _archived(ctx: Ctx) -> dict[str, list[Any]]:
    archived: dict[str, list[Any]] = {}
    for m in A.list_manifests(ctx.settings.data_dir):
        archived.setdefault(m.town, []).append(m)
    return archived


@router.get("/catalog", summary="DCAT-AP catalogue (JSON-LD)",
            description="A dcat:Catalog with one dcat:Dataset per town and kind of data and one dcat:Distribution "
                        "per format, for data.gouv.fr's DCAT harvester.",
            response_class=JSONLDBytes)
async def catalog(ctx: CtxDep) -> Response:
    async def build() -> tuple[Any, int | None, str]:
        sensors = {t: list_sensors(ctx.registry, t) for t in ctx.settings.towns}  # the sources of each town's data
        body = dcat_catalogue(base_url(ctx), ctx.settings.towns, ctx.config, await _coverage(ctx), _archived(ctx),
                              sensors)
        return body, None, "application/ld+json"

    return await cached_json(ctx, CATALOGUE_TTL_S, 3600, build, version=archives_version(ctx))


@router.get("/datapackage.json", summary="Frictionless Data Package of the CSV exports and archives",
            description="Field names, types, units and descriptions of every CSV export, per town, and of every "
                        "monthly CSV.gz archive file with its byte size and SHA-256.")
async def datapackage_json(ctx: CtxDep) -> Response:
    async def build() -> tuple[Any, int | None, str]:
        sensors = {t: list_sensors(ctx.registry, t) for t in ctx.settings.towns}  # the sources of each town's data
        return (datapackage(base_url(ctx), ctx.settings.towns, ctx.config, _archived(ctx), sensors), None,
                "application/json")

    return await cached_json(ctx, CATALOGUE_TTL_S, 3600, build, version=archives_version(ctx))


def schema_datasets() -> dict[str, Any]:
    """Every CSV dataset with a Table Schema: the stored ones and the api's canicule episodes."""
    from .aggregates import EPISODES

    return {**DATASETS, EPISODES.id: EPISODES}


@router.get("/schemas/{dataset}.json", summary="Table Schema of a CSV dataset",
            description="The Frictionless Table Schema of a dataset's CSV files (exports and monthly archives): "
                        "field names, types, units, constraints and the key of a row, derived from the stored "
                        "schema. `decimal` and `times` describe a CSV written with the same options (sep=; writes "
                        "decimal commas). The comma-separated UTC variants are also in the repository's "
                        "`schemas/`.",
            responses={404: {"description": "unknown dataset"}})
async def dataset_schema(ctx: CtxDep, dataset: Annotated[str, Path(pattern=r"^[a-z_]{1,40}$")],
                         decimal: DecimalParam = None, times: TimesParam = "utc") -> Response:
    known = schema_datasets()
    ds = known.get(dataset)
    if ds is None:
        raise not_found(f"no dataset {dataset!r}; Table Schemas exist for {', '.join(sorted(known))}")

    async def build() -> tuple[Any, int | None, str]:
        schema = table_schema(ds, decimal=decimal or ".", local_times=times == "local")
        return schema, None, "application/json"

    return await cached_json(ctx, CATALOGUE_TTL_S, 3600, build)
