"""Liveness and readiness probes (outside /v1: they are for orchestrators, not data users)."""

from __future__ import annotations

from fastapi import APIRouter

from heatwatch.core.errors import InfluxError
from heatwatch.core.influx import ident
from heatwatch.core.logging import get_logger

from ..deps import InfluxDep
from ..formats import JSONBytes

router = APIRouter(tags=["health"])
log = get_logger("heatwatch.api")


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    # Deliberately touches nothing: a database outage must not get the API process restarted.
    return {"status": "ok"}


@router.get("/readyz", summary="Ready to serve: InfluxDB answers",
            responses={503: {"description": "not ready (InfluxDB unreachable)"}})
async def readyz(influx: InfluxDep) -> JSONBytes:
    # Ready or not, and nothing else: the database's address, version or error text tell an outsider how the
    # service is built. The reason goes to the log, where operators look.
    try:
        # Not only reachable: answering this api's user (a wrong password or a missing grant is "not ready").
        await influx.query(f"SHOW RETENTION POLICIES ON {ident(influx.database)}", epoch=None)
    except InfluxError as exc:
        log.warning("api.not_ready", error=str(exc))
        return JSONBytes({"status": "not ready"}, status_code=503, headers={"Retry-After": "5"})
    return JSONBytes({"status": "ready"})
