"""Which ports ``heatwatch up`` takes: the api's asked port is kept or refused, never silently swapped."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from heatwatch.core.errors import ConfigError
from heatwatch.core.settings import Settings
from heatwatch.stack.up import _api_port, _port


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_an_asked_port_that_is_taken_is_refused_by_name(taken: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=f"port {taken} is already in use"):
        _api_port(Settings(), taken)
    monkeypatch.setenv("HEATWATCH_API_PORT", str(taken))
    with pytest.raises(ConfigError, match="HEATWATCH_API_PORT"):
        _api_port(Settings(), None)


def test_the_default_port_moves_when_taken(taken: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEATWATCH_API_PORT", raising=False)
    base = Settings()
    # A default that happens to be taken (as 8000 often is): set without marking it asked for.
    options = type(base.api).model_construct(_fields_set=set(), **(base.api.model_dump() | {"port": taken}))
    settings = base.model_copy(update={"api": options})
    assert settings.api.port == taken and "port" not in settings.api.model_fields_set
    moved = _api_port(settings, None)
    assert moved != taken and moved > 0


def test_the_broker_and_database_never_take_the_apis_promised_port(taken: int) -> None:
    # The promised port is free (nothing bound yet) but must not be handed to another child.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        promised = s.getsockname()[1]
    assert _port(promised, frozenset({promised})) != promised
    assert _port(taken, frozenset({promised})) not in {taken, promised}
