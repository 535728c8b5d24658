"""Content-Encoding, both ways: request bodies decoded whole for scanning,
within limits; responses decoded chunk by chunk as they stream (`StreamDecoder`).

A compressed body is never forwarded unscanned: it is decoded here (and the
scanned result is forwarded as identity) or refused. Expanded size and
expansion ratio are capped so a decompression bomb costs us nothing.
"""

from __future__ import annotations

import zlib

import brotli
import zstandard

from gateway.refusal import Refusal

DECODABLE = frozenset({"gzip", "x-gzip", "deflate", "br", "zstd", "identity"})
SUPPORTED = ("gzip", "x-gzip", "deflate", "br", "zstd", "identity")
MAX_RATIO = 200
RATIO_FLOOR = 1024 * 1024
CHUNK = 64 * 1024


class EncodingError(Refusal):
    """The body can't be decoded; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message, outcome="blocked" if status == 415 else "rejected")


def decode_content(body: bytes, content_encoding: str, max_bytes: int) -> bytes:
    for coding in reversed(codings(content_encoding)):
        if coding not in SUPPORTED:
            raise EncodingError(415, f"unsupported Content-Encoding {coding!r}; supported: gzip, deflate, br, zstd")
        if coding == "identity":
            continue
        limit = min(max_bytes, max(len(body) * MAX_RATIO, RATIO_FLOOR))
        body = _decode_one(body, coding, limit)
    return body


def _decode_one(body: bytes, coding: str, limit: int) -> bytes:
    try:
        if coding in ("gzip", "x-gzip"):
            return _bounded(zlib.decompressobj(wbits=16 + zlib.MAX_WBITS), body, limit)
        if coding == "deflate":
            try:
                return _bounded(zlib.decompressobj(), body, limit)
            except zlib.error:
                return _bounded(zlib.decompressobj(wbits=-zlib.MAX_WBITS), body, limit)
        if coding == "br":
            return _bounded_brotli(body, limit)
        return _bounded_zstd(body, limit)
    except EncodingError:
        raise
    except Exception as exc:
        raise EncodingError(400, f"request body is not valid {coding}: {type(exc).__name__}") from None


def _too_large(limit: int) -> EncodingError:
    return EncodingError(413, f"decompressed request body exceeds {limit} bytes (size or expansion-ratio limit)")


def _bounded(decoder, body: bytes, limit: int) -> bytes:
    out = bytearray()
    data = body
    while data:
        out += decoder.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            raise _too_large(limit)
        data = decoder.unconsumed_tail
    out += decoder.flush()
    if len(out) > limit:
        raise _too_large(limit)
    if not decoder.eof:
        raise EncodingError(400, "compressed request body is truncated")
    return bytes(out)


def _bounded_brotli(body: bytes, limit: int) -> bytes:
    decoder = brotli.Decompressor()
    out = bytearray()
    for i in range(0, len(body), CHUNK):
        out += decoder.process(body[i:i + CHUNK], output_buffer_limit=CHUNK)
        while not decoder.can_accept_more_data():
            if len(out) > limit:
                raise _too_large(limit)
            out += decoder.process(b"", output_buffer_limit=CHUNK)
        if len(out) > limit:
            raise _too_large(limit)
    if not decoder.is_finished():
        raise EncodingError(400, "compressed request body is truncated")
    return bytes(out)


def _bounded_zstd(body: bytes, limit: int) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(body)
    out = bytearray()
    while chunk := reader.read(CHUNK):
        out += chunk
        if len(out) > limit:
            raise _too_large(limit)
    return bytes(out)


def codings(value: str) -> list[str]:
    """`gzip, br` -> ["gzip", "br"], in the order they were applied."""
    return [c.strip().lower() for c in value.split(",") if c.strip()]


class ResponseTooLarge(Exception):
    """A response expanded past its cap (size or expansion ratio): relaying stops."""


class StreamDecoder:
    """Undo Content-Encoding chunk by chunk (in reverse order of application), with the request
    side's caps: at most `max_bytes` out in total, and at most `MAX_RATIO` times what came in
    (with a `RATIO_FLOOR`). Each step is bounded as it runs, so a bomb stops at the cap instead of
    expanding first; CPU-bound, so callers run `feed` off the event loop."""

    def __init__(self, content_encoding: str, max_bytes: int = 64 * 1024 * 1024):
        self.steps = [_step(c) for c in reversed(codings(content_encoding)) if c != "identity"]
        self.max_bytes = max_bytes
        self.taken = 0
        self.given = 0

    def limit(self) -> int:
        return min(self.max_bytes, max(self.taken * MAX_RATIO, RATIO_FLOOR))

    def feed(self, data: bytes) -> bytes:
        self.taken += len(data)
        room = self.limit() - self.given
        for step in self.steps:
            data = step(data, room + 1)
            if len(data) > room:
                raise ResponseTooLarge(f"decoded response exceeds {self.limit()} bytes (size or expansion-ratio limit)")
        self.given += len(data)
        return data

    def flush(self) -> bytes:
        return self.feed(b"")


def _step(coding: str):
    if coding in ("gzip", "x-gzip"):
        return _Zlib(zlib.decompressobj(wbits=16 + zlib.MAX_WBITS))
    if coding == "br":
        return _Brotli()
    if coding == "zstd":
        return _Zstd()
    return _Deflate()


class _Zlib:
    def __init__(self, obj):
        self._obj = obj

    def __call__(self, data: bytes, limit: int) -> bytes:
        out = bytearray(self._obj.decompress(data, limit))
        while self._obj.unconsumed_tail and len(out) < limit:
            out += self._obj.decompress(self._obj.unconsumed_tail, limit - len(out))
        if self._obj.unconsumed_tail:  # more would come out than the cap allows
            out += b"\0"
        return bytes(out)


class _Brotli:
    def __init__(self):
        self._obj = brotli.Decompressor()

    def __call__(self, data: bytes, limit: int) -> bytes:
        out = bytearray()
        for i in range(0, len(data), CHUNK):
            out += self._obj.process(data[i:i + CHUNK], output_buffer_limit=CHUNK)
            # output the decoder still holds comes out of further calls without input
            while len(out) <= limit and not self._obj.is_finished():
                got = self._obj.process(b"", output_buffer_limit=CHUNK)
                out += got
                if not got and self._obj.can_accept_more_data():
                    break
            if len(out) > limit:
                break
        return bytes(out)


class _Cap(Exception):
    pass


class _Zstd:
    """zstandard's decompressobj has no output bound; its stream writer writes out in CHUNK pieces,
    so a sink that refuses past the cap stops a bomb within one piece."""

    def __init__(self):
        self._out = bytearray()
        self._limit = 0
        self._writer = zstandard.ZstdDecompressor().stream_writer(self, write_size=CHUNK, write_return_read=True)
        self._over = False

    def write(self, data: bytes) -> int:
        self._out += data
        if len(self._out) > self._limit:
            raise _Cap
        return len(data)

    def __call__(self, data: bytes, limit: int) -> bytes:
        if self._over:
            return b"\0" * (limit + 1)
        self._out, self._limit = bytearray(), limit
        try:
            if data:
                self._writer.write(data)
        except _Cap:
            self._over = True
        return bytes(self._out)


class _Deflate:
    """`deflate` is zlib-wrapped per the RFC, but some servers send raw deflate."""

    def __init__(self):
        self._obj = None

    def __call__(self, data: bytes, limit: int) -> bytes:
        if self._obj is None:
            if not data:
                return b""
            wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] * 256 + data[1]) % 31 == 0
            self._obj = _Zlib(zlib.decompressobj() if wrapped else zlib.decompressobj(wbits=-zlib.MAX_WBITS))
        return self._obj(data, limit)
