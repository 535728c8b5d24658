"""Walk one JSON document under field rules, and write it back.

`parse` keeps what a plain `json.loads` would lose: duplicate keys (objects
are ordered pairs) and the exact text of non-integer numbers. `walk` turns
every string, object key and identifier-sized integer into a `Field` and puts
a `Slot` in its place, applies drop / allow / block rules as it goes, and
returns a `Unit` whose `emit` writes compact JSON with replacements.

With `nested_json`, a string holding a JSON object or array (an LLM tool call's
`arguments`) is parsed and walked as if it were part of the document — paths
continue into it — and written back as a string of compact JSON if anything
inside changed, or exactly as it was if nothing did.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

from gateway.payload.fields import MIN_ID_DIGITS, BodyError, Field
from gateway.payload.rules import SCAN, field_outcome
from gateway.payload.units import Unit
from gateway.policy.fields import RuleSet, Segment, WholeValue, normalized_path, whole_value

MAX_NESTED_DEPTH = 4
_DROP = object()


class Obj(list):
    """A JSON object as ordered (key, value) pairs, so duplicate keys survive."""


class RawFloat(str):
    """A non-integer JSON number, kept as its original text."""


@dataclass
class Slot:
    """Where a field sits in the tree; `raw` is its original JSON text."""

    index: int
    raw: str


@dataclass
class Nested:
    """JSON held inside a string. `lo`/`hi` bound the slots inside it."""

    text: str
    value: Any
    lo: int = 0
    hi: int = 0
    altered: bool = False


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse(text: str) -> Any:
    return json.loads(text, object_pairs_hook=Obj, parse_float=RawFloat, parse_constant=_no_constants)


def parse_error(exc: ValueError, where: str = "") -> BodyError:
    """A clear message naming the position, never the content."""
    if isinstance(exc, json.JSONDecodeError):
        return BodyError(400, f"invalid JSON{where} at line {exc.lineno} column {exc.colno}: {exc.msg}")
    return BodyError(400, f"invalid JSON{where}: {exc}")


def is_id_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) >= MIN_ID_DIGITS


def _nonempty(node: Any) -> bool:
    if node is None:
        return False
    if isinstance(node, str):
        return bool(node.strip())
    if isinstance(node, Nested):
        return _nonempty(node.value)
    if isinstance(node, list):
        return bool(node)
    return True


def expand_nested(node: Any, depth: int = 0) -> Any:
    """Replace strings that hold a JSON object or array by `Nested`."""
    if isinstance(node, Obj):
        return Obj((k, expand_nested(v, depth)) for k, v in node)
    if isinstance(node, list):
        return [expand_nested(v, depth) for v in node]
    if isinstance(node, str) and not isinstance(node, RawFloat) and depth < MAX_NESTED_DEPTH:
        stripped = node.strip()
        if len(stripped) >= 2 and stripped[0] in "{[" and stripped[-1] in "}]":
            try:
                inner = parse(stripped)
            except (ValueError, RecursionError):
                return node
            return Nested(node, expand_nested(inner, depth + 1))
    return node


def view(node: Any) -> Any:
    """Plain Python values for the JSONPath library (last duplicate key wins)."""
    if isinstance(node, Obj):
        return {k: view(v) for k, v in node}
    if isinstance(node, list):
        return [view(v) for v in node]
    if isinstance(node, Nested):
        return view(node.value)
    if isinstance(node, RawFloat):
        return float(node)
    return node


class Walker:
    def __init__(self, rules: RuleSet, evaluated: dict[str, int] | None):
        self.rules = rules
        self.evaluated = evaluated
        self.fields: list[Field] = []
        self.actions: list[WholeValue | None] = []
        self.counts: Counter = Counter()
        self.blocked = ""
        self.altered = False
        self.passed: list[dict] = []  # media forwarded unscanned (`pass` rules): path, type, size, sha256

    def field(self, text: str, segs: tuple, kind: str, action: WholeValue | None) -> Slot:
        self.fields.append(Field(text, normalized_path(segs), kind))
        self.actions.append(action)
        raw = text if kind == "number" else encode_basestring(text)  # json.dumps(text, ensure_ascii=False)
        return Slot(len(self.fields) - 1, raw)

    def node(self, node: Any, segs: tuple[Segment, ...], inherited: int | None) -> Any:
        """Walk one node. A rule on an object or array covers what is inside,
        except where an earlier rule selects something inside (first match wins):
        so `drop $.meta` after `allow $.meta.id` forwards only `meta.id`."""
        if self.blocked:
            return node
        exact = self.rules.json_rule(segs, self.evaluated) if self.rules.selectors else None
        index = exact if inherited is None else (inherited if exact is None else min(exact, inherited))
        rule = self.rules.rules[index] if index is not None else None
        verb = rule.verb if rule else "scan"
        container = isinstance(node, (list, Nested))
        if verb in ("drop", "allow", "block") and (index == 0 or not container or not _nonempty(node)):
            return self._final(rule, node)
        action = (whole_value(rule) if rule and verb not in ("scan", "drop", "allow", "block", "pass", "scan_text_parts")
                  else None)
        if isinstance(node, Obj):
            pairs = Obj()
            for key, value in node:
                child = segs + (key,)
                new = self.node(value, child, index)
                if new is _DROP:
                    continue
                known = verb in ("drop", "allow", "block") or key in self.rules.named
                name = key if known else self.field(key, child, "key", None)
                pairs.append((name, new))
            return self._carved(verb, rule, node, pairs, len(pairs) < len(node))
        if isinstance(node, list):
            items = [new for i, value in enumerate(node) for new in [self.node(value, segs + (i,), index)]
                     if new is not _DROP]
            return self._carved(verb, rule, node, items, len(items) < len(node))
        if isinstance(node, Nested):
            lo, altered = len(self.fields), self.altered
            inner = self.node(node.value, segs, index)
            if inner is _DROP:
                return _DROP
            return Nested(node.text, inner, lo, len(self.fields), self.altered and not altered)
        if isinstance(node, str) and not isinstance(node, RawFloat):
            outcome = field_outcome(rule, node) if action or verb in ("pass", "scan_text_parts") else SCAN
            if outcome.verb == "pass":
                self.counts.update(outcome.counts)
                self.passed.append({"field": normalized_path(segs), **outcome.media})
                return node
            if outcome.verb == "media_text":  # scanned as its decoded text; written back as it came
                self.counts.update(outcome.counts)
                self.passed.append({"field": normalized_path(segs), **outcome.media, "scanned": True})
                self.fields.append(Field(outcome.text, normalized_path(segs), "media"))
                self.actions.append(None)
                return Slot(len(self.fields) - 1, encode_basestring(node))
            return node if outcome.verb == "keep" else self.field(node, segs, "value", outcome.action)
        if isinstance(node, bool) or node is None:
            return node
        if action:
            return self.field(str(node), segs, "number", action)
        if is_id_number(node):
            return self.field(str(node), segs, "number", None)
        return node

    def _final(self, rule, node: Any) -> Any:
        outcome = field_outcome(rule, node.value if isinstance(node, Nested) else node)
        if outcome.counts:  # most fields count nothing; Counter.update is slow even when empty
            self.counts.update(outcome.counts)
        if outcome.verb == "drop":
            self.altered = True
            return _DROP
        self.blocked = self.blocked or outcome.blocked
        return node

    def _carved(self, verb: str, rule, node: Any, kept: list, lost: bool) -> Any:
        """A container under drop/allow/block whose children were walked because an
        earlier rule might select one of them: keep it only for those children."""
        if lost:
            self.altered = True
        if verb == "drop" and not kept:
            return _DROP
        return type(node)(kept) if isinstance(node, Obj) else kept


_CONSTANTS = {None: "null", True: "true", False: "false"}


def dump(node: Any, repl: dict[int, str]) -> str:
    """Compact JSON in walk order; a replaced number becomes a string. Written as `json.dumps`
    would (strings of the tree ASCII-escaped, fields as sent), without its per-call encoder."""
    if isinstance(node, Slot):
        new = repl.get(node.index)
        if new is None or new == node.raw:  # an unchanged number stays a number
            return node.raw
        return encode_basestring(new)
    if isinstance(node, Obj):
        return "{" + ",".join(f"{dump(k, repl) if isinstance(k, Slot) else encode_basestring(k)}:{dump(v, repl)}"
                              for k, v in node) + "}"
    if isinstance(node, list):
        return "[" + ",".join(dump(v, repl) for v in node) + "]"
    if isinstance(node, Nested):
        if node.altered or any(node.lo <= i < node.hi for i in repl):
            return encode_basestring(dump(node.value, repl))
        return encode_basestring(node.text)
    if isinstance(node, RawFloat):
        return str.__str__(node)
    if isinstance(node, str):
        return encode_basestring_ascii(node)
    if node is None or node is True or node is False:
        return _CONSTANTS[node]
    if isinstance(node, int):
        return int.__repr__(node)
    return json.dumps(node)


def encode(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: keep it escaped
        return json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":")).encode()


def json_unit(tree: Any, rules: RuleSet, nested_json: bool, original: bytes | None = None,
              prefix: tuple[Segment, ...] = (), framing=None) -> Unit:
    """One document (or one element of a streamed array at `prefix`) as a Unit.
    Unchanged, it emits `original` when given; otherwise compact JSON passed
    through `framing(rendered or None if dropped) -> bytes`."""
    if nested_json:
        tree = expand_nested(tree)
    evaluated = rules.evaluate(view(tree)) if rules.complex else None
    walker = Walker(rules, evaluated)
    inherited = rules.json_rule((), None) if prefix and rules.selectors else None
    try:
        walked = walker.node(tree, prefix, inherited)
    except RecursionError:
        raise BodyError(400, "JSON nests too deeply to scan") from None
    task = framing is not None  # one element of an array or one line: a task that `on_block: drop_task` may drop
    framing = framing or (lambda data: data or b"")

    def emit(repl: dict[int, str]) -> bytes:
        if original is not None and not repl and not walker.altered:
            return original
        if walked is _DROP:
            return framing(None)
        return framing(encode(dump(walked, repl)))

    return Unit(walker.fields, walker.actions, emit, altered=walker.altered, blocked=walker.blocked,
                counts=walker.counts, passed=walker.passed or None,
                drop=(lambda: framing(None)) if task else None)
