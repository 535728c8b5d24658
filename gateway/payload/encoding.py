"""Content-Encoding of request bodies: decode for scanning, within limits.

A compressed body is never forwarded unscanned: it is decoded here (and the
scanned result is forwarded as identity) or refused. Expanded size and
expansion ratio are capped so a decompression bomb costs us nothing.
"""

from __future__ import annotations

import zlib

import brotli
import zstandard

SUPPORTED = ("gzip", "x-gzip", "deflate", "br", "zstd", "identity")
MAX_RATIO = 200
RATIO_FLOOR = 1024 * 1024
CHUNK = 64 * 1024


class EncodingError(Exception):
    """The body can't be decoded; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def decode_content(body: bytes, content_encoding: str, max_bytes: int) -> bytes:
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):
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
