"""``ApiSettings``: what ``heatwatch api`` (and the seasonal report) need beyond the core.

Three groups of options, each under its own prefix and validated with the rest at start-up:
``HEATWATCH_API_*`` (:class:`ApiOptions`: listen address, attribution, rate limit, cache, caps),
``HEATWATCH_LIVE_*`` (:class:`LiveOptions`: the ``/v1/live`` stream) and ``HEATWATCH_DASHBOARD_*``
(:class:`DashboardOptions`: the page, its front-end libraries and map tiles).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from ..topics import ALERTS_FILTER, LIVE_FILTER
from .base import AlertSettings, CoreSettings, Group


class ApiOptions(Group):
    env_prefix: ClassVar[str] = "HEATWATCH_API_"

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    producer: str = Field(default="heatwatch — réseau de capteurs de température urbaine",
                          description="named in every response: Etalab-2.0 attribution needs the source")
    contact_email: str = "opendata@heatwatch.example"
    public_url: str | None = Field(default=None, description="base URL used in the catalogue; else the request's")

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

    stale_after_s: int | None = Field(default=None, ge=60, description=(
        "a sensor silent longer is 'offline'; default: the offline alert's HEATWATCH_ALERT_OFFLINE_S"))


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
    admin_token: SecretStr | None = Field(default=None, description="bearer token of /v1/admin; unset: disabled")
    api: ApiOptions = Field(default_factory=ApiOptions)
    live: LiveOptions = Field(default_factory=LiveOptions)
    dashboard: DashboardOptions = Field(default_factory=DashboardOptions)

    @property
    def stale_after_s(self) -> int:
        """When a sensor counts as offline: the api's own setting, else the offline alert's threshold, so
        the status the api gives and the alert analytics raises agree."""
        return self.api.stale_after_s if self.api.stale_after_s is not None else self.alert_offline_s
