"""Apps of test settings: the api's options changed for one test, the rest as loaded."""

from __future__ import annotations

from typing import Any

from heatwatch.core.settings import ApiSettings

#: What most api tests want: no rate limit and no server cache, since they write then read at once.
#: Tests write then read at once: no cache, and no resident aggregates (which see a write a moment later;
#: tests/api/test_resident.py is about them).
NO_LIMITS: dict[str, Any] = {"rate_limit_per_s": 0, "cache_ttl_latest_s": 0, "cache_ttl_agg_s": 0,
                             "resident_days": 0}


def with_api(settings: ApiSettings, **options: Any) -> ApiSettings:
    """``settings`` with some ``HEATWATCH_API_*`` options changed (validated like the environment's)."""
    api = settings.api.model_validate(settings.api.model_dump() | options)
    return settings.model_copy(update={"api": api})
