"""Every exception heatwatch raises on purpose derives from :class:`HeatwatchError`.

Exception tree::

    HeatwatchError
    ├── ConfigError                 settings or towns file invalid at start-up
    ├── RegistryError               sensor registry: unknown id, bad import row, ...
    ├── LayerError                  a geographic layer refused: wrong or missing CRS, empty, outside the town...
    ├── EncodeError (ValueError)    a value that line protocol cannot carry (empty tag, trailing backslash)
    ├── DecodeError (ValueError)    an MQTT payload rejected; ``reason`` is a stable code for counters
    └── InfluxError                 anything that went wrong talking to InfluxDB; ``message`` is the server's
        ├── InfluxUnavailable       connection refused / reset / DNS: the database is not there
        ├── InfluxTimeout           no answer in time
        ├── InfluxServerError       5xx
        └── InfluxClientError       4xx: the request itself is wrong, retrying will not help
            ├── InfluxAuthError     401 / 403
            └── InfluxWriteError    400 on /write; ``partial`` when some points were stored
"""

from __future__ import annotations


class HeatwatchError(Exception):
    """Base class of every error heatwatch raises deliberately."""


class ConfigError(HeatwatchError):
    pass


class RegistryError(HeatwatchError):
    pass


class LayerError(HeatwatchError):
    """A geographic layer file or request that cannot be used; the message says why and what to do."""


class EncodeError(HeatwatchError, ValueError):
    pass


class DecodeError(HeatwatchError, ValueError):
    """A payload or one record of it was rejected.

    ``reason`` is one of a small fixed set of codes (see ``heatwatch.ingest.reasons``) so
    that metrics and dead letters can be grouped by it.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class InfluxError(HeatwatchError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message if status is None else f"HTTP {status}: {message}")
        self.message = message
        self.status = status


class InfluxUnavailable(InfluxError):
    pass


class InfluxTimeout(InfluxError):
    pass


class InfluxServerError(InfluxError):
    pass


class InfluxClientError(InfluxError):
    pass


class InfluxAuthError(InfluxClientError):
    pass


class InfluxWriteError(InfluxClientError):
    @property
    def partial(self) -> bool:
        return "partial write" in self.message
