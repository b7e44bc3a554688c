"""Payload decoders, chosen per subscription by the ``format`` name in settings.

Adding a format is one module exposing ``decode(payload: bytes, ctx: Context) -> Decoded``
and one line in :data:`DECODERS`; a format that reads settings also adds its factory to
:data:`CONFIGURED`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import native, senml, tts
from .base import Context, Decoded, Decoder, DeviceLookup

DECODERS: dict[str, Decoder] = {
    "json": native.decode,
    "senml": senml.decode,
    "tts": tts.decode,
}

CONFIGURED: dict[str, Callable[[Any], Decoder]] = {
    "tts": tts.from_settings,
}


def decoders_for(settings: Any) -> dict[str, Decoder]:
    """Every decoder, those that take settings built from ``settings``."""
    return {name: CONFIGURED[name](settings) if name in CONFIGURED else d for name, d in DECODERS.items()}


__all__ = ["CONFIGURED", "DECODERS", "Context", "Decoded", "Decoder", "DeviceLookup", "decoders_for"]
