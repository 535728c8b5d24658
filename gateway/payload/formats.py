"""Which format a body is, and its units.

`body_units` yields the `Unit`s of a body lazily, so JSON Lines, CSV rows and
the elements of a top-level JSON array are parsed one at a time:

| media type | units |
|---|---|
| `application/json`, `*+json` | the document; a top-level array element by element |
| `application/x-ndjson`, `application/jsonl`, ... | one per line; a bad line blocks or is dropped (`bad_lines`) |
| `text/csv`, `text/tab-separated-values` | header, then one per row (`gateway.payload.csvbody`) |
| `application/x-www-form-urlencoded` | the form |
| `multipart/form-data` | per part (`gateway.payload.multipart`) |
| `text/*` | the text |
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode

from gateway.payload.fields import BodyError, Field, media_type
from gateway.payload.jsonarray import Window, array_items
from gateway.payload.jsonbody import Obj, RawFloat, _no_constants, json_unit, parse, parse_error
from gateway.payload.multipart import multipart_units
from gateway.payload.rules import field_outcome
from gateway.payload.text import Shape, decode_text, kind_of, text_unit
from gateway.payload.units import Unit, literal
from gateway.policy.fields import RuleSet, WholeValue


def body_units(body: bytes, content_type: str, shape: Shape) -> Iterator[Unit]:
    mtype, charset = media_type(content_type)
    kind = kind_of(mtype)
    if not body:
        return iter(())
    if kind == "multipart":
        return multipart_units(body, content_type, shape, units_of)
    return units_of(kind, body, charset, mtype, shape)


def units_of(kind: str | None, body: bytes, charset: str, mtype: str, shape: Shape) -> Iterator[Unit]:
    if kind == "jsonl":
        return jsonl_units(body, charset, shape)
    if kind == "csv":
        from gateway.payload.csvbody import csv_units

        return csv_units(body, charset, mtype, shape)
    if kind == "json":
        return json_units(body, charset, shape)
    text = decode_text(body, charset)
    if kind == "form":
        return iter([form_unit(text, shape.rules, body)])
    return iter([text_unit(text, charset, body)])


def json_units(body: bytes, charset: str, shape: Shape) -> Iterator[Unit]:
    """A document; a top-level array element by element from a decoding window
    (`gateway.payload.jsonarray`), so the body is never held as one `str` as well."""
    window = Window(body, charset)
    if window.peek() == "[" and not shape.rules.complex:
        decoder = json.JSONDecoder(object_pairs_hook=Obj, parse_float=RawFloat, parse_constant=_no_constants)
        first = [True]

        def framing(data: bytes | None) -> bytes:
            if data is None:
                return b""
            lead = b"" if first[0] else b","
            first[0] = False
            return lead + data

        def element(value, index: int) -> Unit:
            return json_unit(value, shape.rules, shape.nested_json, None, (index,), framing)

        yield literal(b"[")
        yield from array_items(window, decoder, element)
        yield literal(b"]")
        return
    del window
    try:
        tree = parse(decode_text(body, charset))
    except (ValueError, RecursionError) as exc:
        raise parse_error(exc if isinstance(exc, ValueError) else ValueError("nests too deeply")) from None
    yield json_unit(tree, shape.rules, shape.nested_json, body)


def jsonl_units(body: bytes, charset: str, shape: Shape) -> Iterator[Unit]:
    """One unit per line; the body is never split or decoded as a whole."""
    pos, lineno = 0, 0
    while pos < len(body):
        end = body.find(b"\n", pos)
        end = len(body) if end < 0 else end + 1
        raw = body[pos:end]
        pos, lineno = end, lineno + 1
        content = raw.rstrip(b"\r\n")
        if not content.strip():
            yield literal(raw)
            continue
        try:
            tree = parse(decode_text(content, charset))
        except (ValueError, RecursionError, BodyError) as exc:
            if shape.bad_lines == "drop":
                yield Unit([], [], lambda r: b"", altered=True, counts=Counter(drop_line=1))
                continue
            detail = str(parse_error(exc)) if isinstance(exc, ValueError) else str(exc)
            raise BodyError(400, f"JSON Lines line {lineno}: {detail}") from None
        terminator = raw[len(content):] or b"\n"
        yield json_unit(tree, shape.rules, shape.nested_json, raw,
                        framing=lambda data, t=terminator: b"" if data is None else data + t)


def form_unit(text: str, rules: RuleSet, original: bytes, prefix: str = "form", sink: str = "body") -> Unit:
    """`a=1&b=2` with `form:` rules; names the policy does not name are scanned like JSON keys.
    The query string is read the same way, with no rules (`prefix="query"`)."""
    pairs = parse_qsl(text, keep_blank_values=True)
    fields: list[Field] = []
    actions: list[WholeValue | None] = []
    kept: list[tuple[str | int, str | int]] = []  # (name or its field index, value or its field index)
    unit = Unit(fields, actions, lambda r: b"", sink=sink)

    def add(value: str, path: str, kind: str, action: WholeValue | None) -> int:
        fields.append(Field(value, path, kind))
        actions.append(action)
        return len(fields) - 1

    for name, value in pairs:
        index = rules.form_rule(name)
        outcome = field_outcome(rules.rules[index] if index is not None else None, value)
        unit.counts.update(outcome.counts)
        if outcome.verb == "drop":
            unit.altered = True
            continue
        key: str | int = name if name in rules.named else add(name, f"{prefix}:{name}", "key", None)
        unit.blocked = unit.blocked or outcome.blocked
        if outcome.verb in ("scan", "whole"):
            kept.append((key, add(value, f"{prefix}:{name}", "value", outcome.action)))
        else:
            kept.append((key, value))

    def emit(repl: dict[int, str]) -> bytes:
        if not repl and not unit.altered:
            return original

        def pick(item: str | int) -> str:
            return repl.get(item, fields[item].text) if isinstance(item, int) else item

        return urlencode([(pick(k), pick(v)) for k, v in kept]).encode()

    unit.emit = emit
    return unit
