"""Payload decoders, chosen per subscription by the ``format`` name in settings.

Adding a format is one module exposing ``decode(payload: bytes, ctx: Context) -> Decoded``
and one line in :data:`DECODERS`.
"""

from __future__ import annotations

from . import native, senml, tts
from .base import Context, Decoded, Decoder, DeviceLookup

DECODERS: dict[str, Decoder] = {
    "json": native.decode,
    "senml": senml.decode,
    "tts": tts.decode,
}

__all__ = ["DECODERS", "Context", "Decoded", "Decoder", "DeviceLookup"]
