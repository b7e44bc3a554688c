"""Query parameters validated in one pydantic-core call per dependency: :class:`FastRoute`.

FastAPI solves a route's dependencies anew for every request, and for each query parameter it inspects the
parameter's declaration again (is it a sequence, a model, which alias) before validating it with a validator of
its own: ~6 µs per parameter, ~190 µs for the 16 parameters and 5 dependencies of ``/v1/daily`` — more than
what the middlewares and routing of a request cost together (bench/README.md).

:class:`FastRoute` (an ``APIRouter``'s ``route_class``) leaves the route as FastAPI built it — its signature,
its ``Dependant`` tree, the OpenAPI document, the query guard's view of the declared parameters — and compiles
that tree once into a plan: per dependency, its query parameters as the fields of one pydantic model (the same
annotations and ``Query`` declarations, so the same checks and the same error messages) and its sub-dependencies
in order. A request then walks the plan as FastAPI's ``solve_dependencies`` walks the tree: sub-dependencies first
(a failing one records its errors and is not called), each dependency called once (FastAPI's dependency cache),
then the route's own parameters; any error is the same ``RequestValidationError`` (422) with the same error list,
in the same order, duplicates included.

The dependencies put in front of the route's own are the app's (``FastAPI(dependencies=...)``: the query guard), as
FastAPI adds them; a router included with dependencies of its own (``include_router(..., dependencies=...)``) must
not use this class, since the plan would not see them.

A route whose tree holds anything else (path, header, cookie or body parameters, ``yield`` or sync dependencies,
security scopes, background tasks) is served by FastAPI's own handler, and so is every request while
``app.dependency_overrides`` is set (tests) or FastAPI's native OpenTelemetry instrumentation is on.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_parameterless_sub_dependant
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import PydanticUndefined
from starlette.requests import Request
from starlette.responses import Response

from heatwatch.core.logging import get_logger

from .params import GIVEN_KEY, _is_sequence

log = get_logger("heatwatch.api.solve")

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class _Unsupported(Exception):
    """The tree holds something the plan does not handle: FastAPI's own handler serves the route."""


@dataclass(slots=True)
class _Plan:
    call: Callable[..., Any]
    name: str | None
    use_cache: bool
    subs: tuple[_Plan, ...]
    #: The dependency's query parameters as one model (None: it has none), by alias.
    model: type[BaseModel] | None
    #: (alias, model field name, argument name, is a sequence) per query parameter.
    fields: tuple[tuple[str, str, str, bool], ...]
    #: Where the Request goes (``request: Request`` or ``HTTPConnection``).
    request_names: tuple[str, ...]


def _model_of(dependant: Dependant) -> tuple[type[BaseModel] | None, tuple[tuple[str, str, str, bool], ...]]:
    if not dependant.query_params:
        return None, ()
    definitions: dict[str, Any] = {}
    fields = []
    for i, field in enumerate(dependant.query_params):
        info = field.field_info
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            raise _Unsupported("query parameter model")
        default = info.default
        if (info.alias != field.alias or info.validation_alias not in (None, field.alias)
                or info.default_factory is not None or info.validate_default
                or not (default is PydanticUndefined or default is None or isinstance(default, str | int | float))):
            raise _Unsupported(f"query parameter {field.alias!r} declared beyond what the plan reproduces")
        # The declaration's own constraints (pattern, bounds, literal values) on its annotation, its default, and its
        # name in the query: the checks and messages of FastAPI's validator of this one parameter.
        name = f"f{i}"
        constrained = Annotated[annotation, *info.metadata] if info.metadata else annotation
        definitions[name] = (constrained, Field(default=default, alias=field.alias))
        fields.append((field.alias, name, field.name, _is_sequence(annotation)))
    model = create_model(f"Query_{dependant.name or 'route'}", __config__=ConfigDict(arbitrary_types_allowed=True),
                         **definitions)
    return model, tuple(fields)


def _plan(dependant: Dependant) -> _Plan:
    if (dependant.path_params or dependant.header_params or dependant.cookie_params or dependant.body_params
            or dependant.websocket_param_name or dependant.response_param_name
            or dependant.background_tasks_param_name or dependant.security_scopes_param_name
            or dependant.own_oauth_scopes or dependant.parent_oauth_scopes or dependant.concurrency is not None):
        raise _Unsupported("not only query parameters")
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        raise _Unsupported("not a coroutine function")
    model, fields = _model_of(dependant)
    names = tuple(n for n in (dependant.request_param_name, dependant.http_connection_param_name) if n)
    return _Plan(call, dependant.name, dependant.use_cache, tuple(_plan(d) for d in dependant.dependencies), model,
                 fields, names)


def _errors_of(exc: ValidationError) -> list[dict[str, Any]]:
    """The model's errors as FastAPI reports a parameter's: located at ``("query", alias, ...)`` (the model reads
    its fields by their aliases and names them so)."""
    return [{**err, "loc": ("query", *err.get("loc", ()))} for err in exc.errors(include_url=False)]


class _Solver:
    """One request's walk of the plan (FastAPI's solve_dependencies, without re-reading the declarations)."""

    __slots__ = ("cache", "errors", "given", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.given: dict[str, list[str]] | None = None
        self.cache: dict[Callable[..., Any], Any] = {}
        self.errors: list[dict[str, Any]] = []

    def _given(self) -> dict[str, list[str]]:
        """The query's values by name, in order: as the query guard parsed them (it runs first, as the app's
        dependency), else parsed here the same way (Starlette's ``QueryParams``)."""
        given = self.request.scope.get(GIVEN_KEY)
        if given is None:
            given = {}
            for k, v in self.request.query_params.multi_items():
                given.setdefault(k, []).append(v)
        self.given = given
        return given

    async def values(self, plan: _Plan) -> dict[str, Any] | None:
        """The keyword arguments of ``plan.call``, or None after recording why they cannot be had."""
        values: dict[str, Any] = {}
        failed = False
        for sub in plan.subs:
            sub_values = await self.values(sub)
            if sub_values is None:
                failed = True
                continue
            if sub.use_cache and sub.call in self.cache:
                solved = self.cache[sub.call]
            else:
                solved = await sub.call(**sub_values)
            if sub.name is not None:
                values[sub.name] = solved
            self.cache.setdefault(sub.call, solved)
        if plan.model is not None:
            query = self.given if self.given is not None else self._given()
            given: dict[str, Any] = {}
            for alias, _, _, seq in plan.fields:
                values_of = query.get(alias)
                if values_of:
                    # A sequence takes them all (a copy: the guard's are shared); else the last, as QueryParams.get.
                    given[alias] = list(values_of) if seq else values_of[-1]
            try:
                parsed = plan.model.model_validate(given)
            except ValidationError as exc:
                self.errors += _errors_of(exc)
                failed = True
            else:
                d = parsed.__dict__
                for _, name, arg, _ in plan.fields:
                    values[arg] = d[name]
        if failed:
            return None
        for n in plan.request_names:
            values[n] = self.request
        return values


class FastRoute(APIRoute):
    """An ``APIRoute`` whose requests are solved by a compiled plan of its dependencies (see the module doc)."""

    def plan_for(self, app: Any) -> _Plan | None:
        """The route's plan under ``app`` (whose own dependencies come first, as FastAPI adds them); None when
        FastAPI's handler must serve it."""
        plans: dict[int, tuple[Any, _Plan | None]] = self.__dict__.setdefault("_plans", {})
        app_deps = app.router.dependencies
        hit = plans.get(id(app_deps))
        if hit is None or hit[0] is not app_deps:
            if len(plans) >= 16:  # one app per process; tests build many
                plans.clear()
            plan = None
            if self.response_field is None and self.status_code is None and _answers_responses(self.endpoint):
                try:
                    plan = _plan(_with_dependencies(self.dependant, app_deps, self.path_format))
                except _Unsupported:
                    pass
                except Exception as exc:  # a FastAPI whose Dependant differs: its own handler serves the route
                    log.warning("api.fast_route_unplanned", path=self.path, error=repr(exc))
            hit = plans[id(app_deps)] = (app_deps, plan)
        return hit[1]

    async def solve(self, request: Request, plan: _Plan) -> dict[str, Any]:
        """The endpoint's arguments for ``request``; raises what FastAPI raises (422 with the same errors)."""
        solver = _Solver(request)
        values = await solver.values(plan)
        if values is None:
            raise RequestValidationError(solver.errors)
        return values

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()

        async def handler(request: Request) -> Response:
            plan = self.plan_for(request.app)
            if plan is None or request.app.dependency_overrides or "fastapi.telemetry" in request.scope:
                return await standard(request)
            response = await plan.call(**await self.solve(request, plan))
            if not isinstance(response, Response):
                raise TypeError(f"{self.path}: the endpoint returned {type(response).__name__}, not a Response")
            return response

        return handler


def _answers_responses(endpoint: Callable[..., Any]) -> bool:
    """The endpoint is declared to return a Response: FastAPI sends it as it is (anything else it would serialise,
    which only its own handler does)."""
    try:
        returns = typing.get_type_hints(endpoint).get("return")
    except Exception:  # an annotation that does not resolve: leave the route to FastAPI
        return False
    return isinstance(returns, type) and issubclass(returns, Response)


def _with_dependencies(dependant: Dependant, dependencies: list[Depends], path: str) -> Dependant:
    """The route's tree with the app's dependencies in front, as FastAPI builds it."""
    if not dependencies:
        return dependant
    subs = [get_parameterless_sub_dependant(depends=d, path=path) for d in dependencies]
    return Dependant(**{**{f: getattr(dependant, f) for f in dependant.__dataclass_fields__},
                        "dependencies": [*subs, *dependant.dependencies]})
