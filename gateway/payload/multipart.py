"""multipart/form-data: every part scanned as what it is.

Plain fields are text; file parts holding JSON, JSON Lines, CSV or text (by
their Content-Type, or by file extension when that is missing or
`application/octet-stream`) are scanned like bodies of that type, with the same
field rules. Any other part follows the policy's `unknown_content`: `block`
refuses the request; `pass` forwards it unchanged and the audit record carries
its type, size and SHA-256. `form:` rules match part names. Part names and
file names are scanned too. The preamble and epilogue (which receivers ignore)
are not forwarded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from email.message import Message
from email.utils import collapse_rfc2231_value

from gateway.payload.fields import BodyError, Field, media_type
from gateway.payload.rules import field_outcome
from gateway.payload.text import Shape, decode_text, kind_of, text_unit
from gateway.payload.units import Unit, literal

UnitsOf = Callable[[str | None, bytes, str, str, Shape], Iterator[Unit]]
EXTENSIONS = {".json": "application/json", ".jsonl": "application/jsonl", ".ndjson": "application/x-ndjson",
              ".csv": "text/csv", ".tsv": "text/tab-separated-values", ".txt": "text/plain", ".md": "text/markdown"}


def _boundary(content_type: str) -> bytes:
    msg = Message()
    msg["content-type"] = content_type
    boundary = msg.get_param("boundary")
    if not boundary or not isinstance(boundary, str) or len(boundary) > 200:
        raise BodyError(400, "multipart/form-data without a valid boundary parameter")
    return boundary.encode("latin-1")


def _headers(raw: bytes) -> Message:
    msg = Message()
    for line in raw.split(b"\r\n"):
        name, sep, value = line.decode("utf-8", "replace").partition(":")
        if sep:
            msg[name.strip()] = value.strip()
    return msg


def multipart_units(body: bytes, content_type: str, shape: Shape, units_of: UnitsOf) -> Iterator[Unit]:
    """`units_of` reads each part by its own type (the format dispatcher, passed in: parts may be any format)."""
    delim = b"--" + _boundary(content_type)
    start = body.find(delim)
    if start < 0:
        raise BodyError(400, "multipart body has no boundary line")
    if body[:start].strip():
        yield Unit([], [], lambda r: b"", altered=True)
    pos, number = start + len(delim), 0
    while True:
        if body[pos:pos + 2] == b"--":
            yield literal(delim + b"--\r\n")
            if body[pos + 2:].strip():
                yield Unit([], [], lambda r: b"", altered=True)
            return
        line_end = body.find(b"\r\n", pos)
        head_end = body.find(b"\r\n\r\n", line_end) if line_end >= 0 else -1
        if head_end < 0:
            raise BodyError(400, f"multipart part {number + 1} has no header end")
        next_delim = body.find(b"\r\n" + delim, head_end + 4)
        if next_delim < 0:
            raise BodyError(400, "multipart body is truncated (no closing boundary)")
        number += 1
        raw_headers = body[line_end + 2:head_end] if head_end > line_end else b""
        yield from _part(number, delim, raw_headers, body[head_end + 4:next_delim], shape, units_of)
        pos = next_delim + 2 + len(delim)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _part(number: int, delim: bytes, raw_headers: bytes, content: bytes, shape: Shape,
          units_of: UnitsOf) -> Iterator[Unit]:
    headers = _headers(raw_headers)
    name = collapse_rfc2231_value(headers.get_param("name", header="content-disposition") or "")  # name*= too
    filename = headers.get_filename()
    ptype = headers.get("content-type", "")
    mtype, charset = media_type(ptype) if ptype else ("", "utf-8")
    if filename and mtype in ("", "application/octet-stream"):
        for ext, guess in EXTENSIONS.items():
            if filename.lower().endswith(ext):
                mtype = guess
                break
    if not mtype and not filename:
        mtype = "text/plain"
    index = shape.rules.form_rule(name)
    rule = shape.rules.rules[index] if index is not None else None
    outcome = field_outcome(rule, content)
    whole = delim + b"\r\n" + raw_headers + b"\r\n\r\n" + content + b"\r\n"
    if outcome.verb == "drop":
        yield Unit([], [], lambda r: b"", altered=True, counts=outcome.counts)
        return
    if outcome.verb in ("allow", "block", "pass") or (outcome.verb == "keep" and rule.verb == "block"):
        yield Unit([], [], lambda r: whole, counts=outcome.counts, blocked=outcome.blocked)
        return
    kind = kind_of(mtype)
    if outcome.verb != "scan":
        if kind is None:
            raise BodyError(415, f"multipart part {number}: {rule.verb} cannot be applied to {mtype or 'binary'} content")
        text = decode_text(content, charset, f" of multipart part {number}")
        yield _head(delim, raw_headers, name, filename, shape)
        unit = text_unit(text, charset, content)
        unit.actions = [outcome.action] if outcome.action is not None else [None]
        yield unit
        yield literal(b"\r\n")
        return
    if kind is None or kind == "multipart":
        if shape.unknown_content == "block":
            raise BodyError(415, f"multipart part {number} ({mtype or 'no type'}) cannot be scanned and the policy blocks unknown content")
        passed = {"part": number, "content_type": mtype or "", "bytes": len(content),
                  "sha256": hashlib.sha256(content).hexdigest()}
        yield _head(delim, raw_headers, name, filename, shape)
        yield Unit([], [], lambda r: content + b"\r\n", passed=passed)
        return
    yield _head(delim, raw_headers, name, filename, shape)
    yield from units_of(kind, content, charset, mtype, shape)
    yield literal(b"\r\n")


KNOWN_DISPOSITION = frozenset({"form-data", "name", "name*", "filename", "filename*"})
FRAMING = (b"content-disposition:", b"content-type:", b"content-transfer-encoding:")


def _head(delim: bytes, raw_headers: bytes, name: str, filename: str | None, shape: Shape) -> Unit:
    """The delimiter and headers; part names the policy does not name, file names (RFC 2231
    `name*=` / `filename*=` decoded) and the values of any other part header are scanned. The
    Content-Disposition is rewritten with only `name` and `filename` when a value changed or it
    carried other parameters."""
    fields = [Field("" if name in shape.rules.named else name, f"form:{name}", "key")]
    if filename:
        fields.append(Field(filename, f"form:{name}#filename"))
    lines = [line for line in raw_headers.split(b"\r\n") if line]
    extra = [i for i, line in enumerate(lines) if not line.lower().startswith(FRAMING) and b":" in line]
    first_extra = len(fields)
    for i in extra:
        head, _, value = lines[i].decode("utf-8", "replace").partition(":")
        fields.append(Field(value.strip(), f"form:{name}#header:{head.strip().lower()}"))
    disposition_params = _disposition_params(lines)
    odd = bool(disposition_params - KNOWN_DISPOSITION)

    def emit(repl: dict[int, str]) -> bytes:
        if not repl and not odd:
            return delim + b"\r\n" + raw_headers + b"\r\n\r\n"
        disposition = f'form-data; name="{_quote(repl.get(0, name))}"'
        if filename:
            disposition += f'; filename="{_quote(repl.get(1, filename))}"'
        out = [f"Content-Disposition: {disposition}".encode()]
        kept = list(lines)
        for k, i in enumerate(extra):
            if first_extra + k in repl:
                head = kept[i].split(b":", 1)[0]
                kept[i] = head + b": " + " ".join(repl[first_extra + k].splitlines()).encode()
        out += [line for line in kept if not line.lower().startswith(b"content-disposition:")]
        return delim + b"\r\n" + b"\r\n".join(out) + b"\r\n\r\n"

    return Unit(fields, [None] * len(fields), emit, altered=odd)


def _disposition_params(lines: list[bytes]) -> set[str]:
    for line in lines:
        if line.lower().startswith(b"content-disposition:"):
            value = line.split(b":", 1)[1].decode("utf-8", "replace")
            return {p.split("=", 1)[0].strip().lower() for p in value.split(";") if p.strip()}
    return set()
