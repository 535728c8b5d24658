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

import re2

from gateway.detection.multipattern import char_view
from gateway.detection.secrets.validators import b64decode_loose

MIN_BASE64 = 20
MAX_BLOB = 16_384
DECODE_BUDGET = 262_144

# A base64 blob is a whole run of `[\w+/=-]` (nothing of the kind on either side)
# that reads `[A-Za-z0-9+/_-]{20,16384}={0,2}`. The runs are found by RE2 in one
# linear pass over the one-byte-per-character view (a Python regex with a
# leading lookbehind retries at every position); a run next to a non-ASCII
# word character belongs to a longer run, which is no blob.
_RUN_MEMBER = re.compile(r"[\w+/=\-]")
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/_\-]{%d,%d}={0,2}" % (MIN_BASE64, MAX_BLOB))


def _latin1(pattern: bytes):
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    return re2.compile(pattern, options=options)


_ASCII_RUN = _latin1(rb"[\w+/=\-]{%d,}" % MIN_BASE64)
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


# Invalid UTF-8 tolerated in decoded text of at least 64 bytes: one byte, or one per
# hundred. A key's blob with a character mangled (copied badly, edited) still decodes
# to the key it carries; random bytes are invalid UTF-8 about every other byte, and the
# short random runs of ordinary text (ids, hashes) are not decoded twice.
MAX_INVALID_SHARE = 0.01
TOLERANT_MIN_BYTES = 64


def _decoded_text(raw: bytes | None) -> str | None:
    """Decoded bytes that read as text (UTF-8 but for a rare bad byte, at least 12 bytes, mostly printable)."""
    if raw is None or len(raw) < 12:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        if len(raw) < TOLERANT_MIN_BYTES:
            return None
        text = raw.decode("utf-8", "replace")
        if text.count("\ufffd") > max(1.0, MAX_INVALID_SHARE * len(raw)):
            return None
    return text if _mostly_printable(text) else None


def base64_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where the base64-looking blobs of `text` are (see `_BASE64_BODY`)."""
    n = len(text)
    for match in _ASCII_RUN.finditer(char_view(text)):
        start, end = match.span()
        if (start and _RUN_MEMBER.match(text, start - 1)) or (end < n and _RUN_MEMBER.match(text, end)):
            continue
        if _BASE64_BODY.fullmatch(text, start, end):
            yield start, end
            continue
        # `NAME=<base64>` unquoted (env files, `--set k=v`): the run takes the name in; base64
        # has `=` only as trailing padding, so the value starts after the last other `=`.
        body_end = end
        while body_end > start and text[body_end - 1] == "=":
            body_end -= 1
        eq = text.rfind("=", start, body_end)
        if eq != -1 and _BASE64_BODY.fullmatch(text, eq + 1, end):
            yield eq + 1, end


def encoded_blobs(text: str, skip: Callable[[int, int], bool]) -> Iterator[EncodedBlob]:
    """Yield decodable base64, base32 and percent-encoded blobs not rejected by `skip(start, end)`."""
    budget = DECODE_BUDGET
    for start, end in base64_spans(text):
        if budget <= 0:
            return
        blob = text[start:end]
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
