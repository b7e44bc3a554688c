"""A town's season assembled from the stored aggregates: rankings and summary (used by the rankings
endpoint and the seasonal report)."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from heatwatch.core.influx import InfluxClient
from heatwatch.core.model import Sensor, Town
from heatwatch.core.registry import Registry

from . import queries
from .rankings import rank_sites, season_days, season_summary


def sensor_index(registry: Registry | None, town: str) -> dict[str, Sensor]:
    if registry is None:
        return {}
    return {s.id: s for s in registry.list(town=town, include_retired=True)}


async def season_ranking(client: InfluxClient, town: Town, registry: Registry | None, season: int,
                         thresholds: list[float]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows and summary of one season; shared with the seasonal report."""
    tz = ZoneInfo(town.timezone)
    today = date.today()
    days = season_days(season, until=today)
    if not days:
        return [], {"days": 0}
    first, last = days[0], days[-1]
    rows = await queries.daily_rows(client, town.id, first, last, tz)
    hours = await queries.hours_at_or_above(client, town.id, first, last, tz, thresholds)
    town_rows = await queries.town_daily_rows(client, town.id, first, last, tz)
    sensors = sensor_index(registry, town.id)
    ranking, common = rank_sites(rows, sensors, hours, thresholds, town.reference_sensors)
    summary = season_summary(town_rows, rows, sensors)
    return ranking, {"from": first.isoformat(), "to": last.isoformat(), "days": len(days), **{
        k: (v.isoformat() if isinstance(v, date) else v) for k, v in summary.items()}, "compared_on": common.describe()}
