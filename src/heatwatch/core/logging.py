"""Structured logging for every heatwatch process: key=value lines for people, JSON lines for collectors
(``HEATWATCH_LOG_JSON``).

heatwatch logs through structlog (:func:`get_logger`: an event name and key/value pairs). Libraries log
through the standard ``logging`` module — uvicorn's server and access logs, httpx, APScheduler — and
their records are rendered by the same processors, so a process writes one format only: with
``HEATWATCH_LOG_JSON=true`` every line of every service, the api's access log included, is one JSON
object with ``timestamp``, ``level``, ``logger`` and ``event``.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

# Chatty at INFO and not about heatwatch: kept to warnings.
QUIET = ("httpx", "httpcore", "apscheduler.executors.default")


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on whatever ``sys.stderr`` is now: test runners and daemons swap it after start-up."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _uvicorn_access(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """uvicorn's access line as fields: ``client``, ``method``, ``path``, ``http_version``, ``status``; the
    arguments of any other library's record are already in its message."""
    args = event.pop("positional_args", None)
    record = event.get("_record")
    if record is not None and record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, path, version, status = args
        event.update(event="http.request", client=client, method=method, path=path, http_version=version,
                     status=status)
    return event


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    """Set up structlog and the standard ``logging`` module for this process (once, at start-up)."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = _Stderr()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _uvicorn_access],
        pass_foreign_args=True,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's loggers keep no handler of their own: their records go through the one above.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(logging.NOTSET)  # the root's level, unless uvicorn is given its own
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str) -> FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
