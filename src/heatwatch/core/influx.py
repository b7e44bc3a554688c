"""InfluxDB adapter over the v1 HTTP API (``/write`` line protocol, ``/query`` InfluxQL).

The v1 API is the one every InfluxDB generation serves (1.x natively, 2.x and 3.x through
their v1-compatibility endpoints), which is why heatwatch does not use a v2/v3 client.
Every value in a query goes through bind parameters (``params=``); identifiers go through
:func:`ident`, which only accepts a strict pattern. Transport failures and error answers
become the typed exceptions of :mod:`heatwatch.core.errors`, carrying the server's message.
"""

from __future__ import annotations

import asyncio
import gzip as gzip_module
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from .errors import (
    InfluxAuthError,
    InfluxClientError,
    InfluxError,
    InfluxServerError,
    InfluxTimeout,
    InfluxUnavailable,
    InfluxWriteError,
)
from .lineprotocol import Point, encode
from .measurements import AGG_RP, AGG_SHARD_DURATION, RAW_RP, Measurement
from .settings import CoreSettings

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^(INF|\d+[hdw])$")
#: AGG_SHARD_DURATION (in weeks) as SHOW RETENTION POLICIES writes it.
_AGG_SHARD_SHOWN = f"{int(AGG_SHARD_DURATION.removesuffix('w')) * 168}h0m0s"


def ident(name: str) -> str:
    """Quote an identifier after checking it against a strict pattern (no injection possible)."""
    if not _IDENT.fullmatch(name):
        raise ValueError(f"invalid InfluxQL identifier {name!r}")
    return f'"{name}"'


@dataclass(slots=True)
class Series:
    name: str
    columns: list[str]
    values: list[list[Any]]
    tags: dict[str, str] = field(default_factory=dict)

    def records(self) -> list[dict[str, Any]]:
        base = dict(self.tags)
        return [base | dict(zip(self.columns, row, strict=False)) for row in self.values]


class InfluxClient:
    """Async client for heatwatch's two databases: raw readings in ``database``, aggregates (every measurement
    of the ``agg`` retention policy) in ``agg_database``. InfluxDB 1.x grants privileges per database, so the
    split is what lets ingest write readings without being able to write or delete published aggregates.
    Statements name their measurement through :meth:`table` / :meth:`qualified`, which picks the database;
    writes pick it from their retention policy. Create it in a lifespan / service start and close it."""

    def __init__(
        self,
        base_url: str,
        database: str,
        *,
        agg_database: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        gzip: bool = False,
        timeout: float = 10.0,
        max_connections: int = 10,
    ) -> None:
        ident(database)
        self.database = database
        self.agg_database = agg_database or f"{database}_agg"
        ident(self.agg_database)
        self.gzip = gzip
        # Answers uncompressed unless asked: InfluxDB gzips whatever a client accepts (httpx accepts gzip by
        # default), which on a local link only costs the database's CPU to compress and ours to inflate.
        headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
        if token:
            headers["Authorization"] = f"Token {token}"
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        # At most max_connections requests in httpx at once; the others wait here, in FIFO order. httpcore's own
        # pool queue rescans every waiting request against every connection at each hand-over, which with a
        # hundred waiting requests costs more CPU than the requests themselves.
        self._slots = asyncio.Semaphore(max_connections)

    @classmethod
    def from_settings(cls, settings: CoreSettings, **kwargs: Any) -> InfluxClient:
        return cls(
            settings.influx_base_url,
            settings.influx_db,
            agg_database=settings.influx_agg_database,
            token=settings.influx_token.get_secret_value() if settings.influx_token else None,
            username=settings.influx_user,
            password=settings.influx_password.get_secret_value() if settings.influx_password else None,
            gzip=settings.influx_gzip,
            timeout=settings.influx_timeout_s,
            **kwargs,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> InfluxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # Transport -------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            # The wait for a connection counts in the timeout, as httpx's pool timeout did.
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise InfluxTimeout(f"no connection to InfluxDB free for {path} in time") from exc
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise InfluxTimeout(f"InfluxDB did not answer {path} in time: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise InfluxUnavailable(f"cannot reach InfluxDB at {self._http.base_url}: {exc!r}") from exc
        finally:
            self._slots.release()
        if response.status_code >= 400:
            raise _error_for(path, response)
        return response

    # Health and schema -----------------------------------------------------------------

    async def ping(self) -> str:
        """The server's version; raises if it is not reachable."""
        response = await self._request("GET", "/ping")
        return response.headers.get("X-Influxdb-Version", "unknown")

    async def setup(self, raw_retention: str = "INF") -> bool:
        """Create both databases and their retention policies. Idempotent; updates the raw duration.

        These statements need an InfluxDB admin. A service running with its own least-privilege user (the
        production set-up: ``heatwatch db init``) is refused them: that is not an error, the operator's
        set-up made the databases; False is returned and nothing is changed.
        """
        if not _DURATION.fullmatch(raw_retention):
            raise ValueError(f"invalid retention duration {raw_retention!r}")
        db, agg = ident(self.database), ident(self.agg_database)
        try:
            await self.command(f"CREATE DATABASE {db}")
            await self.command(f"CREATE DATABASE {agg}")
            existing = {r["name"] for r in await self.query_records(f"SHOW RETENTION POLICIES ON {db}")}
            verb = "ALTER" if RAW_RP in existing else "CREATE"
            await self.command(f"{verb} RETENTION POLICY {ident(RAW_RP)} ON {db} DURATION {raw_retention} "
                               "REPLICATION 1 DEFAULT")
            existing = {r["name"]: r for r in await self.query_records(f"SHOW RETENTION POLICIES ON {agg}")}
            if AGG_RP not in existing:
                await self.command(f"CREATE RETENTION POLICY {ident(AGG_RP)} ON {agg} DURATION INF REPLICATION 1 "
                                   f"SHARD DURATION {AGG_SHARD_DURATION} DEFAULT")
            elif existing[AGG_RP].get("shardGroupDuration") != _AGG_SHARD_SHOWN:
                # Older deployments: shard groups created from now on are a year long; existing ones stay.
                await self.command(f"ALTER RETENTION POLICY {ident(AGG_RP)} ON {agg} SHARD DURATION "
                                   f"{AGG_SHARD_DURATION}")
        except InfluxAuthError:
            return False
        return True

    def database_of(self, rp: str) -> str:
        """The database holding the retention policy ``rp``."""
        return self.agg_database if rp == AGG_RP else self.database

    # Writes ------------------------------------------------------------------------------

    async def write_lines(self, lines: str | Iterable[str], *, rp: str = RAW_RP, precision: str = "ms") -> None:
        body = lines if isinstance(lines, str) else "\n".join(lines)
        if not body:
            return
        data = body.encode("utf-8")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            data = gzip_module.compress(data, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        params = {"db": self.database_of(rp), "rp": ident(rp).strip('"'), "precision": precision}
        await self._request("POST", "/write", params=params, content=data, headers=headers)

    async def write_points(self, points: Iterable[Point], *, rp: str = AGG_RP) -> int:
        lines = [encode(p) for p in points]
        await self.write_lines(lines, rp=rp)
        return len(lines)

    # Queries -----------------------------------------------------------------------------

    async def query(
        self, q: str, params: Mapping[str, Any] | None = None, *, epoch: str | None = "ms", db: str | None = None
    ) -> list[list[Series]]:
        """Run one or more statements; returns, per statement, its series. ``db``: the database unqualified
        names refer to (DELETE and DROP cannot be qualified), the raw one by default."""
        form: dict[str, str] = {"db": db or self.database, "q": q}
        if epoch:
            form["epoch"] = epoch
        if params:
            form["params"] = json.dumps(dict(params))
        # POST: statements may be long, and 1.x accepts SELECT over POST as well.
        response = await self._request("POST", "/query", data=form)
        payload = orjson.loads(response.content)  # several times faster than the json module on big answers
        if "error" in payload:
            raise InfluxClientError(payload["error"], status=response.status_code)
        out: list[list[Series]] = []
        for result in payload.get("results", []):
            if "error" in result:
                raise InfluxClientError(result["error"], status=response.status_code)
            out.append([
                Series(s.get("name", ""), s.get("columns", []), s.get("values", []) or [], s.get("tags") or {})
                for s in result.get("series", [])
            ])
        return out

    async def query_series(self, q: str, params: Mapping[str, Any] | None = None, **kw: Any) -> list[Series]:
        results = await self.query(q, params, **kw)
        return results[0] if results else []

    async def query_records(self, q: str, params: Mapping[str, Any] | None = None, **kw: Any) -> list[dict]:
        return [r for s in await self.query_series(q, params, **kw) for r in s.records()]

    async def query_csv(self, q: str, params: Mapping[str, Any] | None = None, *, epoch: str = "ms",
                        db: str | None = None) -> bytes:
        """One statement's rows as InfluxDB's CSV output (columns name, tags, time, fields); b"" for none.

        For bulk reads: InfluxDB answers CSV as fast as JSON, and a CSV parser is many times
        faster than building rows from JSON. Caveat: InfluxDB 1.6 answers a statement that fails
        at execution (not at parsing) with an empty CSV body, so use it for fixed, tested statements.
        """
        form = {"db": db or self.database, "q": q, "epoch": epoch}
        if params:
            form["params"] = json.dumps(dict(params))
        response = await self._request("POST", "/query", data=form, headers={"Accept": "application/csv"})
        body = response.content
        if body.startswith(b"error"):
            raise InfluxClientError(body.decode("utf-8", "replace").split("\n", 1)[-1].strip(), status=200)
        return body if body.strip() else b""

    async def command(self, q: str, db: str | None = None) -> None:
        await self.query(q, epoch=None, db=db)

    def qualified(self, measurement: str, rp: str) -> str:
        return f"{ident(self.database_of(rp))}.{ident(rp)}.{ident(measurement)}"

    def table(self, m: Measurement) -> str:
        """``"db"."rp"."measurement"`` of a stored measurement, its retention policy taken from the schema."""
        return self.qualified(m.name, m.rp)


def _error_for(path: str, response: httpx.Response) -> InfluxError:
    try:
        message = response.json().get("error") or response.text
    except (json.JSONDecodeError, ValueError, AttributeError):
        message = response.text or response.reason_phrase
    status = response.status_code
    if status in (401, 403):
        return InfluxAuthError(message, status=status)
    if status >= 500:
        return InfluxServerError(message, status=status)
    if path == "/write":
        return InfluxWriteError(message, status=status)
    return InfluxClientError(message, status=status)

