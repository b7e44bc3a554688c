"""Answering one SensorThings request: the resource path, the query options, the JSON with control information.

Resource paths (OGC 18-088 §9.2): ``/{Set}``, ``/{Set}({id})``, navigation to related entities at any depth
(``/Things('s')/Datastreams('s:t')/Observations``), ``/{Set}({id})/{property}`` and its ``/$value``, and ``/$ref``
on collections. Ids are strings, quoted (``Things('vitre-centre-01')``); a bare number is read as a string too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from ..errors import ApiError
from .model import ENTITY_SETS, KINDS, NAVIGATION, Model, split_datastream, split_observation
from .observations import Observations
from .odata import ODataError, Options, evaluate

DEFAULT_TOP = 100
EXPANDED_TOP = 100
#: Entities per request whose Observations are expanded (each costs database statements).
MAX_EXPANDED_OBSERVATION_LISTS = 50

_SEGMENT = re.compile(r"^(?P<name>\$?[A-Za-z]+)(?:\((?P<key>'(?:[^']|'')*'|[A-Za-z0-9_.:-]+)\))?$")
_SAFE = ":/-_.~'"  # ids in links stay readable: Things('vitre-centre-01')


class NotFound(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(404, "not_found", message)


@dataclass(slots=True)
class Target:
    kind: str  # collection, entity, property, value, ref
    set: str
    ids: list[str] | None = None  # collection of in-memory entities; None for Observations
    streams: list[str] | None = None  # an Observations collection: the datastreams it reads
    id: str | None = None
    prop: str | None = None
    path: str | None = None  # the resource path it was reached by (next links repeat it)


def quote_id(eid: str) -> str:
    return "'" + eid.replace("'", "''") + "'"


def _key(raw: str) -> str:
    return raw[1:-1].replace("''", "'") if raw.startswith("'") else raw


class Service:
    def __init__(self, model: Model, observations: Observations, base: str, max_top: int) -> None:
        self.model = model
        self.obs = observations
        self.base = base
        self.max_top = max_top

    # paths ------------------------------------------------------------------------------------------------------

    def resolve(self, path: str) -> Target:
        segments = [s for s in path.split("/") if s]
        if not segments:
            raise NotFound("empty resource path")
        target: Target | None = None
        for i, seg in enumerate(segments):
            m = _SEGMENT.match(seg)
            if m is None:
                raise NotFound(f"cannot read path segment {seg[:60]!r}")
            name, key = m.group("name"), m.group("key")
            if target is None:
                if name not in ENTITY_SETS:
                    raise NotFound(f"no entity set {name!r}; entity sets: {', '.join(ENTITY_SETS)}")
                target = self._collection(name)
            elif name == "$value":
                if target.kind != "property" or i != len(segments) - 1:
                    raise NotFound("$value follows a property")
                target.kind = "value"
                continue
            elif name == "$ref":
                if target.kind not in ("collection", "entity") or i != len(segments) - 1:
                    raise NotFound("$ref ends a path to entities")
                target.kind = "ref" if target.kind == "collection" else "ref1"
                continue
            elif target.kind == "entity":
                assert target.id is not None
                nav = NAVIGATION[target.set].get(name)
                if nav is None:
                    target = Target("property", target.set, id=target.id, prop=name)
                    if key is not None:
                        raise NotFound(f"{name} is a property of {target.set}, not a navigation")
                    continue
                target = self._navigate(target.set, target.id, name)
            else:
                raise NotFound(f"{seg!r} cannot follow a {target.kind}")
            if key is not None:
                target = self._pick(target, _key(key))
        assert target is not None
        return target

    def _collection(self, entity_set: str) -> Target:
        if entity_set == "Observations":
            return Target("collection", entity_set, streams=self.model.ids("Datastreams"))
        return Target("collection", entity_set, ids=self.model.ids(entity_set))

    def _navigate(self, entity_set: str, eid: str, nav: str) -> Target:
        if entity_set == "Observations":
            found = split_observation(eid)
            assert found is not None
            sensor, kind, _ = found
            if nav == "Datastream":
                return Target("entity", "Datastreams", id=f"{sensor}:{kind.code}")
            if not self.model.exists("FeaturesOfInterest", sensor):
                raise NotFound("this observation has no FeatureOfInterest (the site has no position)")
            return Target("entity", "FeaturesOfInterest", id=sensor)
        if nav == "Observations":
            if entity_set == "Datastreams":
                return Target("collection", "Observations", streams=[eid])
            return Target("collection", "Observations", streams=[f"{eid}:{k}" for k in KINDS])
        rel = self.model.related(entity_set, eid, nav)
        assert rel is not None
        target_set, ids, one = rel
        if one:
            if not ids:
                raise NotFound(f"{entity_set}({quote_id(eid)}) has no {nav}")
            return Target("entity", target_set, id=ids[0])
        return Target("collection", target_set, ids=ids)

    def _pick(self, target: Target, eid: str) -> Target:
        if target.kind != "collection":
            raise NotFound("a key follows a collection")
        if target.set == "Observations":
            found = split_observation(eid)
            if found is None or f"{found[0]}:{found[1].code}" not in set(target.streams or []) \
                    or found[0] not in self.model.sensors:
                raise NotFound(f"no Observation {eid!r}")
            return Target("entity", "Observations", id=eid)
        if eid not in set(target.ids or []) or not self.model.exists(target.set, eid):
            raise NotFound(f"no {target.set[:-1] if target.set.endswith('s') else target.set} {eid!r} here")
        return Target("entity", target.set, id=eid)

    # entities ---------------------------------------------------------------------------------------------------

    def self_link(self, entity_set: str, eid: str) -> str:
        return f"{self.base}/{entity_set}({quote(quote_id(eid), safe=_SAFE)})"

    async def fetch(self, entity_set: str, eid: str) -> dict[str, Any]:
        if entity_set == "Observations":
            found = split_observation(eid)
            obs = await self.obs.one(*found) if found else None  # type: ignore[misc]
            if obs is None:
                raise NotFound(f"no Observation {eid!r}")
            return obs
        return {"@iot.id": eid, **self.model.body(entity_set, eid)}

    def _links(self, entity_set: str, entity: dict[str, Any]) -> dict[str, Any]:
        link = self.self_link(entity_set, entity["@iot.id"])
        out = {"@iot.id": entity["@iot.id"], "@iot.selfLink": link}
        out.update({k: v for k, v in entity.items() if not k.startswith("@") and not k.startswith("_")})
        for nav in NAVIGATION[entity_set]:
            out[f"{nav}@iot.navigationLink"] = f"{link}/{nav}"
        return out

    async def render(self, entity_set: str, entity: dict[str, Any], o: Options, depth: int = 0) -> dict[str, Any]:
        out = self._links(entity_set, entity)
        if o.select is not None:
            keep = set(o.select)
            sel = {}
            for k, v in out.items():
                name = {"@iot.id": "id", "@iot.selfLink": "selfLink"}.get(k, k.split("@")[0])
                if name in keep:
                    sel[k] = v
            out = sel
        for nav, sub in o.expand.items():
            if nav not in NAVIGATION[entity_set]:
                raise ODataError(f"$expand: {entity_set} has no navigation property {nav!r}; it has "
                                 f"{', '.join(NAVIGATION[entity_set])}")
            try:
                target = self._navigate(entity_set, entity["@iot.id"], nav)
            except NotFound:
                out[nav] = None
                continue
            if target.kind == "entity":
                assert target.id is not None
                out[nav] = await self.render(target.set, await self.fetch(target.set, target.id), sub, depth + 1)
            else:
                target.path = f"{entity_set}({quote_id(entity['@iot.id'])})/{nav}"
                page = await self.collection(target, sub, nested=True)
                out[nav] = page["value"]
                if "@iot.nextLink" in page:
                    out[f"{nav}@iot.nextLink"] = page["@iot.nextLink"]
                if "@iot.count" in page:
                    out[f"{nav}@iot.count"] = page["@iot.count"]
        return out

    def _getter(self, entity_set: str, entity: dict[str, Any]) -> Any:
        def get(path: tuple[str, ...]) -> Any:
            value: Any = entity
            current_set = entity_set
            for i, p in enumerate(path):
                if p == "id" and isinstance(value, dict) and "@iot.id" in value:
                    return value["@iot.id"] if i == len(path) - 1 else None
                nav = NAVIGATION.get(current_set, {}).get(p) if isinstance(value, dict) and "@iot.id" in value \
                    else None
                if nav is not None and nav[0] != "Observations":
                    try:
                        t = self._navigate(current_set, value["@iot.id"], p)
                    except NotFound:
                        return None
                    tid = t.id if t.kind == "entity" else (t.ids[0] if t.ids else None)
                    if tid is None:
                        return None
                    current_set = t.set
                    value = {"@iot.id": tid, **self.model.body(t.set, tid)}
                    continue
                if not isinstance(value, dict):
                    return None
                value = value.get(p)
            return value
        return get

    # collections ------------------------------------------------------------------------------------------------

    def next_link(self, target: Target, o: Options, **change: Any) -> str:
        q: dict[str, str] = {}
        if o.filter_text is not None:
            q["$filter"] = o.filter_text
        if o.count:
            q["$count"] = "true"
        if o.top is not None:
            q["$top"] = str(o.top)
        for k in ("$orderby", "$select", "$expand"):
            if o.raw.get(k) is not None:
                q[k] = o.raw[k]  # type: ignore[assignment]
        for k, v in change.items():
            key = "$" + k
            if v is None:
                q.pop(key, None)
            else:
                q[key] = str(v)
        return f"{self.base}/{target.path or target.set}?{urlencode(q, safe='$' + _SAFE, quote_via=quote)}"

    async def collection(self, target: Target, o: Options, nested: bool = False) -> dict[str, Any]:
        top = o.top if o.top is not None else (EXPANDED_TOP if nested else DEFAULT_TOP)
        top = min(top, self.max_top)
        out: dict[str, Any] = {}
        if target.set == "Observations":
            desc = False
            for path, d in o.orderby:
                if path not in (("phenomenonTime",), ("resultTime",), ("id",)):
                    raise ODataError("Observations are ordered by phenomenonTime (asc or desc) only")
                desc = d
                break
            streams = target.streams or []
            if o.count:
                out["@iot.count"] = await self.obs.count(streams, o.filter)
            items, token = await self.obs.page(streams, o.filter, desc, top, o.skip, o.skiptoken)
            out["value"] = [await self.render("Observations", e, o) for e in items]
            if token is not None:
                out["@iot.nextLink"] = self.next_link(target, o, skip=None, skiptoken=token, top=top)
            return out
        entities = [{"@iot.id": i, **self.model.body(target.set, i)} for i in (target.ids or [])]
        if o.filter is not None:
            entities = [e for e in entities if evaluate(o.filter, self._getter(target.set, e)) is True]
        for path, desc in reversed(o.orderby):
            entities.sort(key=lambda e, p=path: _sort_key(self._getter(target.set, e)(p)), reverse=desc)
        if o.count:
            out["@iot.count"] = len(entities)
        page = entities[o.skip:o.skip + top]
        if "Observations" in o.expand and len(page) > MAX_EXPANDED_OBSERVATION_LISTS:
            raise ODataError(f"$expand=Observations is served for at most {MAX_EXPANDED_OBSERVATION_LISTS} entities "
                             f"per request; set $top={MAX_EXPANDED_OBSERVATION_LISTS} or less")
        out["value"] = [await self.render(target.set, e, o) for e in page]
        if len(entities) > o.skip + top:
            out["@iot.nextLink"] = self.next_link(target, o, skip=o.skip + top, top=top)
        return out


def _sort_key(v: Any) -> tuple[int, Any]:
    if v is None:
        return (1, "")
    if isinstance(v, bool | int | float):
        return (0, float(v))
    return (0, str(v))


def check_stream(ds_id: str) -> bool:
    return split_datastream(ds_id) is not None
