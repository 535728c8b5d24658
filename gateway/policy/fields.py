"""Field rules: what a policy does with one field of a structured body.

A rule names fields by JSONPath (RFC 9535, parsed by `python-jsonpath` in
strict mode), by CSV column, or by form / multipart field name, and says what
happens to them: `scan`, `allow`, `drop`, `block`, or any action applied to the
whole value. A rule that selects an object or array covers everything inside.

Precedence is **first match in file order**: a field takes the first rule that
selects it or any of its ancestors. `lint` reports rules that can never apply.

Most selectors are plain paths (names, indices, wildcards, `..`); those are
matched against a field's path segments directly, with a cache, so a batch of
50,000 lines with the same shape costs one match per distinct path. Selectors
with filters, slices or negative indices are evaluated by the library once per
document, and fields are matched by their normalized path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonpath
from jsonpath.exceptions import JSONPathError
from jsonpath.segments import JSONPathRecursiveDescentSegment
from jsonpath.selectors import IndexSelector, NameSelector, SliceSelector, WildcardSelector
from jsonpath.serialize import canonical_string
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.policy.actionspec import ActionSpec

# pass: media (data: URLs, base64) unscanned, audited by sha256; scan_text_parts: text media decoded and
# scanned (never rewritten: a finding to act on refuses the request), binary media as pass
RULE_WORDS = ("scan", "drop", "pass", "scan_text_parts")
ENTITY_LABEL = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
_CACHE_LIMIT = 65536
_STRICT = jsonpath.JSONPathEnvironment(strict=True)

Segment = str | int


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class FieldRule(BaseModel):
    """`{select: "$.meta.ssn", column: ssn, action: block}`"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    select: list[str] = Field(default_factory=list)
    column: list[str] = Field(default_factory=list)
    form: list[str] = Field(default_factory=list)
    action: Any  # "scan", "drop", "pass", or an ActionSpec (allow, block, tokenize, {action: mask, keep: 4}, ...)
    entity_type: str = ""

    @field_validator("select", "column", "form", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("select")
    @classmethod
    def _compile(cls, value: list[str]) -> list[str]:
        for text in value:
            compile_selector(text)
        return value

    @field_validator("action", mode="before")
    @classmethod
    def _action(cls, value: Any) -> Any:
        if value in RULE_WORDS:
            return value
        return ActionSpec.model_validate(value)

    @model_validator(mode="after")
    def _check(self) -> FieldRule:
        if not (self.select or self.column or self.form):
            raise ValueError("a field rule needs at least one of select (JSONPath), column or form")
        if any(not n.strip() for n in self.column + self.form):
            raise ValueError("column and form names must not be empty")
        if self.entity_type and not ENTITY_LABEL.match(self.entity_type):
            raise ValueError(f"entity_type must match {ENTITY_LABEL.pattern}")
        return self

    @property
    def verb(self) -> str:
        """scan, drop, allow, block, or the action's name."""
        return self.action if isinstance(self.action, str) else self.action.action

    @property
    def label(self) -> str:
        """How messages name this rule: its first selector."""
        if self.select:
            return self.select[0]
        return f"column {self.column[0]}" if self.column else f"form {self.form[0]}"

    def token_type(self) -> str:
        """The entity type a whole-value action issues tokens under, e.g. CUSTOMER_ID."""
        if self.entity_type:
            return self.entity_type
        name = ""
        for text in self.select:
            names = [seg for seg in _last_names(compile_selector(text))]
            name = names[-1] if names else name
            if name:
                break
        name = name or (self.column or self.form or [""])[0]
        label = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")
        return label[:40] if label and label[0].isalpha() else "FIELD"


@dataclass(frozen=True)
class Step:
    """One segment of a plain selector: which members or elements it accepts."""

    descendant: bool
    names: frozenset[str]
    indices: frozenset[int]
    wildcard: bool

    def accepts(self, seg: Segment) -> bool:
        if self.wildcard:
            return True
        return seg in self.names if isinstance(seg, str) else seg in self.indices

    def within(self, other: Step) -> bool:
        """Everything this step accepts, `other` accepts too."""
        if other.wildcard:
            return True
        return not self.wildcard and self.names <= other.names and self.indices <= other.indices


@dataclass(frozen=True)
class Selector:
    rule: int
    text: str
    query: Any
    steps: tuple[Step, ...] | None  # None: needs the library (filters, slices, negative indices)

    def matches(self, segs: tuple[Segment, ...]) -> bool:
        assert self.steps is not None
        return _match(self.steps, segs, 0, 0)


@lru_cache(maxsize=4096)
def compile_selector(text: str):
    try:
        return _STRICT.compile(text)
    except JSONPathError as exc:
        raise ValueError(f"invalid JSONPath {text!r}: {str(exc).splitlines()[0]}") from None


def _steps(query) -> tuple[Step, ...] | None:
    steps = []
    for segment in getattr(query, "segments", None) or ():
        names, indices, wildcard = set(), set(), False
        for sel in segment.selectors:
            if isinstance(sel, NameSelector):
                names.add(sel.name)
            elif isinstance(sel, IndexSelector) and sel.index >= 0:
                indices.add(sel.index)
            elif isinstance(sel, WildcardSelector):
                wildcard = True
            else:
                return None
        steps.append(Step(isinstance(segment, JSONPathRecursiveDescentSegment), frozenset(names), frozenset(indices), wildcard))
    return tuple(steps)


def _last_names(query) -> list[str]:
    names = []
    for segment in getattr(query, "segments", None) or ():
        for sel in segment.selectors:
            if isinstance(sel, NameSelector):
                names.append(sel.name)
    return names


def _match(steps: tuple[Step, ...], segs: tuple[Segment, ...], i: int, j: int) -> bool:
    while True:
        if i == len(steps):
            return j == len(segs)
        if j == len(segs):
            return False
        step = steps[i]
        if step.descendant:
            return any(step.accepts(segs[k]) and _match(steps, segs, i + 1, k + 1) for k in range(j, len(segs)))
        if not step.accepts(segs[j]):
            return False
        i, j = i + 1, j + 1


@lru_cache(maxsize=16384)  # a batch's items repeat the same few paths
def normalized_path(segs: tuple[Segment, ...]) -> str:
    """RFC 9535 normalized path, e.g. `$['meta'][0]`, as the library writes it."""
    return "$" + "".join([_segment(s) for s in segs])


@lru_cache(maxsize=8192)
def _segment(s: Segment) -> str:
    """One step of a normalized path (keys repeat on every line of a batch)."""
    return f"[{canonical_string(s)}]" if isinstance(s, str) else f"[{s}]"


class RuleSet:
    """A policy's field rules, compiled once. The policy's `field_default`, when
    it is not `scan`, is one more rule after all others that selects everything."""

    def __init__(self, rules: list[FieldRule], default: Any = "scan"):
        self.default_rule: int | None = None
        if default != "scan":
            rules = [*rules, FieldRule(select=["$"], action=default, entity_type="FIELD")]
            self.default_rule = len(rules) - 1
        self.rules = rules
        self.selectors = [Selector(i, t, q, _steps(q)) for i, r in enumerate(rules) for t in r.select
                          for q in [compile_selector(t)]]
        self.simple = [s for s in self.selectors if s.steps is not None]
        self.complex = [s for s in self.selectors if s.steps is None]
        self.columns = _first_by_name(rules, "column")
        self.forms = _first_by_name(rules, "form")
        # Keys the policy itself names (in selectors, columns, form fields) are schema,
        # not data: they are not scanned (NER misreads names like `customer_id`).
        self.named = frozenset(n for s in self.selectors for n in _last_names(s.query)) | set(self.columns) | set(self.forms)
        self._cache: dict[tuple, int | None] = {}
        self._named_indices = max((i + 1 for s in self.simple for step in s.steps for i in step.indices), default=0)

    def column_rule(self, name: str) -> int | None:
        return self.columns.get(name, self.default_rule)

    def form_rule(self, name: str) -> int | None:
        return self.forms.get(name, self.default_rule)

    def json_rule(self, segs: tuple[Segment, ...], evaluated: dict[str, int] | None) -> int | None:
        """Index of the first rule selecting exactly this path, or None."""
        # An index no selector names matches exactly what any other such index matches (only
        # wildcards accept it), so a JSON array's items share one cache entry instead of one each.
        key = tuple(s if type(s) is str or s < self._named_indices else -1 for s in segs)
        found = self._cache.get(key, -1)
        if found == -1:
            found = next((s.rule for s in self.simple if s.matches(key)), None)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = found
        if evaluated:
            other = evaluated.get(normalized_path(segs))
            if other is not None and (found is None or other < found):
                found = other
        return found

    def evaluate(self, view: Any) -> dict[str, int]:
        """Run the selectors that need the library on one document: path -> first rule."""
        paths: dict[str, int] = {}
        if not isinstance(view, (dict, list)):  # the library would parse a str root as JSON text
            return paths
        for sel in self.complex:
            for match in sel.query.finditer(view):
                if match.path not in paths or sel.rule < paths[match.path]:
                    paths[match.path] = sel.rule
        return paths


def _first_by_name(rules: list[FieldRule], attr: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, rule in enumerate(rules):
        for name in getattr(rule, attr):
            found.setdefault(name, i)
    return found


def _covers(a: tuple[Step, ...], b: tuple[Step, ...]) -> bool:
    """Every path `b` selects has a prefix (or itself) that `a` selects.
    Conservative: False when unsure, so a warning is always real."""
    if not a:
        return True
    head, rest = a[0], a[1:]
    if not head.descendant:
        return bool(b) and not b[0].descendant and b[0].within(head) and _covers(rest, b[1:])
    return any(b[k].within(head) and _covers(rest, b[k + 1:]) for k in range(len(b)))


def _never(query) -> str:
    for segment in getattr(query, "segments", None) or ():
        for sel in segment.selectors:
            if isinstance(sel, SliceSelector):
                s = sel.slice
                step = s.step if s.step is not None else 1
                if step == 0:
                    return "its slice has step 0"
                if step > 0 and s.start is not None and s.stop is not None and s.start >= 0 and s.stop >= 0 and s.start >= s.stop:
                    return f"its slice [{s.start}:{s.stop}] is empty"
    return ""


def lint(rules: list[FieldRule]) -> list[str]:
    """Rules (or selectors of rules) that can never apply, and why."""
    warnings = []
    compiled = RuleSet(rules)
    for sel in compiled.selectors:
        n = sel.rule + 1
        why = _never(sel.query)
        if why:
            warnings.append(f"rule {n} selector {sel.text!r} can never match: {why}")
            continue
        for earlier in compiled.selectors:
            if earlier.rule >= sel.rule:
                break
            same = str(earlier.query) == str(sel.query)
            if same or (earlier.steps is not None and sel.steps is not None and _covers(earlier.steps, sel.steps)):
                how = "the same selector" if same else f"{earlier.text!r}, which covers every field it selects"
                warnings.append(f"rule {n} selector {sel.text!r} never applies: rule {earlier.rule + 1} comes first with {how}")
                break
    for attr in ("column", "form"):
        first = _first_by_name(rules, attr)
        for i, rule in enumerate(rules):
            for name in getattr(rule, attr):
                if first[name] != i:
                    warnings.append(f"rule {i + 1} {attr} {name!r} never applies: rule {first[name] + 1} names it first")
    return warnings


@dataclass(frozen=True)
class WholeValue:
    """A rule's action applied to a whole field value (no detection)."""

    spec: Any  # ActionSpec
    entity_type: str
    label: str


def whole_value(rule: FieldRule) -> WholeValue:
    return WholeValue(rule.action, rule.token_type(), rule.label)
