"""Configuration files in TOML: the packaged ones under ``heatwatch/data/`` or an operator's own.

One loader for every such file (towns, device profiles), so they fail the same way: a
:class:`~heatwatch.core.errors.ConfigError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError


def read_toml(path: Path | None, packaged: str | None, what: str) -> dict[str, Any]:
    """The parsed TOML of ``path``, or of the packaged ``heatwatch/data/<packaged>`` when ``path`` is None."""
    try:
        if path is None:
            if packaged is None:
                raise ValueError(f"no {what} given")
            text = resources.files("heatwatch.data").joinpath(packaged).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # TOMLDecodeError is a ValueError
        raise ConfigError(f"cannot read {what} {path or '(packaged)'}: {exc}") from exc
