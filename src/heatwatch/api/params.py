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
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote_plus

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import BaseModel

from .errors import ApiError

#: The scope key holding the normalised query string (``str``) once the guard has run.
SCOPE_KEY = "heatwatch.query"
#: The same as (name, value) pairs.
PAIRS_KEY = "heatwatch.query_pairs"
#: The query as given, parsed once: name -> its values in order (what FastRoute validates; api/solve.py).
GIVEN_KEY = "heatwatch.query_given"


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


@dataclass(frozen=True, slots=True)
class _Normalised:
    query: str  # the normalised query string
    pairs: tuple[tuple[str, str], ...]
    given: dict[str, list[str]]  # read only


#: Queries normalised per route and raw query string: the same raw query (a dashboard polling, a client's retries)
#: is parsed, checked and encoded once. Bounded; emptied when full.
MEMO_ENTRIES = 2048
_specs: dict[int, tuple[APIRoute, ParamSpec, dict[bytes, _Normalised]]] = {}


def _spec(route: APIRoute) -> tuple[ParamSpec, dict[bytes, _Normalised]]:
    hit = _specs.get(id(route))
    if hit is None or hit[0] is not route:
        hit = _specs[id(route)] = (route, spec_of(route), {})
    return hit[1], hit[2]


def _shown(names: Sequence[str]) -> str:
    shown = [n[:40] + ("…" if len(n) > 40 else "") for n in sorted(names)[:10]]
    return ", ".join(repr(n) for n in shown) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def _parsed(query_string: bytes) -> list[tuple[str, str]]:
    return parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)


def normalised_pairs(query_string: bytes, spec: ParamSpec, pairs: list[tuple[str, str]] | None = None
                     ) -> list[tuple[str, str]]:
    """The declared parameters as (name, value) pairs, sorted, defaults filled in; raises 400 for unknown or repeated
    ones. ``urlencode`` of them is the normalised query string. ``pairs``: the query string already parsed."""
    if pairs is None:
        pairs = _parsed(query_string)
    names = spec.names
    given: set[str] = set()
    repeated: set[str] = set()
    unknown: set[str] = set()
    for k, _ in pairs:
        if k not in names:
            unknown.add(k)
        elif k in given:
            repeated.add(k)
        given.add(k)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise ApiError(400, "unknown_parameter", f"unknown query parameter(s) {_shown(sorted(unknown))}; this endpoint "
                                                 f"takes: {known}")
    repeated -= spec.repeatable
    if repeated:
        raise ApiError(400, "repeated_parameter", f"query parameter(s) {_shown(sorted(repeated))} given more than once")
    out = pairs + [(k, v) for k, v in spec.defaults if k not in given]
    return sorted(out, key=lambda kv: kv[0])  # stable: repeated values keep their order


@lru_cache(maxsize=4096)
def _quoted_short(text: str) -> str:
    return quote_plus(text)


def _quoted(text: str) -> str:
    # Names and most values repeat from request to request (town, tz, dates, formats): their encoding is kept.
    return _quoted_short(text) if len(text) <= 64 else quote_plus(text)


def encoded(pairs: Sequence[tuple[str, str]]) -> str:
    """``urllib.parse.urlencode(pairs)`` for pairs of strings."""
    return "&".join([f"{_quoted(k)}={_quoted(v)}" for k, v in pairs])


def normalised(query_string: bytes, route: APIRoute) -> _Normalised:
    """The route's normalised query for this raw query string (400 for unknown or repeated parameters)."""
    spec, memo = _spec(route)
    hit = memo.get(query_string)
    if hit is None:
        raw = _parsed(query_string)
        pairs = normalised_pairs(query_string, spec, list(raw))
        given: dict[str, list[str]] = {}
        for k, v in raw:
            given.setdefault(k, []).append(v)
        hit = _Normalised(encoded(pairs), tuple(pairs), given)
        if len(memo) >= MEMO_ENTRIES:
            memo.clear()
        memo[query_string] = hit
    return hit


async def query_guard(request: Request) -> None:
    scope = request.scope
    route = scope.get("route")
    if not isinstance(route, APIRoute):
        return
    hit = normalised(scope.get("query_string", b""), route)
    scope[SCOPE_KEY] = hit.query
    scope[PAIRS_KEY] = hit.pairs  # kept: meta and next links read them, the string need not be parsed
    scope[GIVEN_KEY] = hit.given


def normalised_params(request: Request) -> list[tuple[str, str]]:
    """The normalised query as pairs (what the guard computed; the raw query for a request it did not see)."""
    pairs = request.scope.get(PAIRS_KEY)
    if pairs is not None:
        return list(pairs)
    query = request.scope.get(SCOPE_KEY)
    if query is None:
        return sorted(request.query_params.multi_items())
    return parse_qsl(query, keep_blank_values=True)
