"""The `read` stage: undo Content-Encoding within limits and settle the body's type."""

from __future__ import annotations

from gateway.payload.encoding import decode_content
from gateway.payload.fields import media_type
from gateway.payload.text import kind_of
from gateway.pipeline.flow import Body, Outbound
from gateway.refusal import Refusal


def read(out: Outbound, unknown_content: str, max_body_bytes: int) -> Body:
    """A body without a type that is valid UTF-8 is read as text; one we cannot
    scan is refused when the policy blocks unknown content."""
    data = decode_content(out.body, out.content_encoding, max_body_bytes) if out.content_encoding else out.body
    content_type = out.content_type
    mtype, _ = media_type(content_type)
    if not mtype and _is_utf8(data):
        content_type, mtype = "text/plain; charset=utf-8", "text/plain"
    scanned = not data or kind_of(mtype) is not None
    if not scanned and unknown_content == "block":
        raise Refusal(415, f"content type {mtype or '(none)'!r} cannot be scanned and the policy blocks unknown content",
                      outcome="blocked")
    return Body(data, content_type, scanned)


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
