"""Where a town's readings come from and under which licence each source publishes them (docs/citizens.md).

Sources: the town's own network (the instance's licence, Licence Ouverte / Etalab 2.0), residents who registered
through ``/v1/contribute`` (the licence each consented to: Etalab 2.0, or ODbL 1.0 stored as the sensor's
``licence``), sensor.community stations (ODbL 1.0, © sensor.community contributors) and other citizen or crowd
sites of the registry (the instance's licence unless the registry names another).

A file or answer holding rows of several sources holds each row under its source's licence. The Open Database
License is share-alike: a database made of ODbL rows and Licence Ouverte rows can be offered as a whole only under
the ODbL (the Licence Ouverte allows that re-use, with attribution), so the per-sensor datasets of a town with ODbL
sources are published under the ODbL as a whole, and under the Licence Ouverte for the town network's rows alone
(``network=town``). Town-level indices computed from them are produced works (ODbL §4.3): the Licence Ouverte
with a notice naming the ODbL sources.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .model import Sensor
from .tabular import LICENCE as ETALAB
from .trust import network_of, trust_of

ODBL: dict[str, str] = {
    "id": "ODbL-1.0",
    "spdx": "ODbL-1.0",
    "title": "Open Database License (ODbL) 1.0",
    "url": "https://opendatacommons.org/licenses/odbl/1-0/",
}
#: A sensor's ``licence`` (the registry's, SPDX-like id) → the licence; absent: the instance's (Etalab 2.0).
LICENCES: dict[str, dict[str, str]] = {ETALAB["id"]: ETALAB, ODBL["id"]: ODBL}
SENSOR_COMMUNITY_ATTRIBUTION = "© sensor.community contributors, ODbL 1.0 (https://sensor.community)"


@dataclass(frozen=True, slots=True)
class SourceKind:
    id: str
    title: str
    producer: str
    path: str | None = None  # where the source itself is described


TOWN_NETWORK = SourceKind("town_network", "the town's own sensor network", "the town")
CONTRIBUTORS = SourceKind("contributors", "residents' sensors registered through heatwatch",
                          "residents (pseudonymous)", None)
SENSOR_COMMUNITY = SourceKind("sensor.community", "sensor.community stations in the town's box",
                              "sensor.community contributors", "https://sensor.community")
CITIZEN_REGISTRY = SourceKind("citizen_registry", "citizen and crowd sites entered in the registry",
                              "residents and crowd networks")


def source_of(sensor: Sensor) -> SourceKind:
    if network_of(sensor) == "town":
        return TOWN_NETWORK
    if (sensor.provenance or "").startswith("sensor.community"):
        return SENSOR_COMMUNITY
    if sensor.provenance == "contributor":
        return CONTRIBUTORS
    return CITIZEN_REGISTRY


def licence_of(sensor: Sensor) -> dict[str, str]:
    """The licence of the sensor's data: the registry's where it names one heatwatch knows, else the instance's.
    An unknown name is not published as the instance's: it is kept as given (id and title both the name)."""
    if not sensor.licence:
        return ETALAB
    return LICENCES.get(sensor.licence) or {"id": sensor.licence, "spdx": sensor.licence, "title": sensor.licence,
                                            "url": ""}


@dataclass(slots=True)
class Source:
    """The sensors of one source publishing under one licence."""

    kind: SourceKind
    licence: dict[str, str]
    sensors: int = 0
    trust: Counter[str] = field(default_factory=Counter)

    @property
    def attribution(self) -> str | None:
        return SENSOR_COMMUNITY_ATTRIBUTION if self.kind is SENSOR_COMMUNITY else None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.kind.id, "title": self.kind.title, "producer": self.kind.producer,
                               "licence": self.licence, "sensors": self.sensors, "trust": dict(self.trust)}
        if self.kind.path:
            out["path"] = self.kind.path
        if self.attribution:
            out["attribution"] = self.attribution
        return out

    def describe(self) -> str:
        text = f"{self.kind.title} ({self.sensors} sensor{'s' if self.sensors != 1 else ''}; {self.kind.producer}) " \
               f"under {self.licence['title']}"
        return text + (f", {self.attribution}" if self.attribution else "")


def sources(sensors: Iterable[Sensor]) -> list[Source]:
    """The sources of ``sensors`` (one per kind and licence), the town's network first."""
    out: dict[tuple[str, str], Source] = {}
    for s in sensors:
        kind, lic = source_of(s), licence_of(s)
        src = out.setdefault((kind.id, lic["id"]), Source(kind, lic))
        src.sensors += 1
        src.trust[trust_of(s)] += 1
    order = [TOWN_NETWORK.id, CONTRIBUTORS.id, SENSOR_COMMUNITY.id, CITIZEN_REGISTRY.id]
    return sorted(out.values(), key=lambda s: (order.index(s.kind.id), s.licence["id"]))


def licences(srcs: Iterable[Source]) -> list[dict[str, str]]:
    """The distinct licences of ``srcs``, the instance's first."""
    seen: dict[str, dict[str, str]] = {ETALAB["id"]: ETALAB}
    for s in srcs:
        seen.setdefault(s.licence["id"], s.licence)
    return list(seen.values())


def combined_licence(srcs: Iterable[Source]) -> dict[str, str]:
    """The licence rows of all ``srcs`` together can be offered under: the ODbL when a source is ODbL (share-alike),
    else the instance's."""
    return ODBL if any(s.licence["id"] == ODBL["id"] for s in srcs) else ETALAB
