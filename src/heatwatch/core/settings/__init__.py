"""Typed settings, validated once at start-up of each command, grouped per service over a shared core.

=====================  ==========================================  ===========================================
group                  commands                                    variables
=====================  ==========================================  ===========================================
:class:`CoreSettings`  every command (``sensors``, ``simulate``)   broker, database, data folder, towns, logs
:class:`IngestSettings`  ``ingest``                                core + subscriptions, batching, spool...
:class:`AnalyticsSettings`  ``analytics``, ``backfill``            core + ``HEATWATCH_ANALYTICS_*``,
                                                                   ``HEATWATCH_ALERT_*``
:class:`ApiSettings`   ``api``, ``report``                         core + ``HEATWATCH_ALERT_*``, admin token,
                                                                   ``HEATWATCH_API_*``, ``HEATWATCH_LIVE_*``,
                                                                   ``HEATWATCH_DASHBOARD_*``
:class:`Settings`      ``up`` (it starts them all)                 every group
=====================  ==========================================  ===========================================

Each entry point calls ``<Group>.load()`` and passes the result down; nothing reads the environment
later. A bad value stops the command before it starts anything, with a message naming the variable.
"""

from __future__ import annotations

from .analytics import AnalyticsSettings
from .api import ApiOptions, ApiSettings, DashboardOptions, LiveOptions
from .base import AlertSettings, CoreSettings, Group, MqttUrl, load_towns, read_secret_file
from .ingest import DEFAULT_SUBSCRIPTIONS, IngestSettings, PayloadFormat, Subscription


class Settings(IngestSettings, AnalyticsSettings, ApiSettings):
    """Every group at once: what ``heatwatch up`` validates before starting any service, and what tests
    hand to any service."""


__all__ = [
    "DEFAULT_SUBSCRIPTIONS",
    "AlertSettings",
    "AnalyticsSettings",
    "ApiOptions",
    "ApiSettings",
    "CoreSettings",
    "DashboardOptions",
    "Group",
    "IngestSettings",
    "LiveOptions",
    "MqttUrl",
    "PayloadFormat",
    "Settings",
    "Subscription",
    "load_towns",
    "read_secret_file",
]
