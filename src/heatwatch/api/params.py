"""The normalised request: unknown query parameters refused, and what answers and caches are keyed on.

Every route declares its query parameters (FastAPI signatures and dependencies). :func:`query_guard`, a
dependency of the whole app, reads them from the matched route and

* refuses a request naming a parameter the route does not declare (400 ``unknown_parameter``, naming them),
  or repeating one that takes a single value (400 ``repeated_parameter``): an unknown parameter used to change
  the cache key without changing the answer, so any client could bypass the cache at will;
* puts the normalised query in the request's scope: the declared parameters only, sorted, each default
  filled in. Two requests meaning the same thing have the same normalised query, and everything that depends
  on the request — the answer's ``meta.query``, its ``next`` links, the cache keys (:mod:`.cache`) — is built
  from it, never from the raw query string or the headers.
"""

from __future__ import annotations

import enum
import types
import typing
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import BaseModel

from .errors import ApiError

#: The scope key holding the normalised query string (``str``) once the guard has run.
SCOPE_KEY = "heatwatch.query"
#: The same as (name, value) pairs.
PAIRS_KEY = "heatwatch.query_pairs"


@dataclass(frozen=True, slots=True)
class ParamSpec:
    names: frozenset[str]
    repeatable: frozenset[str]
    defaults: tuple[tuple[str, str], ...]


def _is_sequence(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, set, tuple, frozenset, Sequence):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence(a) for a in typing.get_args(annotation))
    return False


def _text(value: Any) -> str | None:
    """A default as it would be written in a query string; None for defaults that are not written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _fields(dependant: Any) -> list[Any]:
    out = list(dependant.query_params)
    for sub in dependant.dependencies:
        out += _fields(sub)
    return out


def spec_of(route: APIRoute) -> ParamSpec:
    names: set[str] = set()
    repeatable: set[str] = set()
    defaults: dict[str, str] = {}
    for field in _fields(route.dependant):
        info = field.field_info
        annotation = info.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        items = ([(f.alias or n, f) for n, f in model.model_fields.items()] if model is not None
                 else [(field.alias, info)])
        for name, fi in items:
            names.add(name)
            if _is_sequence(fi.annotation):
                repeatable.add(name)
            elif not fi.is_required():
                text = _text(fi.default)
                if text is not None:
                    defaults[name] = text
    return ParamSpec(frozenset(names), frozenset(repeatable), tuple(sorted(defaults.items())))


_specs: dict[int, tuple[APIRoute, ParamSpec]] = {}


def _spec(route: APIRoute) -> ParamSpec:
    hit = _specs.get(id(route))
    if hit is None or hit[0] is not route:
        hit = _specs[id(route)] = (route, spec_of(route))
    return hit[1]


def _shown(names: Sequence[str]) -> str:
    shown = [n[:40] + ("…" if len(n) > 40 else "") for n in sorted(names)[:10]]
    return ", ".join(repr(n) for n in shown) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def normalised_pairs(query_string: bytes, spec: ParamSpec) -> list[tuple[str, str]]:
    """The declared parameters as (name, value) pairs, sorted, defaults filled in; raises 400 for unknown or repeated
    ones. ``urlencode`` of them is the normalised query string."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    unknown = sorted({k for k, _ in pairs if k not in spec.names})
    if unknown:
        known = ", ".join(sorted(spec.names)) or "none"
        raise ApiError(400, "unknown_parameter", f"unknown query parameter(s) {_shown(unknown)}; this endpoint "
                                                 f"takes: {known}")
    counts = Counter(k for k, _ in pairs)
    repeated = sorted(k for k, n in counts.items() if n > 1 and k not in spec.repeatable)
    if repeated:
        raise ApiError(400, "repeated_parameter", f"query parameter(s) {_shown(repeated)} given more than once")
    given = {k for k, _ in pairs}
    pairs += [(k, v) for k, v in spec.defaults if k not in given]
    return sorted(pairs, key=lambda kv: kv[0])  # stable: repeated values keep their order


async def query_guard(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    pairs = normalised_pairs(request.scope.get("query_string", b""), _spec(route))
    request.scope[SCOPE_KEY] = urlencode(pairs)
    request.scope[PAIRS_KEY] = tuple(pairs)  # kept: meta and next links read them, the string need not be parsed


def normalised_params(request: Request) -> list[tuple[str, str]]:
    """The normalised query as pairs (what the guard computed; the raw query for a request it did not see)."""
    pairs = request.scope.get(PAIRS_KEY)
    if pairs is not None:
        return list(pairs)
    query = request.scope.get(SCOPE_KEY)
    if query is None:
        return sorted(request.query_params.multi_items())
    return parse_qsl(query, keep_blank_values=True)
