"""orjson-rendered responses (FastAPI's ORJSONResponse is deprecated)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

_FAST = orjson.OPT_SERIALIZE_NUMPY
_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(obj: Any) -> bytes:
    """JSON bytes; dict keys that are not strings (ints, dates) written as strings. OPT_NON_STR_KEYS makes orjson
    ~1.5x slower on every dict, and answers rarely have such keys: they are tried without it first (the bytes of
    string keys are the same either way)."""
    try:
        return orjson.dumps(obj, option=_FAST)
    except TypeError:
        return orjson.dumps(obj, option=_OPTS)


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else dumps(content)


class GeoJSONBytes(JSONBytes):
    media_type = "application/geo+json"


class JSONLDBytes(JSONBytes):
    media_type = "application/ld+json"
