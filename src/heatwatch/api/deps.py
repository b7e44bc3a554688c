"""Request dependencies (``Annotated`` aliases), FastAPI full-stack-template style.

The lifespan in :mod:`.app` puts the long-lived objects on ``app.state``; these functions
hand them to routes, validate the parameters every route shares (town, sensor, time range,
format) and build the licence envelope.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from heatwatch.core.influx import InfluxClient
from heatwatch.core.model import SENSOR_ID_RE, TOWN_ID_RE, Town
from heatwatch.core.registry import Registry
from heatwatch.core.settings import ApiOptions, ApiSettings

from .cache import ResponseCache
from .errors import ApiError, not_found
from .formats import LICENCE, Style, accept_key, style_of
from .limits import Slots, client_key
from .params import SCOPE_KEY, normalised_params
from .store import Store
from .timeutil import iso_z, zone


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


async def get_config(request: Request) -> ApiOptions:
    return request.app.state.settings.api


async def get_influx(request: Request) -> InfluxClient:
    return request.app.state.influx


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_registry(request: Request) -> Registry | None:
    """The sensor registry, or None when it could not be opened (endpoints then fall back to
    what InfluxDB knows: sensor ids without positions)."""
    return request.app.state.registry


async def get_cache(request: Request) -> ResponseCache:
    return request.app.state.cache


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
ConfigDep = Annotated[ApiOptions, Depends(get_config)]
InfluxDep = Annotated[InfluxClient, Depends(get_influx)]
StoreDep = Annotated[Store, Depends(get_store)]
RegistryDep = Annotated[Registry | None, Depends(get_registry)]
CacheDep = Annotated[ResponseCache, Depends(get_cache)]

# Anchored: pydantic's `pattern` searches, so an unanchored pattern would let "vitre' OR 1=1" through.
TOWN_PATTERN = f"^{TOWN_ID_RE.pattern}$"
SENSOR_PATTERN = f"^{SENSOR_ID_RE.pattern}$"

# ISO 8601 date or date-time as parse_instant reads it; documenting the shape in the schema keeps
# generated clients (and fuzzers) from sending free text.
ISO_PATTERN = (r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
               r"([Zz]|[+-]\d{2}:\d{2})?)?$")
TZ_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*){0,2}$"

# Shared query parameters. Patterns reject anything that is not a possible id before any query
# is built; values then travel as bind parameters anyway.
TownParam = Annotated[str, Query(description="town id", pattern=TOWN_PATTERN, max_length=64,
                                 examples=["vitre", "saint-omer"])]
OptTownParam = Annotated[str | None, Query(alias="town", description="town id; all towns when absent",
                                           pattern=TOWN_PATTERN, max_length=64, examples=["vitre"])]
SensorParam = Annotated[str, Query(description="sensor id", pattern=SENSOR_PATTERN, max_length=64,
                                   examples=["vitre-centre-01"])]
OptSensorParam = Annotated[str | None, Query(alias="sensor", description="sensor id; all sensors when absent",
                                             pattern=SENSOR_PATTERN, max_length=64)]
FromParam = Annotated[str | None, Query(alias="from", max_length=40, pattern=ISO_PATTERN,
                                        description="start, ISO 8601 date or date-time (naive values in tz)",
                                        examples=["2024-07-01", "2024-07-01T00:00:00Z"])]
ToParam = Annotated[str | None, Query(alias="to", max_length=40, pattern=ISO_PATTERN,
                                      description="end (exclusive), ISO 8601",
                                      examples=["2024-07-08"])]
TzParam = Annotated[str, Query(alias="tz", max_length=64, pattern=TZ_PATTERN,
                               description="IANA zone for naive times and local days, and for output times with "
                                           "times=local (else output times are UTC)",
                               examples=["Europe/Paris", "UTC"])]
FormatParam = Annotated[str | None, Query(alias="format", pattern=r"^(json|csv|geojson|parquet|xlsx)$",
                                          description="json, csv, geojson, parquet or xlsx (where the endpoint has "
                                                      "them); else from Accept")]
SepParam = Annotated[str, Query(alias="sep", pattern=r"^[,;]$",
                                description="CSV separator: ',' (RFC 4180) or ';' for French spreadsheets")]


DecimalParam = Annotated[str | None, Query(alias="decimal", pattern=r"^[.,]$", description=(
    "CSV decimal mark: '.' or ','; default ',' with sep=; (French spreadsheets read 23,4 as a number), else '.'"))]
TimesParam = Annotated[Literal["utc", "local"], Query(alias="times", description=(
    "output times in UTC with Z (default), or local: in tz with their UTC offset (2024-07-20T02:00:00+02:00); "
    "spreadsheet (xlsx) times are written in that zone without an offset"))]


def known_town(settings: ApiSettings, town: str) -> Town:
    t = settings.towns.get(town)
    if t is None:
        raise not_found(f"unknown town {town!r}; known towns: {', '.join(sorted(settings.towns))}")
    return t


# The dependencies every data route solves read app.state themselves rather than through SettingsDep & co.: FastAPI
# pays for each dependency it solves, per request (its parameters are looked up again each time), and what is
# read is the same object. The parameters, their validation and the OpenAPI document stay as they were.


async def town_dep(request: Request, town: TownParam) -> Town:
    return known_town(request.app.state.settings, town)


async def opt_town_dep(request: Request, town: OptTownParam = None) -> Town | None:
    return known_town(request.app.state.settings, town) if town is not None else None


async def tz_dep(tz: TzParam = "Europe/Paris") -> ZoneInfo:
    return zone(tz)


TownDep = Annotated[Town, Depends(town_dep)]
OptTownDep = Annotated[Town | None, Depends(opt_town_dep)]
TzDep = Annotated[ZoneInfo, Depends(tz_dep)]


async def style_dep(tz: TzDep, sep: SepParam = ",", decimal: DecimalParam = None, times: TimesParam = "utc") -> Style:
    """How the answer writes its values: CSV separator and decimal mark, and the zone of output times."""
    return style_of(sep, decimal, tz if times == "local" else None)


StyleDep = Annotated[Style, Depends(style_dep)]


_PLAIN_PATH = re.compile(r"/(?!/)[!\"$->@-\[\]-~]*")


@dataclass(slots=True)
class Ctx:
    """What most routes need at once."""

    request: Request
    settings: ApiSettings
    config: ApiOptions
    store: Store
    cache: ResponseCache
    registry: Registry | None

    def meta(self, last_update_ms: int | None, **extra: Any) -> dict[str, Any]:
        """The attribution Etalab-2.0 requires (source and date) plus the query that produced the data: the
        normalised one (:mod:`.params`), every parameter with its value, defaults included."""
        meta: dict[str, Any] = {
            "licence": LICENCE,
            "producer": self.config.producer,
            "last_update": iso_z(last_update_ms),
            "query": {"path": self.path, "params": dict(normalised_params(self.request))},
        }
        meta.update(extra)
        return meta

    def url_with(self, **params: Any) -> str:
        """This request's URL with some query parameters replaced (next links): the configured public base URL
        and the normalised query, never the request's Host header (which anyone can forge)."""
        q = dict(normalised_params(self.request))
        for k, v in params.items():
            if v is None:
                q.pop(k, None)
            else:
                q[k] = str(v)
        return f"{self.base_url}{self.path}?{urlencode(sorted(q.items()))}"

    @property
    def path(self) -> str:
        """``request.url.path``, without building the URL (parsing the Host header, joining and splitting the URL) for a
        path that URL would give back as it is: printable ASCII, no ``?``, ``#`` or ``\\``, not ``//``."""
        path = self.request.scope["path"]
        return path if _PLAIN_PATH.fullmatch(path) else self.request.url.path

    @property
    def base_url(self) -> str:
        return self.request.app.state.base_url

    @property
    def client(self) -> str:
        """Who the request is from, as the rate limit and the per-client caps count it (:mod:`.limits`)."""
        return client_key(self.request.scope)

    @property
    def slots(self) -> Slots:
        """The expensive-work slots shared by maps, models and exports."""
        return self.request.app.state.slots

    @property
    def cache_key(self) -> str:
        """The normalised request: path, declared parameters with defaults, and the formats Accept ranks."""
        query = self.request.scope.get(SCOPE_KEY)
        if query is None:
            query = self.request.url.query
        return f"{self.path}?{query}|{accept_key(self.request.headers.get('accept', ''))}"


async def ctx_dep(request: Request) -> Ctx:
    """What :func:`get_settings`, :func:`get_config`, :func:`get_store`, :func:`get_cache` and :func:`get_registry`
    give, read at once (one dependency instead of six)."""
    state = request.app.state
    settings = state.settings
    return Ctx(request, settings, settings.api, state.store, state.cache, state.registry)


CtxDep = Annotated[Ctx, Depends(ctx_dep)]


_bearer = HTTPBearer(auto_error=False, description="HEATWATCH_ADMIN_TOKEN")


def require_admin(settings: SettingsDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    expected = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not expected:
        raise ApiError(403, "admin_disabled", "admin endpoints are disabled: HEATWATCH_ADMIN_TOKEN is not set")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "admin endpoints need 'Authorization: Bearer <token>'",
                       {"WWW-Authenticate": 'Bearer realm="heatwatch-admin"'})
    # Constant time: the comparison must not tell an attacker how many leading characters matched.
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise ApiError(403, "forbidden", "invalid admin token")


AdminDep = Depends(require_admin)
