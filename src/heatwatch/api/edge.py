"""Starlette's GZip and CORS middlewares with their per-request set-up done once.

Every answer passes both. Starlette's ``GZipMiddleware`` builds a ``Headers`` of the request, a responder object
that normalises the excluded media types again, and a ``Headers`` of the answer's start message; its
``CORSMiddleware`` builds a ``Headers`` of the request and a ``functools.partial`` per request: ~9 and ~5 µs per
answer. These subclasses keep their configuration and their behaviour — the same decisions, the same header
edits through Starlette's ``MutableHeaders`` in the same order, the same compressed bytes — and read the few
headers they need straight from the ASGI lists (tests/api/test_edge.py runs both on the same requests).
"""

from __future__ import annotations

import zlib

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Message, Receive, Scope, Send

try:  # Starlette's own limiter for compressing large bodies in a thread (shared with its GZipResponder)
    from starlette.middleware.gzip import _get_gzip_capacity_limiter
except ImportError:  # pragma: no cover - an older Starlette compresses inline
    _get_gzip_capacity_limiter = None


def _first(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of a header, as ``Headers.get`` finds it (ASGI names are lower case)."""
    for k, v in headers:
        if k == name:
            return v
    return None


class GZip(GZipMiddleware):
    """``GZipMiddleware``, its responders' logic inlined (identity when the client does not accept gzip: only the
    ``Vary: Accept-Encoding`` of a body above the minimum size)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover
            await self.app(scope, receive, send)
            return
        # As Starlette's Headers(scope=scope) leaves it: the request's headers as a list of their own.
        scope["headers"] = raw = list(scope["headers"])
        accept = _first(raw, b"accept-encoding")
        gzip = accept is not None and "gzip" in accept.decode("latin-1")
        await _Responder(self, gzip, send).run(scope, receive)


class _Responder:
    __slots__ = ("compressor", "gzip", "initial", "mw", "passthrough", "send", "started")

    def __init__(self, mw: GZip, gzip: bool, send: Send) -> None:
        self.mw = mw
        self.gzip = gzip
        self.send = send
        self.initial: Message = {}
        self.started = False
        self.passthrough = False
        self.compressor: zlib._Compress | None = None

    async def run(self, scope: Scope, receive: Receive) -> None:
        await self.mw.app(scope, receive, self.send_with_compression)

    async def send_with_compression(self, message: Message) -> None:
        message_type = message["type"]
        if message_type == "http.response.start":
            self.initial = message
            raw = message.setdefault("headers", [])
            content_type: bytes | None = None
            encoded = False
            for k, v in raw:
                if k == b"content-encoding":
                    encoded = True
                elif k == b"content-type" and content_type is None:
                    content_type = v
            media_type = (content_type or b"").decode("latin-1").partition(";")[0].strip().lower()
            media_types = {media_type, media_type.partition("/")[0] + "/*"}
            if media_type.startswith("application/grpc+"):
                media_types.add("application/grpc")
            excluded = not media_types.isdisjoint(self.mw.exclude_content_types)
            self.passthrough = encoded or message["status"] == 206 or excluded
            if self.passthrough:
                await self.send(message)
        elif message_type in ("http.response.body", "http.response.pathsend") and self.passthrough:
            await self.send(message)
        elif message_type == "http.response.body" and not self.started:
            self.started = True
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            if len(body) < self.mw.minimum_size and not more_body:
                await self.send(self.initial)
                await self.send(message)
                return
            compressed = await self.compress(body, more_body)
            headers = MutableHeaders(raw=self.initial["headers"])
            headers.add_vary_header("Accept-Encoding")
            if compressed != message["body"]:
                headers["Content-Encoding"] = "gzip"
                if more_body or self.initial.get("trailers", False):
                    del headers["Content-Length"]
                else:
                    headers["Content-Length"] = str(len(compressed))
                message["body"] = compressed
            await self.send(self.initial)
            await self.send(message)
        elif message_type == "http.response.body":
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            message["body"] = await self.compress(body, more_body)
            await self.send(message)
        elif message_type in ("http.response.early_hint", "http.response.trailers"):
            await self.send(message)
        elif message_type == "http.response.pathsend":  # pragma: no branch
            await self.send(self.initial)
            await self.send(message)

    async def compress(self, body: bytes, more_body: bool) -> bytes:
        if not self.gzip:
            return body
        if len(body) >= self.mw.thread_minimum_size and _get_gzip_capacity_limiter is not None:
            # Compressing large chunks inline would block the event loop.
            return await anyio.to_thread.run_sync(self._compress, body, more_body,
                                                  limiter=_get_gzip_capacity_limiter())
        return self._compress(body, more_body)

    def _compress(self, body: bytes, more_body: bool) -> bytes:
        if self.compressor is None:
            self.compressor = zlib.compressobj(self.mw.compresslevel, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        if more_body:
            return self.compressor.compress(body) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        return self.compressor.compress(body) + self.compressor.flush()


class Cors(CORSMiddleware):
    """``CORSMiddleware`` without the request's ``Headers`` and a ``partial`` per request; preflights as it answers
    them."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover
            await self.app(scope, receive, send)
            return
        scope["headers"] = raw = list(scope["headers"])  # as Starlette's Headers(scope=scope) leaves it
        origin = _first(raw, b"origin")
        if origin is not None and scope["method"] == "OPTIONS" and _first(raw, b"access-control-request-method") \
                is not None:
            await super().__call__(scope, receive, send)
            return

        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._start(message, origin)
            await send(message)

        await self.app(scope, receive, send_with)

    async def _start(self, message: Message, origin_raw: bytes | None) -> None:
        message.setdefault("headers", [])
        headers = MutableHeaders(scope=message)
        origin = origin_raw.decode("latin-1") if origin_raw is not None else None
        if origin is not None:
            headers.update(self.simple_headers)
        if origin is not None and self.allow_all_origins and self.allow_credentials:
            self.allow_explicit_origin(headers, origin)
        elif origin is not None and not self.allow_all_origins and self.is_allowed_origin(origin=origin):
            self.allow_explicit_origin(headers, origin)
        else:
            headers["Vary"] = ", ".join([*headers.getlist("Vary"), "Origin"])

