"""Relay a vendor's response with its tokens restored.

JSON is read whole, restored string by string and re-serialised only when
something changed; `text/event-stream` and other text are restored as they
stream (`SSERestorer`, `StreamRestorer`), so the caller gets each event as
soon as no token can still be starting in it. Compressed responses are decoded
on the fly (we ask for identity, but a vendor may compress anyway). Anything
else, or an encoding we can't decode, passes through unchanged.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import zlib

import aiohttp
import brotli
import zstandard
from aiohttp import web
from multidict import CIMultiDict

from gateway.payload.fields import media_type
from gateway.reversible.restore import Restorer, SSERestorer

DECODABLE = frozenset({"gzip", "x-gzip", "deflate", "br", "zstd", "identity"})
MAX_JSON_BYTES = 64 * 1024 * 1024
NO_BODY_STATUSES = frozenset({204, 304})


class ResponseTooLarge(Exception):
    pass


FINISH = web.RequestKey("vendorgate.finish", object)


async def finish_then_eof(request: web.Request, response: web.StreamResponse) -> None:
    """Write the audit record before the caller sees the end of a streamed
    response, so a caller that has the whole answer can also find its record."""
    await request[FINISH](response)
    await response.write_eof()


def restorable_kind(method: str, status: int, headers) -> str | None:
    """"json", "sse", "text", or None for a response to pass through unchanged."""
    if method == "HEAD" or status in NO_BODY_STATUSES or status < 200:
        return None
    if any(c not in DECODABLE for c in _codings(headers.get("Content-Encoding", ""))):
        return None
    mtype, _ = media_type(headers.get("Content-Type", ""))
    if mtype == "text/event-stream":
        return "sse"
    if mtype == "application/json" or mtype.endswith("+json"):
        return "json"
    if mtype.startswith("text/"):
        return "text"
    return None


def _codings(value: str) -> list[str]:
    return [c.strip().lower() for c in value.split(",") if c.strip()]


class StreamDecoder:
    """Undo Content-Encoding chunk by chunk (in reverse order of application)."""

    def __init__(self, content_encoding: str):
        self.steps = [_step(c) for c in reversed(_codings(content_encoding)) if c != "identity"]

    def feed(self, data: bytes) -> bytes:
        for step in self.steps:
            data = step(data)
        return data

    def flush(self) -> bytes:
        return self.feed(b"")


def _step(coding: str):
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress
    if coding == "br":
        return brotli.Decompressor().process
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress
    return _Deflate()


class _Deflate:
    """`deflate` is zlib-wrapped per the RFC, but some servers send raw deflate."""

    def __init__(self):
        self._obj = None

    def __call__(self, data: bytes) -> bytes:
        if self._obj is None:
            if not data:
                return b""
            wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] * 256 + data[1]) % 31 == 0
            self._obj = zlib.decompressobj() if wrapped else zlib.decompressobj(wbits=-zlib.MAX_WBITS)
        return self._obj.decompress(data)


def restored_headers(headers: CIMultiDict, kind: str, charset: str) -> CIMultiDict:
    out = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in ("content-encoding", "etag", "content-md5"))
    if kind == "text" and charset != "utf-8":
        mtype, _ = media_type(headers.get("Content-Type", ""))
        out["Content-Type"] = f"{mtype}; charset=utf-8"
    return out


async def relay_restored(request: web.Request, upstream: aiohttp.ClientResponse, headers: CIMultiDict,
                         restorer: Restorer, kind: str, record) -> web.StreamResponse:
    """Send the restored response; counts go to `record` (restored, foreign_tokens)."""
    _, charset = media_type(upstream.headers.get("Content-Type", ""))
    decoder = StreamDecoder(upstream.headers.get("Content-Encoding", ""))
    headers = restored_headers(headers, kind, charset)
    try:
        if kind == "json":
            return await _relay_json(request, upstream, headers, restorer, decoder, record)
        return await _relay_stream(request, upstream, headers, restorer, decoder, kind, charset, record)
    finally:
        record.restored = restorer.restored
        record.foreign_tokens = restorer.foreign_tokens


async def _relay_json(request, upstream, headers, restorer: Restorer, decoder: StreamDecoder, record) -> web.Response:
    body = bytearray()
    async for chunk in upstream.content.iter_any():
        record.bytes_received += len(chunk)
        body += decoder.feed(chunk)
        if len(body) > MAX_JSON_BYTES:
            raise ResponseTooLarge(f"vendor JSON response exceeds {MAX_JSON_BYTES} bytes; cannot restore it")
    body += decoder.flush()
    raw = bytes(body)
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except ValueError:
        restored = await restorer.restore_text(raw.decode("utf-8", "replace"))
        out = restored.encode("utf-8") if restorer.restored else raw
    else:
        new = await restorer.restore_json(data)
        out = json.dumps(new, ensure_ascii=False).encode("utf-8") if new != data else raw
    response = web.Response(status=upstream.status, reason=upstream.reason, headers=headers, body=out)
    response.headers["X-Vendorgate-Request-Id"] = record.request_id
    return response


async def _relay_stream(request, upstream, headers, restorer: Restorer, decoder: StreamDecoder, kind: str,
                        charset: str, record) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    response.headers["X-Vendorgate-Request-Id"] = record.request_id
    await response.prepare(request)
    if kind == "sse":
        sse = SSERestorer(restorer)
        feed, finish = sse.feed, sse.finish
    else:
        stream = restorer.stream()
        text = codecs.getincrementaldecoder(_known_charset(charset))(errors="replace")

        async def feed(data: bytes) -> bytes:
            return (await stream.feed(text.decode(data))).encode("utf-8")

        async def finish() -> bytes:
            return (await stream.feed(text.decode(b"", final=True)) + await stream.finish()).encode("utf-8")

    try:
        async for chunk in upstream.content.iter_any():
            record.bytes_received += len(chunk)
            out = await feed(decoder.feed(chunk))
            if out:
                await response.write(out)
        out = await feed(decoder.flush()) + await finish()
    except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
        record.error = f"upstream response interrupted: {type(exc).__name__}"
        return response
    except Exception as exc:  # a bad encoding or an unreachable vault: the stream ends here
        record.error = f"vendor response could not be restored: {type(exc).__name__}"
        return response
    if out:
        await response.write(out)
    record.restored, record.foreign_tokens = restorer.restored, restorer.foreign_tokens
    await finish_then_eof(request, response)
    return response


def _known_charset(charset: str) -> str:
    try:
        codecs.lookup(charset)
    except LookupError:
        return "utf-8"
    return charset
