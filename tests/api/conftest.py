"""API test fixtures: a per-test database on the session influxd, seeded in line protocol that
follows DESIGN.md §3, and a TestClient running the app's real lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from heatwatch.api.app import create_app
from heatwatch.api.config import ApiConfig
from heatwatch.core.influx import AGG_RP, RAW_RP, InfluxClient
from heatwatch.core.settings import Settings

ADMIN_TOKEN = "test-admin-token-0123456789"


def write(url: str, db: str, lines: list[str], rp: str = RAW_RP) -> None:
    async def go() -> None:
        async with InfluxClient(url, db) as c:
            await c.setup()
            for i in range(0, len(lines), 5000):
                await c.write_lines(lines[i:i + 5000], rp=rp)

    asyncio.run(go())


@pytest.fixture
def api_settings(influxd, db_name: str, tmp_path: Path) -> Settings:
    return Settings.load(influx_url=influxd.url, influx_db=db_name, data_dir=tmp_path / "var",
                         admin_token=ADMIN_TOKEN)


@pytest.fixture
def api_config() -> ApiConfig:
    # No rate limit and no server cache unless a test is about them: tests write then read at once.
    return ApiConfig(rate_limit_per_s=0, cache_ttl_latest_s=0, cache_ttl_agg_s=0)


@pytest.fixture
def seed(influxd, db_name: str) -> Callable[..., None]:
    """seed(lines, rp=RAW_RP): write line protocol into this test's database (created on first use)."""

    def _seed(lines: list[str], rp: str = RAW_RP) -> None:
        write(influxd.url, db_name, lines, rp)

    return _seed


@pytest.fixture
def client(api_settings: Settings, api_config: ApiConfig, seed) -> Iterator[TestClient]:
    seed([])  # the database and its retention policies exist even before data is written
    with TestClient(create_app(api_settings, api_config)) as c:
        yield c


__all__ = ["ADMIN_TOKEN", "AGG_RP", "RAW_RP", "write"]
