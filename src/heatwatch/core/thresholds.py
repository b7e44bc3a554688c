"""The alert thresholds: one set, read from ``HEATWATCH_ALERT_*``, used by analytics' alert rules and
shown by the dashboard (``/dashboard/config.json``), so a low battery on the page is the low battery
that raises an alert.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Météo-France's heat-wave vigilance season, first and last (month, day) included (docs/science/canicule.md):
#: the demo's summer, the season rankings and the notifications' daily digest all mean this one.
VIGILANCE_SEASON_FIRST = (6, 1)
VIGILANCE_SEASON_LAST = (9, 15)
VIGILANCE_SEASON_MMDD = tuple(f"{m:02d}-{d:02d}" for m, d in (VIGILANCE_SEASON_FIRST, VIGILANCE_SEASON_LAST))


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """Where each alert opens. Defaults are those of the settings (``HEATWATCH_ALERT_*``)."""

    temperature_c: float = 35.0
    heat_index_c: float = 40.0  # NWS "danger" starts at 103 °F = 39.4 °C
    uhi_night_c: float = 4.0
    offline_s: int = 3600
    battery_v: float = 2.6
    #: devices that report their charge in percent (SenML %EL, Milesight, SenseCAP), not volts
    battery_pct: float = 20.0
    qc_hours: int = 3
    #: hysteresis: how far back past the threshold a value must go to end the alert
    temperature_clear_c: float = 0.5
    heat_index_clear_c: float = 1.0
    uhi_clear_c: float = 0.5
    battery_clear_v: float = 0.05
    battery_clear_pct: float = 3.0
    #: span of the median the heat rules look at
    live_window_s: int = 1800
    #: how far back "last seen" looks; older sensors count as offline since at least that long
    seen_lookback_s: int = 7 * 86400

    def public(self) -> dict[str, Any]:
        """What a client (the dashboard) needs: where each alert opens."""
        keep = ("temperature_c", "heat_index_c", "uhi_night_c", "offline_s", "battery_v", "battery_pct", "qc_hours")
        return {k: v for k, v in asdict(self).items() if k in keep}


DEFAULT_THRESHOLDS = AlertThresholds()
