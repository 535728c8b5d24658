"""What a field rule does to one field: the one answer every body reader uses.

The JSON, form, CSV and multipart readers find a field's rule (JSONPath,
`form:` name, column); `field_outcome` says what follows from it, so `drop`,
`allow`, `block` and whole-value actions mean the same in every format:

| rule | the field's value | outcome |
|---|---|---|
| none or `scan` | any | scanned by the detectors |
| `drop` | any | removed; counted as `drop` |
| `allow` | any | forwarded as is, unscanned; counted as `allow` |
| `block` | not blank | the request is refused, naming the rule |
| `block` | blank | forwarded as is |
| an action (`tokenize`, ...) | not empty | the whole value replaced by the action |
| an action | empty | forwarded as is |
| `pass` | media: a `data:` URL or a base64 blob | forwarded byte for byte, unscanned; audited with its size and SHA-256 |
| `pass` | anything else (a plain URL, a file id) | scanned by the detectors |
| `scan_text_parts` | text media (`data:text/plain,...`, JSON, CSV, base64 of UTF-8 text) | decoded and scanned; never rewritten, so a finding to act on refuses the request |
| `scan_text_parts` | binary media, anything else | as `pass` |

Media is never read as text: a base64 image has no words, and a token spliced
into it corrupts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from gateway.policy.fields import FieldRule, WholeValue, whole_value


@dataclass(frozen=True)
class Outcome:
    verb: str                          # scan, drop, allow, block, keep or whole
    action: WholeValue | None = None   # for whole: the rule's action over the whole value
    blocked: str = ""                  # for block: the rule's label, never the value
    counts: Counter = field(default_factory=Counter)
    media: dict | None = None          # for pass: what the audit keeps (type, bytes, sha256), never the value
    text: str | None = None            # for media_text: the decoded text to scan


SCAN = Outcome("scan")
KEEP = Outcome("keep")


def blank(value: Any) -> bool:
    """None, whitespace, or an empty container."""
    if value is None:
        return True
    if isinstance(value, (str, bytes)):
        return not value.strip()
    if isinstance(value, (list, tuple, dict)):
        return not value
    return False


_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?[^,]{0,200},", re.ASCII)
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}", re.ASCII)
MIN_BASE64 = 64


def media_of(value: Any) -> dict | None:
    """A `data:` URL or a bare base64 blob: its media type, size in bytes and SHA-256; else None."""
    if not isinstance(value, str):
        return None
    m = _DATA_URL.match(value)
    if m:
        mtype, payload = m.group(1) or "text/plain", value[m.end():]
    elif len(value) >= MIN_BASE64 and _BASE64.fullmatch(value.replace("\n", "").replace("\r", "")):
        mtype, payload = "", value
    else:
        return None
    encoded = m is None or ";base64" in value[: m.end()]
    size = (len(payload) * 3) // 4 - payload.endswith("=") - payload.endswith("==") if encoded else len(payload)
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return {"content_type": mtype or _sniff(payload), "bytes": size, "sha256": digest}


TEXT_TYPES = frozenset({"application/json", "application/xml", "application/csv", "application/x-ndjson",
                        "application/jsonl", "application/yaml", "application/x-yaml"})


def media_text(value: str, media: dict) -> str | None:
    """The text a media value holds, when its type is text (or, untyped, it decodes as UTF-8 text)."""
    mtype = media["content_type"]
    if not (mtype.startswith("text/") or mtype in TEXT_TYPES or mtype == "application/octet-stream"):
        return None
    m = _DATA_URL.match(value)
    payload = value[m.end():] if m else value
    try:
        if m is None or ";base64" in value[: m.end()]:
            raw = base64.b64decode(payload.replace("-", "+").replace("_", "/") + "=" * (-len(payload) % 4))
        else:
            raw = unquote_to_bytes(payload)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if "\x00" in text or (mtype == "application/octet-stream"
                          and not all(c.isprintable() or c in "\r\n\t" for c in text)):
        return None
    return text


def _sniff(payload: str) -> str:
    for head, mtype in (("iVBORw0KGgo", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"),
                        ("UklGR", "image/webp"), ("JVBERi0", "application/pdf"), ("SUQz", "audio/mpeg"),
                        ("//u", "audio/mpeg"), ("T2dnUw", "audio/ogg")):
        if payload.startswith(head):
            return mtype
    return "application/octet-stream"


def field_outcome(rule: FieldRule | None, value: Any) -> Outcome:
    verb = rule.verb if rule is not None else "scan"
    if verb == "scan":
        return SCAN
    if verb in ("pass", "scan_text_parts"):
        media = media_of(value)
        if media is None:
            return SCAN
        text = media_text(value, media) if verb == "scan_text_parts" else None
        if text is not None:
            return Outcome("media_text", counts=Counter({"scan_media": 1}), media=media, text=text)
        return Outcome("pass", counts=Counter({"pass_media": 1}), media=media)
    if verb in ("drop", "allow"):
        return Outcome(verb, counts=Counter({verb: 1}))
    if verb == "block":
        return KEEP if blank(value) else Outcome("block", blocked=rule.label)
    return KEEP if value in ("", b"") else Outcome("whole", whole_value(rule))
