"""A town's season crossed with its layers: the per-site season values (the ranking's common days), the site
context, and the drivers models fitted on them. Shared by the drivers, maps, scenarios and biodiversity
routes and by the seasonal report, so each reads the same numbers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heatwatch.core.influx import InfluxClient
from heatwatch.core.model import Sensor, Town

from .drivers import RESPONSES, DriversModel, NotEnoughData, fit_drivers
from .rankings import BASIS_COMMON
from .season import season_ranking

HOT_THRESHOLD = 30.0


@dataclass
class TownSeason:
    town: Town
    season: int
    ranking: list[dict[str, Any]]
    summary: dict[str, Any]
    context: dict[str, Any]
    sensors: list[Sensor]
    models: dict[str, DriversModel] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def contexts(self) -> dict[str, dict[str, Any]]:
        return {r["sensor"]: r for r in self.context.get("sensors", [])}

    def values(self, response: str) -> dict[str, float]:
        col = RESPONSES[response].column
        return {r["sensor"]: float(r[col]) for r in self.ranking
                if r.get("basis") == BASIS_COMMON and r.get(col) is not None}

    def model(self, response: str = "uhi_night") -> DriversModel:
        if response in self.models:
            return self.models[response]
        raise NotEnoughData(self.refused.get(response, "no model"))

    def describe_models(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in RESPONSES:
            if key in self.models:
                out[key] = {"status": "ok", **self.models[key].describe()}
            else:
                out[key] = {"status": "insufficient_data", "reason": self.refused.get(key),
                            "response": RESPONSES[key].column}
        return out


def fit_all(ts: TownSeason) -> TownSeason:
    for key in RESPONSES:
        try:
            ts.models[key] = fit_drivers(ts.values(key), ts.contexts, key)
        except NotEnoughData as exc:
            ts.refused[key] = str(exc)
    return ts


async def town_season(client: InfluxClient, town: Town, registry: Any, layers_dir: Path, season: int
                      ) -> TownSeason:
    """The season's ranking (common days), the site context and both drivers models (or why not)."""
    from heatwatch.core.layers import LayerStore
    from heatwatch.core.layers.context import site_context

    ranking, summary = await season_ranking(client, town, registry, season, [HOT_THRESHOLD])
    sensors = [s for s in (registry.list(town=town.id) if registry is not None else []) if not s.retired]
    store = LayerStore(layers_dir, town.id)
    context = await asyncio.to_thread(site_context, store, town, sensors)
    ts = TownSeason(town, season, ranking, summary, context, sensors)
    return await asyncio.to_thread(fit_all, ts)
