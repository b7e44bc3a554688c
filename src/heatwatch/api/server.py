"""Run the API under uvicorn: ``heatwatch api`` calls :func:`serve`."""

from __future__ import annotations

import uvicorn

from heatwatch.core.settings import ApiSettings

from .app import create_app


def serve(settings: ApiSettings, host: str | None = None, port: int | None = None) -> None:
    """Blocking: serve until SIGINT/SIGTERM. Host and port default to ``HEATWATCH_API_HOST/_PORT``."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host or settings.api.host,
        port=settings.api.port if port is None else port,
        log_level=settings.log_level.lower(),
        # The app logs through heatwatch's logging set-up; uvicorn's own dictConfig would replace it.
        log_config=None,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
