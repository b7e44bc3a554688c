"""Liveness and readiness probes (outside /v1: they are for orchestrators, not data users)."""

from __future__ import annotations

from fastapi import APIRouter

from heatwatch.core.errors import InfluxError

from ..deps import InfluxDep
from ..formats import JSONBytes

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    # Deliberately touches nothing: a database outage must not get the API process restarted.
    return {"status": "ok"}


@router.get("/readyz", summary="InfluxDB is reachable",
            responses={503: {"description": "InfluxDB unreachable"}})
async def readyz(influx: InfluxDep) -> JSONBytes:
    try:
        version = await influx.ping()
    except InfluxError as exc:
        return JSONBytes({"status": "unavailable", "influxdb": str(exc)}, status_code=503,
                         headers={"Retry-After": "5"})
    return JSONBytes({"status": "ready", "influxdb": version})
