"""API-only options, read from ``HEATWATCH_API_*`` variables when the app is created.

They live here rather than in the shared ``Settings`` because no other service needs them;
like ``Settings`` they are built by the caller (``create_app``), never at import time.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEATWATCH_API_", extra="ignore")

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

    stale_after_s: int = Field(default=3600, ge=60, description="a sensor silent longer is 'offline'")
