"""Decode a request body into text fields, and encode it back.

Every format becomes a `Document`: an ordered list of `Field`s (the strings a
detector must see, each with a path such as `$.user.email` or `form:name`) and
a `render` that writes the body back with some fields replaced. A body with no
replacements is forwarded byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded",)
MIN_ID_DIGITS = 6


class BodyError(Exception):
    """The body is malformed for its declared type; nothing is forwarded."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


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


def is_known(mtype: str) -> bool:
    return mtype in JSON_TYPES or mtype in FORM_TYPES or mtype.startswith("text/") or mtype.endswith("+json")


def decode_body(body: bytes, content_type: str) -> Document:
    mtype, charset = media_type(content_type)
    if not body:
        return Document([], lambda r: b"", body)
    text = _text(body, charset)
    if mtype in JSON_TYPES or mtype.endswith("+json"):
        return _json_document(text, body)
    if mtype in FORM_TYPES:
        return form_document(text, "form", body)
    return Document([Field(text, "$")], lambda r: r[0].encode(charset), body)


def _text(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except LookupError:
        raise BodyError(415, f"unknown charset {charset!r}") from None
    except UnicodeDecodeError as exc:
        raise BodyError(400, f"body is not valid {charset} (byte {exc.start})") from None


def form_document(text: str, prefix: str, original: bytes = b"") -> Document:
    pairs = parse_qsl(text, keep_blank_values=True)
    fields: list[Field] = []
    for name, value in pairs:
        fields.append(Field(name, f"{prefix}:{name}", "key"))
        fields.append(Field(value, f"{prefix}:{name}"))

    def render(replacements: dict[int, str]) -> bytes:
        out = [(replacements.get(2 * i, n), replacements.get(2 * i + 1, v)) for i, (n, v) in enumerate(pairs)]
        return urlencode(out).encode()

    return Document(fields, render, original or text.encode())


class _Object(list):
    """A JSON object as ordered (key, value) pairs, so duplicate keys survive."""


def _json_document(text: str, original: bytes) -> Document:
    try:
        data = json.loads(text, object_pairs_hook=_Object)
    except json.JSONDecodeError as exc:
        raise BodyError(400, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    fields: list[Field] = []
    _collect(data, "$", fields)

    def render(replacements: dict[int, str]) -> bytes:
        counter = iter(range(len(fields)))
        return _dump(data, replacements, counter).encode("utf-8")

    return Document(fields, render, original)


def member_path(path: str, key: str) -> str:
    """RFC 9535 normalized path of an object member: `$['user']['email']`."""
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{path}['{escaped}']"


def _is_id_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) >= MIN_ID_DIGITS


def _collect(node: Any, path: str, fields: list[Field]) -> None:
    if isinstance(node, _Object):
        for key, value in node:
            child = member_path(path, key)
            fields.append(Field(key, child, "key"))
            _collect(value, child, fields)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _collect(item, f"{path}[{i}]", fields)
    elif isinstance(node, str):
        fields.append(Field(node, path))
    elif _is_id_number(node):
        fields.append(Field(str(node), path, "number"))


def _dump(node: Any, replacements: dict[int, str], counter) -> str:
    """Serialise in the same order `_collect` walked, substituting replaced fields.
    A replaced number becomes a string (a token is not a number)."""
    if isinstance(node, _Object):
        parts = []
        for key, value in node:
            new_key = replacements.get(next(counter), key)
            parts.append(f"{json.dumps(new_key, ensure_ascii=False)}:{_dump(value, replacements, counter)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(node, list):
        return "[" + ",".join(_dump(item, replacements, counter) for item in node) + "]"
    if isinstance(node, str) or _is_id_number(node):
        index = next(counter)
        if index in replacements:
            return json.dumps(replacements[index], ensure_ascii=False)
    return json.dumps(node, ensure_ascii=False)
