"""The licence on every ``/v1`` answer, whatever its format: a CSV or Parquet file has no envelope, yet
Etalab-2.0 attribution must travel with it."""

from __future__ import annotations

from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .formats import LICENCE


class LicenceHeaders:
    """ASGI middleware adding ``Link: <licence>; rel="license"``, ``X-Data-Licence`` and ``X-Data-Producer``."""

    def __init__(self, app: ASGIApp, producer: str) -> None:
        self.app = app
        self.headers = [
            (b"link", f'<{LICENCE["url"]}>; rel="license"; title="{LICENCE["id"]}"'.encode()),
            (b"x-data-licence", LICENCE["id"].encode()),
            # Percent-encoded: header values are ASCII, producer names are French.
            (b"x-data-producer", quote(producer, safe=" ,.;:()'/-").encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return

        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await self.app(scope, receive, send_with)
