"""What every decoder receives and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ...core.errors import DecodeError
from ...core.model import Reading


class DeviceLookup(Protocol):
    """Maps a network identity (TTS device_id) to (town, sensor); None when unknown."""

    def resolve(self, identity: str) -> tuple[str, str] | None: ...


@dataclass(slots=True)
class Context:
    topic: str
    received_ms: int
    devices: DeviceLookup | None = None

    @property
    def levels(self) -> list[str]:
        return self.topic.split("/")


@dataclass(slots=True)
class Decoded:
    """The valid readings of one message, and one error per rejected record.

    A decoder raises :class:`DecodeError` when the whole message is unusable; a message with
    some valid and some invalid records returns both lists, so the valid ones are stored.
    """

    readings: list[Reading] = field(default_factory=list)
    rejects: list[DecodeError] = field(default_factory=list)


Decoder = Callable[[bytes, Context], Decoded]
