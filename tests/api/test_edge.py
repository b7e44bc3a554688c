"""api/edge.py's GZip and CORS send exactly what Starlette's GZipMiddleware and CORSMiddleware send: the same messages,
headers in the same order, the same compressed bytes, for every kind of answer the api gives."""

from __future__ import annotations

import asyncio
import gzip
import itertools
from typing import Any

import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

from heatwatch.api.edge import Cors, GZip

BIG = b'{"data":[' + b",".join(b'{"t":%d,"v":21.5}' % i for i in range(3000)) + b"]}"


def answer(status: int, headers: list[tuple[bytes, bytes]], chunks: list[bytes], trailers: bool = False) -> Any:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": list(headers)}
        if trailers:
            start["trailers"] = True
        await send(start)
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})
    return app


ANSWERS = {
    "big json": answer(200, [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BIG)),
                             (b"etag", b'"x"')], [BIG]),
    "small json": answer(200, [(b"content-type", b"application/json"), (b"content-length", b"2")], [b"{}"]),
    "with vary": answer(200, [(b"content-type", b"text/csv; charset=utf-8"), (b"vary", b"Accept"),
                              (b"vary", b"Cookie")], [BIG]),
    "parquet (excluded)": answer(200, [(b"content-type", b"application/vnd.apache.parquet")], [BIG]),
    "image (excluded type/*)": answer(200, [(b"content-type", b"image/png")], [BIG]),
    "grpc+proto": answer(200, [(b"content-type", b"application/grpc+proto")], [BIG]),
    "already encoded": answer(200, [(b"content-type", b"application/json"), (b"content-encoding", b"br")], [BIG]),
    "partial 206": answer(206, [(b"content-type", b"text/csv")], [BIG]),
    "streamed": answer(200, [(b"content-type", b"text/csv"), (b"content-length", b"999")], [BIG[:5000], BIG[5000:],
                                                                                          b""]),
    "trailers": answer(200, [(b"content-type", b"text/plain"), (b"content-length", b"1")], [BIG], trailers=True),
    "no content type": answer(404, [], [BIG]),
    "empty content type first": answer(200, [(b"content-type", b""), (b"content-type", b"image/png")], [BIG]),
    "304": answer(304, [(b"etag", b'"x"')], [b""]),
}
REQUESTS = {
    "plain": [(b"host", b"h"), (b"accept", b"*/*")],
    "gzip": [(b"host", b"h"), (b"accept-encoding", b"gzip, deflate, br")],
    "br only": [(b"accept-encoding", b"br")],
    "origin": [(b"origin", b"https://example.org"), (b"accept-encoding", b"gzip")],
    "two origins": [(b"origin", b"https://a.org"), (b"origin", b"https://b.org")],
}


def run(app: Any, method: str, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append({**message, "headers": list(message["headers"])} if "headers" in message else dict(message))

    scope = {"type": "http", "method": method, "path": "/v1/x", "headers": list(headers), "query_string": b""}
    asyncio.run(app(scope, receive, send))
    return sent


def gzips(inner: Any, cls: type) -> Any:
    return cls(inner, minimum_size=1024, compresslevel=5,
               exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/vnd.apache.parquet"))


def cors(inner: Any, cls: type) -> Any:
    return cls(inner, allow_origins=["*"], allow_methods=["GET", "HEAD", "OPTIONS"],
               allow_headers=["Accept", "If-None-Match", "Content-Type"], expose_headers=["ETag", "Link"], max_age=3600)


@pytest.mark.parametrize(("answer_name", "request_name"), list(itertools.product(ANSWERS, REQUESTS)))
def test_gzip_and_cors_send_what_starlettes_send(answer_name: str, request_name: str) -> None:
    inner = ANSWERS[answer_name]
    ours = cors(gzips(inner, GZip), Cors)
    theirs = cors(gzips(inner, GZipMiddleware), CORSMiddleware)
    a = run(ours, "GET", REQUESTS[request_name])
    b = run(theirs, "GET", REQUESTS[request_name])
    assert a == b
    if answer_name == "big json" and request_name == "gzip":  # the case compression is for, really compressed
        assert dict(a[0]["headers"])[b"content-encoding"] == b"gzip" and gzip.decompress(a[1]["body"]) == BIG


@pytest.mark.parametrize("headers", [
    [(b"origin", b"https://a.org"), (b"access-control-request-method", b"GET")],
    [(b"origin", b"https://a.org"), (b"access-control-request-method", b"DELETE")],
    [(b"origin", b"https://a.org"), (b"access-control-request-method", b"GET"),
     (b"access-control-request-headers", b"X-Custom")],
    [(b"origin", b"https://a.org")],
    [(b"access-control-request-method", b"GET")],
])
def test_cors_preflight_as_starlette(headers: list[tuple[bytes, bytes]]) -> None:
    inner = ANSWERS["small json"]
    assert run(cors(inner, Cors), "OPTIONS", headers) == run(cors(inner, CORSMiddleware), "OPTIONS", headers)
