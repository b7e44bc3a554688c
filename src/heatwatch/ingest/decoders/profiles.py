"""LoRaWAN device profiles: how one device model names its measurements in a TTS ``decoded_payload``.

Payload formatters (TTN device repository, vendor codecs) each pick their own field names and
units, so the mapping is configuration, not code: ``heatwatch/data/device_profiles.toml``
holds one table per model, and :func:`load_profiles` reads it (or another file with the same
layout). A profile is chosen from the registry (``Sensor.device_profile``) or, failing that,
guessed from the field names present (:meth:`Profiles.detect`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ...core.datafiles import read_toml
from ...core.errors import ConfigError

# The Reading attributes a profile may fill; everything else in a payload is ignored.
TARGETS = ("temperature", "humidity", "battery_v")
_MEASUREMENTS = ("temperature", "humidity")


@dataclass(frozen=True, slots=True)
class FieldMap:
    """One payload field and the linear conversion to heatwatch units: ``raw * scale + offset``."""

    field: str
    scale: float = 1.0
    offset: float = 0.0

    def convert(self, raw: float) -> float:
        # Skip the arithmetic for the identity map so values pass through bit-exact.
        if self.scale == 1.0 and self.offset == 0.0:
            return raw
        # Rounded so a mV→V scale gives 3.538, not 3.5380000000000003.
        return round(raw * self.scale + self.offset, 9)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    fields: Mapping[str, FieldMap]  # target ("temperature", ...) -> payload field
    time: str | None = None
    detect: frozenset[str] = frozenset()
    description: str = ""
    signature: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        names = {f.field for f in self.fields.values()} | set(self.detect)
        if self.time:
            names.add(self.time)
        object.__setattr__(self, "signature", frozenset(names))

    def measures(self, payload: Mapping[str, object]) -> bool:
        """Whether the payload carries a temperature or humidity field this profile knows."""
        return any(t in self.fields and self.fields[t].field in payload for t in _MEASUREMENTS)


class Profiles(Mapping[str, Profile]):
    """The known profiles by name, in file order (the order breaks auto-detection ties)."""

    def __init__(self, profiles: list[Profile]) -> None:
        self._by_name = {p.name: p for p in profiles}

    def __getitem__(self, name: str) -> Profile:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def detect(self, payload: Mapping[str, object]) -> Profile | None:
        """The profile sharing most field names with the payload, among those that find a measurement.

        Models that share names (``temperature``/``humidity``) map them identically, so a tie
        between them gives the same reading whichever wins.
        """
        best: Profile | None = None
        best_score = 0
        keys = payload.keys()
        for p in self._by_name.values():
            if not p.measures(payload):
                continue
            score = len(p.signature & keys)
            if score > best_score:
                best, best_score = p, score
        return best


def _field_map(name: str, target: str, spec: object) -> FieldMap:
    if isinstance(spec, str):
        return FieldMap(spec)
    if not isinstance(spec, dict) or not isinstance(spec.get("field"), str):
        raise ConfigError(f"device profile {name!r}: {target} must be a field name or {{ field = \"...\" }}")
    unknown = set(spec) - {"field", "scale", "offset"}
    if unknown:
        raise ConfigError(f"device profile {name!r}: {target} has unknown keys {sorted(unknown)}")
    try:
        return FieldMap(spec["field"], float(spec.get("scale", 1.0)), float(spec.get("offset", 0.0)))
    except (TypeError, ValueError):
        raise ConfigError(f"device profile {name!r}: {target} scale/offset must be numbers") from None


def parse_profiles(raw: Mapping[str, Any]) -> Profiles:
    """Profiles from a parsed TOML document (one table per profile)."""
    out = []
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"device profile {name!r} must be a table")
        unknown = set(table) - {*TARGETS, "time", "detect", "description"}
        if unknown:
            raise ConfigError(f"device profile {name!r}: unknown keys {sorted(unknown)}")
        fields = {t: _field_map(name, t, table[t]) for t in TARGETS if t in table}
        if not any(t in fields for t in _MEASUREMENTS):
            raise ConfigError(f"device profile {name!r} maps neither temperature nor humidity")
        time = table.get("time")
        detect = table.get("detect", [])
        if time is not None and not isinstance(time, str):
            raise ConfigError(f"device profile {name!r}: time must be a field name")
        if not isinstance(detect, list) or not all(isinstance(d, str) for d in detect):
            raise ConfigError(f"device profile {name!r}: detect must be a list of field names")
        out.append(Profile(name, fields, time, frozenset(detect), str(table.get("description", ""))))
    return Profiles(out)


def load_profiles(path: Path | None = None) -> Profiles:
    """Profiles from a TOML file; the packaged ``device_profiles.toml`` when ``path`` is None."""
    return parse_profiles(read_toml(path, "device_profiles.toml", "device profiles"))


@cache
def default_profiles() -> Profiles:
    """The packaged profiles, read once per process."""
    return load_profiles()
