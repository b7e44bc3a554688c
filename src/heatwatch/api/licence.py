"""The licence on every ``/v1`` answer, whatever its format: a CSV or Parquet file has no envelope, yet
Etalab-2.0 attribution must travel with it."""

from __future__ import annotations

from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heatwatch.core.provenance import LICENCES

from .formats import LICENCE

#: Set by a route whose answer is under another licence than the instance's (rows of an ODbL source).
LICENCE_HEADER = "X-Data-Licence"


def _link(lic: dict[str, str]) -> tuple[bytes, bytes]:
    return b"link", f'<{lic["url"]}>; rel="license"; title="{lic["id"]}"'.encode()


class LicenceHeaders:
    """ASGI middleware adding ``Link: <licence>; rel="license"``, ``X-Data-Licence`` and ``X-Data-Producer``: the
    instance's licence, or the one a route named in ``X-Data-Licence`` (core/provenance.py)."""

    def __init__(self, app: ASGIApp, producer: str) -> None:
        self.app = app
        self.headers = [
            _link(LICENCE),
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
                headers = list(message.get("headers", []))
                named = next((v.decode() for k, v in headers if k.lower() == b"x-data-licence"), None)
                if named is None:
                    headers += self.headers
                else:
                    headers += [_link(LICENCES.get(named, LICENCE)), self.headers[2]]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with)
