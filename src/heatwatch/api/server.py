"""Run the API under uvicorn: ``heatwatch api`` calls :func:`serve`."""

from __future__ import annotations

import logging

import uvicorn

from heatwatch.core.settings import ApiSettings

from .app import create_app
from .metrics import serve_metrics


def serve(settings: ApiSettings, host: str | None = None, port: int | None = None) -> None:
    """Blocking: serve until SIGINT/SIGTERM. Host and port default to ``HEATWATCH_API_HOST/_PORT``."""
    # The app builds absolute URLs from the address it really listens on (when no public URL is set).
    listen = settings.api.model_copy(update={"host": host or settings.api.host,
                                             "port": settings.api.port if port is None else port})
    settings = settings.model_copy(update={"api": listen})
    settings.check_listen(listen.host)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        log_level=settings.log_level.lower(),
        # The app logs through heatwatch's logging set-up; uvicorn's own dictConfig would replace it.
        log_config=None,
        # X-Forwarded-For/-Proto are believed from HEATWATCH_API_TRUSTED_PROXIES only: the app installs
        # uvicorn's own ProxyHeadersMiddleware with that list (create_app), so uvicorn must not add one of its
        # own trusting its default (127.0.0.1, or FORWARDED_ALLOW_IPS from the environment).
        proxy_headers=False,
        forwarded_allow_ips="",
        server_header=False,
        # uvicorn builds each access line's fields (client, quoted path and query) before the logger drops it; below
        # INFO no line is written, so it is told there is no access log (~2 µs per request).
        access_log=logging.getLevelName(settings.log_level) <= logging.INFO,
        # asyncio's own loop, not uvloop: with every core busy, uvloop left some connections unserved for seconds
        # while others were answered at once (100 clients of uncached daily rows: p50 0.16 s but p99 5.8 s, against
        # 0.41 s and 1.0 s on asyncio's loop, which serves ready connections in turn; bench/README.md).
        loop="asyncio",
        timeout_graceful_shutdown=10,
    )
    # Operators' port, apart from the public one (api/metrics.py).
    listener = serve_metrics(app.state.metrics, listen.metrics_host, listen.metrics_port) \
        if listen.metrics_port is not None else None
    try:
        uvicorn.Server(config).run()
    finally:
        if listener is not None:
            listener[0].shutdown()
            listener[0].server_close()
