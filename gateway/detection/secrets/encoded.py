"""Finding secrets wrapped in base64, base32 or percent-encoding.

A candidate blob is decoded once and the plain rules run on the decoded text;
a hit there is reported over the whole encoded blob. Work is bounded: only
blobs of a sane size are decoded, and only up to a total budget per text.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.detection.secrets.validators import b64decode_loose

MIN_BASE64 = 20
MAX_BLOB = 16_384
DECODE_BUDGET = 262_144

_BASE64 = re.compile(r"(?<![\w+/=\-])[A-Za-z0-9+/_\-]{%d,%d}={0,2}(?![\w+/=\-])" % (MIN_BASE64, MAX_BLOB))
_BASE32 = re.compile(r"[A-Z2-7]+=*")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_RUN_STOPS = " \t\r\n\f\v\"'<>"
_RUN_AFTER = re.compile(r"[^\s\"'<>]{0,%d}" % MAX_BLOB)


@dataclass(frozen=True, slots=True)
class EncodedBlob:
    """An encoded stretch of the original text and what it decodes to."""

    start: int
    end: int
    encoding: str
    decoded: str


def _mostly_printable(text: str) -> bool:
    if not text:
        return False
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\n\r\t")
    return printable >= 0.9 * len(text)


def _base64_text(blob: str) -> str | None:
    return _decoded_text(b64decode_loose(blob))


def _base32_text(blob: str) -> str | None:
    """RFC 4648 base32 (upper case, 2-7), padding optional."""
    if not _BASE32.fullmatch(blob):
        return None
    stripped = blob.rstrip("=")
    try:
        raw = base64.b32decode(stripped + "=" * (-len(stripped) % 8))
    except (binascii.Error, ValueError):
        return None
    return _decoded_text(raw)


def _decoded_text(raw: bytes | None) -> str | None:
    """Decoded bytes that read as text (UTF-8, at least 12 bytes, mostly printable), else None."""
    if raw is None or len(raw) < 12:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if _mostly_printable(text) else None


def encoded_blobs(text: str, skip: Callable[[int, int], bool]) -> Iterator[EncodedBlob]:
    """Yield decodable base64, base32 and percent-encoded blobs not rejected by `skip(start, end)`."""
    budget = DECODE_BUDGET
    for match in _BASE64.finditer(text):
        if budget <= 0:
            return
        start, end = match.span()
        blob = match.group()
        if blob.isalpha() or skip(start, end):
            continue
        budget -= len(blob)
        decoded = _base64_text(blob)
        if decoded is not None:
            yield EncodedBlob(start, end, "base64", decoded)
            continue
        decoded = _base32_text(blob)
        if decoded is not None:
            yield EncodedBlob(start, end, "base32", decoded)
    if "%" not in text:
        return
    run_end = -1
    for escape in _PERCENT_ESCAPE.finditer(text):
        if budget <= 0:
            return
        if escape.start() < run_end:
            continue
        floor = max(0, escape.start() - MAX_BLOB)
        start = 1 + max(text.rfind(ch, floor, escape.start()) for ch in _RUN_STOPS) if floor < escape.start() else floor
        start = max(start, floor)
        run_end = _RUN_AFTER.match(text, escape.start()).end()
        run = text[start:run_end]
        if len(_PERCENT_ESCAPE.findall(run)) < 2 or skip(start, run_end):
            continue
        budget -= len(run)
        yield EncodedBlob(start, run_end, "percent", unquote(run))
