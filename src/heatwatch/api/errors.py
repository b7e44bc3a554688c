"""The one place where failures become HTTP answers.

Every error body has the same shape, ``{"error": {"status", "code", "message"}}``, so a
client can branch on ``code`` without parsing prose. Nothing the client can send may turn
into a 500: bad input is a 4xx with a message saying what to change, and an unreachable or
failing InfluxDB is a 503 with ``Retry-After`` (the request was fine, try again later).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from heatwatch.core.errors import InfluxClientError, InfluxError, RegistryError
from heatwatch.core.logging import get_logger

from .responses import JSONBytes

log = get_logger("heatwatch.api")


class ApiError(Exception):
    """An error the API raises on purpose, with a stable machine-readable ``code``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONBytes:
    return JSONBytes(
        {"error": {"status": status, "code": code, "message": message}}, status_code=status, headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path", "body", "header"))
        parts.append(f"{loc or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"}) if hasattr(route, "matches") else (None, None)
        route_methods = getattr(route, "methods", None)
        if match is not None and match != Match.NONE and route_methods:
            methods |= set(route_methods)
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONBytes:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONBytes:
        # 422 like FastAPI, but with a one-line message a human can act on.
        return error_response(422, "invalid_parameter", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONBytes:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette lists only the first route matching the path; a path served by several
            # routes (GET and POST /v1/admin/sensors) must list them all.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(InfluxError)
    async def _influx(_: Request, exc: InfluxError) -> JSONBytes:
        # The client gets a code and a message of ours, never the database's text: it names databases,
        # retention policies, users and statements, which tell an outsider how the service is built. The
        # database's own words go to the log.
        if isinstance(exc, InfluxClientError) and "database not found" in exc.message:
            # A fresh deployment before ingest has created the database: not the client's fault.
            log.warning("api.database_not_ready", error=exc.message)
            return error_response(503, "database_not_ready", "the time-series database is not set up yet, retry "
                                  "later", {"Retry-After": "30"})
        if isinstance(exc, InfluxClientError) and exc.status != 401 and exc.status != 403:
            # Every value reaches InfluxDB as a bind parameter and is validated first, so a rejected
            # query means a parameter combination we did not foresee: the client can change it.
            log.warning("api.query_rejected", error=exc.message)
            return error_response(400, "query_rejected", "the database could not answer this combination of "
                                  "parameters; narrow or change them")
        log.warning("api.influx_unavailable", error=str(exc))
        return error_response(503, "database_unavailable", "the time-series database is unavailable, retry later",
                              {"Retry-After": "5"})

    @app.exception_handler(RegistryError)
    async def _registry(_: Request, exc: RegistryError) -> JSONBytes:
        return error_response(400, "registry_error", str(exc))
