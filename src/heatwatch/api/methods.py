"""``HEAD`` wherever ``GET`` is, and ``Vary: Accept`` on every answer.

FastAPI routes answer the methods they declare, so a ``HEAD`` (what link checkers, harvesters and download
managers send to learn a file's size and date) got 405. This middleware runs a ``HEAD`` as the ``GET`` of the same
URL — same status, same headers, ``Content-Length`` included — and sends no body. A streamed export is stopped as
soon as its headers are out, so a ``HEAD`` costs the first page of an export, not all of it.

Most answers choose their format from ``Accept`` when ``format=`` is absent, so a shared cache must key on it:
``Vary: Accept`` is added (merged with what is there, such as GZip's ``Accept-Encoding``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _HeadDone(Exception):
    """Raised through the app once a HEAD's headers are sent: stops a streamed body being produced for nothing."""


def _with_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    vary: list[str] = []
    for k, v in headers:
        if k.lower() == b"vary":
            vary += [p.strip() for p in v.decode("latin-1").split(",") if p.strip()]
        else:
            out.append((k, v))
    if not any(p.lower() == "accept" for p in vary):
        vary.insert(0, "Accept")
    out.append((b"vary", ", ".join(vary).encode("latin-1")))
    return out


class HeadAndVary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = dict(scope, method="GET")
        started = False

        async def send_wrapped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                # Vary is only added after the app's middlewares (GZip) had their say: it runs outside them.
                message = dict(message, headers=_with_vary(list(message.get("headers", []))))
                await send(message)
                started = True
                if head:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if head and started and message["type"] == "http.response.body":
                raise _HeadDone
            await send(message)

        try:
            await self.app(scope, receive, send_wrapped)
        except _HeadDone:
            pass
