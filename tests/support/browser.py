"""What the browser tests share: Debian's chromium, its flags, the marks, the example registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from heatwatch.core.model import Sensor
from heatwatch.core.registry import Registry
from heatwatch.core.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
# Online map tiles: blocked in the tests, so the page is seen as it is without internet.
TILE_HOST = "tile.openstreetmap.org"
# Without the background-networking flags chromium keeps trying hosts this sandbox cannot reach.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (/usr/bin/chromium): "
                                                      "apt-get install -y chromium"),
]


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def example_registry(data_dir: Path) -> dict[str, list[Sensor]]:
    """The example sites, registered as an operator would before starting the stack."""
    towns = Settings.load().towns
    with Registry(data_dir / "registry.sqlite", towns=towns.keys()) as reg:
        assert reg.load_examples() > 0
        return {t: reg.list(t) for t in towns}


#: Every marker of the dashboard's map, sensor → shown value ("" without one), whether drawn alone or inside a cluster
#: (Leaflet.markercluster keeps clustered markers out of the DOM): the page's own ``heatwatch.markers()``.
MARKER_VALUES = "() => Object.fromEntries(Object.entries(heatwatch.markers()).map(([s, m]) => [s, m.value || '']))"


def marker_values(pg: Any) -> dict[str, str]:
    return pg.evaluate(MARKER_VALUES)
