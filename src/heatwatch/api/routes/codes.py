"""The code lists a reader needs to use the data: the qc bit table, sensor statuses, site classes, Local Climate
Zones — each from the one place the code defines it (``core/measurements.py``, ``api/sensorinfo.py``,
``core/model.py``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from heatwatch.core.measurements import qc_flag_table
from heatwatch.core.model import LCZ_CLASSES, SITE_CLASS_MEANINGS

from ..deps import CtxDep, FormatParam, StyleDep
from ..formats import JSONBytes, choose_format, envelope
from ..respond import cached_csv, cached_json
from ..sensorinfo import STATUSES

router = APIRouter(prefix="/v1", tags=["catalogue"])

QC_COLUMNS = ["bit", "name", "meaning", "value_unusable", "day_unusable", "information"]
CODES_TTL_S = 3600.0  # code lists change with a release, not with the data


def qc_rows() -> list[dict[str, Any]]:
    return [asdict(f) for f in qc_flag_table()]


def codes() -> dict[str, Any]:
    return {
        "qc_flags": qc_rows(),
        "status": [{"value": k, "meaning": v} for k, v in STATUSES.items()],
        "site_class": [{"value": str(k), "meaning": v} for k, v in SITE_CLASS_MEANINGS.items()],
        "lcz": [{"value": k, "meaning": v} for k, v in LCZ_CLASSES.items()],
    }


@router.get("/qc-flags", summary="The qc bit table",
            description="What each bit of the `qc` field of hourly and daily rows means: `qc` is the sum of the "
                        "flags set, 0 when every check passed. `value_unusable`: the hourly value is left out of "
                        "indices; `day_unusable`: the sensor-day is left out of daily statistics; `information`: "
                        "never makes anything unusable. Filter rows with `qc=0` or `qc_max=` on /v1/hourly and "
                        "/v1/daily. Rules and parameters: docs/science/qc.md.",
            responses={200: {"content": {"text/csv": {}}}})
async def qc_flags(ctx: CtxDep, style: StyleDep, format: FormatParam = None) -> Response:
    fmt = choose_format(ctx.request, format, ["json", "csv"])

    async def build() -> tuple[Any, int | None, str]:
        if fmt == "csv":
            return qc_rows(), None, "text/csv"
        return envelope(ctx.meta(None), qc_rows()), None, JSONBytes.media_type

    if fmt == "csv":
        return await cached_csv(ctx, build, QC_COLUMNS, style, ttl=CODES_TTL_S, max_age=3600)
    return await cached_json(ctx, CODES_TTL_S, 3600, build)


@router.get("/codes", summary="Code lists: qc flags, sensor status, site class, Local Climate Zone",
            description="The meaning of every coded value the data uses: the qc bits, the `status` of /v1/latest "
                        "and /v1/sensors, the registry's `site_class` and `lcz` (Stewart & Oke 2012).")
async def code_lists(ctx: CtxDep) -> Response:
    async def build() -> tuple[Any, int | None, str]:
        return envelope(ctx.meta(None), codes()), None, JSONBytes.media_type

    return await cached_json(ctx, CODES_TTL_S, 3600, build)
