"""``ApiSettings``: what ``heatwatch api`` (and the seasonal report) need beyond the core.

Three groups of options, each under its own prefix and validated with the rest at start-up:
``HEATWATCH_API_*`` (:class:`ApiOptions`: listen address, attribution, rate limit, cache, caps),
``HEATWATCH_LIVE_*`` (:class:`LiveOptions`: the ``/v1/live`` stream) and ``HEATWATCH_DASHBOARD_*``
(:class:`DashboardOptions`: the page, its front-end libraries and map tiles).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from ..errors import ConfigError
from ..topics import ALERTS_FILTER, LIVE_FILTER
from .base import AlertSettings, CoreSettings, Group, MqttUrl

#: Shortest admin token accepted: 32 characters is 128 bits of entropy for hex, more for base64.
ADMIN_TOKEN_MIN = 32


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class ApiOptions(Group):
    env_prefix: ClassVar[str] = "HEATWATCH_API_"

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    producer: str = Field(default="heatwatch — réseau de capteurs de température urbaine",
                          description="named in every response: Etalab-2.0 attribution needs the source")
    contact_email: str = "opendata@heatwatch.example"
    # Every absolute URL the API writes (catalogue, data package, next links) starts with this, never with the
    # request's Host header: a forged Host would otherwise end up in cached answers served to everyone.
    public_url: str | None = Field(default=None, description=(
        "the API's public base URL (https://donnees.example.fr/heatwatch); required when the API listens "
        "outside loopback; else http://<host>:<port>"))
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (uvicorn's forwarded_allow_ips): the
    # client address they give is what the rate limit and the per-client caps count. Empty: none, the peer
    # address is the client. IPs or networks, comma-separated, or "*" (only behind a proxy that is the sole
    # way in).
    trusted_proxies: list[str] = Field(default_factory=list)

    # Per-client token bucket; 0 disables (benchmarks, a deployment behind a rate-limiting proxy).
    rate_limit_per_s: float = Field(default=20.0, ge=0)
    rate_limit_burst: int = Field(default=200, ge=1)

    # Server-side cache of hot JSON answers. Analytics runs hourly, so a minute of staleness on
    # aggregates is invisible; "latest" stays within seconds of the database.
    cache_ttl_latest_s: float = Field(default=5.0, ge=0)
    cache_ttl_agg_s: float = Field(default=60.0, ge=0)
    cache_entries: int = Field(default=512, ge=0)

    # Caps: a request above them gets a 400 saying the limit, not a slow or partial answer.
    max_raw_days: int = Field(default=31, ge=1)
    max_hourly_days: int = Field(default=400, ge=1)
    max_daily_days: int = Field(default=3700, ge=1)
    default_page_size: int = Field(default=1000, ge=1)
    max_page_size: int = Field(default=10000, ge=1)
    # Rows fetched from InfluxDB per round trip while streaming an export: bounds memory.
    stream_page_rows: int = Field(default=5000, ge=100)
    # Statements scanning every sensor-day of a range (tropical nights of /v1/indices) sent to InfluxDB
    # at once; more wait their turn. 0: no bound.
    max_concurrent_scans: int = Field(default=2, ge=0)
    # Statements the api has in flight at InfluxDB at once (its HTTP pool); more wait their turn, in order, within
    # HEATWATCH_INFLUX_TIMEOUT_S. InfluxDB runs a statement on every core: a few at a time keep it busy, and
    # dozens only share the same cores while every waiting answer holds memory on both sides.
    influx_connections: int = Field(default=16, ge=1, le=256)
    # "latest" is the last-value store analytics keeps plus the readings of this many last seconds, which the
    # store may not hold yet (analytics refreshes it every HEATWATCH_ANALYTICS_LAST_INTERVAL_S, 30 s: ten times
    # that covers a slow refresh).
    latest_window_s: int = Field(default=300, ge=60, le=86_400)
    # Resident aggregates (api/resident.py): the daily rows and town indices of the last resident_days days, and the
    # last-value store, held in memory so an uncached answer needs no database round trip. 0: none held.
    resident_days: int = Field(default=400, ge=0, le=3700, description=(
        "days of daily rows and town indices held in memory (0: every read goes to InfluxDB)"))
    resident_check_s: float = Field(default=0.1, gt=0, le=60, description=(
        "how often the ranges analytics announces as rewritten are looked for (what they cost: one small statement)"))
    resident_refresh_s: float = Field(default=60.0, gt=0, description="how often the last days are read again")
    resident_reload_s: float = Field(default=900.0, gt=0, description="how often the whole window is read again")
    resident_latest_s: float = Field(default=5.0, gt=0, description="how often the last-value store is read again")
    # Expensive answers (maps, models, effects, rankings, CSV/Parquet exports) share these slots; a request
    # finding them and the queue full gets 503 with Retry-After instead of slowing everyone down. One client runs
    # at most max_expensive_per_client of them; its next ones wait (as many at most, 429 beyond): the dashboard
    # opens three at once, a flood is refused, and the others always have slots left.
    max_expensive: int = Field(default=4, ge=1)
    expensive_queue: int = Field(default=16, ge=0, description="requests that may wait for a slot")
    max_expensive_per_client: int = Field(default=2, ge=1)
    busy_retry_after_s: int = Field(default=10, ge=1)

    stale_after_s: int | None = Field(default=None, ge=60, description=(
        "a sensor silent longer is 'offline'; default: the offline alert's HEATWATCH_ALERT_OFFLINE_S"))

    # Prometheus /metrics on a listener of its own, never on the public port (SECURITY.md): loopback by default;
    # under compose the compose network's address, not published on the host.
    metrics_host: str = Field(default="127.0.0.1", description="address of the /metrics listener")
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description=(
        "port of the Prometheus /metrics listener; unset: no listener (0: any free port)"))

    # Participatory science (docs/citizens.md): residents register sensors through POST /v1/contribute.
    contribute_enabled: bool = True
    # Registrations a client (address, or IPv6 /64) may make per hour: the endpoint is public and each
    # registration creates a sensor and credentials.
    contribute_per_hour: int = Field(default=5, ge=1, le=1000)
    # Issue an MQTT account with each registration; the broker learns it from `heatwatch contributors mqtt-sync`.
    contribute_mqtt: bool = True
    # Told to contributors with their MQTT account (their device connects there); default: the api's broker.
    contribute_mqtt_public_url: str | None = Field(default=None, description="mqtts://broker.example.fr:8883")


    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the public URL must be an absolute http:// or https:// URL")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("the public URL must have no credentials, query or fragment")
        return v.rstrip("/")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, v: list[str]) -> list[str]:
        for item in v:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (or '*')") from None
        return v


class LiveOptions(Group):
    env_prefix: ClassVar[str] = "HEATWATCH_LIVE_"

    enabled: bool = Field(default=True, description="subscribe to MQTT for /v1/live")
    topic: str = Field(default=LIVE_FILTER,
                       description="stored readings published by ingest; the last level is the town")
    alerts_topic: str = Field(default=ALERTS_FILTER,
                              description="alert events of analytics; the last level is the town")
    qos: int = Field(default=1, ge=0, le=1)
    coalesce_s: float = Field(default=2.0, ge=0, description="at most one reading event per sensor this often")
    alert_buffer: int = Field(default=1000, ge=1, description="alerts kept for Last-Event-ID replay")
    max_sensors: int = Field(default=20_000, ge=1, description="bound on sensors tracked (unknown ids are free)")
    client_buffer: int = Field(default=5000, ge=10,
                               description="events queued for one slow client before it is cut off")
    ping_s: float = Field(default=15.0, gt=0, description="keep-alive comment period (proxies drop idle streams)")
    retry_ms: int = Field(default=3000, ge=100, description="reconnect delay suggested to browsers")
    # Each open stream holds a socket and a queue: bounded in total and per client address.
    max_clients: int = Field(default=1000, ge=1, description="open /v1/live streams, all clients together")
    max_per_client: int = Field(default=8, ge=1, description="open /v1/live streams of one client address")


class DashboardOptions(Group):
    env_prefix: ClassVar[str] = "HEATWATCH_DASHBOARD_"
    # The name the install script and deployment files have always used.
    aliases: ClassVar[dict[str, str]] = {"frontend_dir": "HEATWATCH_FRONTEND_DIR"}

    enabled: bool = True
    frontend_dir: Path | None = Field(
        default=None, description="folder holding package.json and node_modules of the front-end libraries")
    # Online background only: with no internet the page still draws sensors, the instrumented area
    # and a scale on a plain background. Empty disables tiles (air-gapped control rooms).
    tiles_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    tiles_attribution: str = "© OpenStreetMap contributors"


class ApiSettings(CoreSettings, AlertSettings):
    admin_token: SecretStr | None = Field(default=None, description=(
        f"bearer token of /v1/admin, at least {ADMIN_TOKEN_MIN} characters; unset or empty: admin disabled"))
    # The dead-letter replay republishes messages on sensor topics, which the api's own MQTT account may not:
    # an account of its own (``replay`` in deploy/mosquitto.acl), given only where replay is wanted.
    replay_mqtt_username: str | None = Field(default=None, max_length=256)
    replay_mqtt_password: SecretStr | None = None
    api: ApiOptions = Field(default_factory=ApiOptions)
    live: LiveOptions = Field(default_factory=LiveOptions)
    dashboard: DashboardOptions = Field(default_factory=DashboardOptions)

    @property
    def replay_mqtt(self) -> MqttUrl:
        """The broker as the dead-letter replay reaches it: the replay account when set, else the api's."""
        url = self.mqtt
        if self.replay_mqtt_username is None:
            return url
        password = self.replay_mqtt_password.get_secret_value() if self.replay_mqtt_password else None
        return url.model_copy(update={"username": self.replay_mqtt_username, "password": password})

    @field_validator("replay_mqtt_username", "replay_mqtt_password", mode="before")
    @classmethod
    def _empty_replay_is_unset(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("admin_token")
    @classmethod
    def _check_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or not v.get_secret_value():
            return None  # empty (compose's ${HEATWATCH_ADMIN_TOKEN:-}): admin disabled
        n = len(v.get_secret_value())
        if n < ADMIN_TOKEN_MIN:
            raise ValueError(f"the admin token must be at least {ADMIN_TOKEN_MIN} characters (it has {n}); "
                             "make one with `openssl rand -hex 32`")
        return v

    @model_validator(mode="after")
    def _check_public(self) -> Self:
        problem = self._listen_problem(self.api.host)
        if problem:
            raise ValueError(problem)
        return self

    def _listen_problem(self, host: str) -> str | None:
        if self.api.public_url is None and not is_loopback(host):
            return (f"HEATWATCH_API_PUBLIC_URL is required when the api listens outside loopback (host {host}): "
                    "the base URL clients reach it at, e.g. https://donnees.example.fr")
        return None

    def check_listen(self, host: str) -> None:
        """Listening outside loopback needs the public base URL (``HEATWATCH_API_PUBLIC_URL``): absolute URLs
        are never built from the request's Host header."""
        problem = self._listen_problem(host)
        if problem:
            raise ConfigError(f"invalid heatwatch settings:\n  {problem}")

    def base_url(self, host: str | None = None, port: int | None = None) -> str:
        """What every absolute URL the api emits starts with (no trailing slash)."""
        if self.api.public_url is not None:
            return self.api.public_url
        host = host or self.api.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.api.port if port is None else port}"

    @property
    def stale_after_s(self) -> int:
        """When a sensor counts as offline: the api's own setting, else the offline alert's threshold, so
        the status the api gives and the alert analytics raises agree."""
        return self.api.stale_after_s if self.api.stale_after_s is not None else self.alert_offline_s
