"""The shared vocabulary of body handling: `Field`, `Document`, `BodyError`.

A `Field` is one string a detector must see, with a path such as
`$['user']['email']` or `form:name`. A `Document` is an ordered list of fields
and a `render` that writes the source back with some fields replaced (with no
replacements, byte for byte). Formats themselves live in `gateway.payload.formats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.refusal import Refusal

MIN_ID_DIGITS = 6  # integers this long may be identifiers (card, phone numbers) and are scanned


class BodyError(Refusal):
    """The body is malformed for its declared type; nothing is forwarded."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message, outcome="blocked" if status == 415 else "rejected")


@dataclass
class Field:
    text: str
    path: str
    kind: str = "value"


@dataclass
class Document:
    fields: list[Field]
    _render: Callable[[dict[int, str]], bytes] = field(repr=False)
    original: bytes = b""

    def render(self, replacements: dict[int, str]) -> bytes:
        if not replacements:
            return self.original
        return self._render(replacements)


def media_type(content_type: str) -> tuple[str, str]:
    """`text/plain; charset=latin-1` -> ("text/plain", "latin-1")."""
    main, _, params = content_type.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"').lower()
    return main.strip().lower(), charset
