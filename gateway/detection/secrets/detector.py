"""Run every secret rule over a text and return non-overlapping findings."""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import ahocorasick

from gateway.detection.finding import Finding
from gateway.detection.secrets.catalog import SERVICE_RULES
from gateway.detection.secrets.encoded import encoded_blobs
from gateway.detection.secrets.generic import GENERIC_RULES
from gateway.detection.secrets.rule import SPECIFIC, Rule, Verdict, secret_span
from gateway.detection.secrets.values import is_format_placeholder, shannon_entropy

RULES: tuple[Rule, ...] = tuple(SERVICE_RULES + GENERIC_RULES)
RECOGNIZER = "secrets"
ENTITY_TYPE = "SECRET"


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    score: float
    rule: str
    priority: int
    description: str


def _keep_most_specific(hits: Iterable[_Hit]) -> list[_Hit]:
    """Drop hits overlapping a better one: higher priority, then longer, then higher score."""
    ranked = sorted(hits, key=lambda h: (-h.priority, -(h.end - h.start), -h.score, h.start))
    starts: list[int] = []
    kept: list[_Hit] = []
    for hit in ranked:
        i = bisect.bisect_left(starts, hit.start)
        if i > 0 and kept[i - 1].end > hit.start:
            continue
        if i < len(kept) and kept[i].start < hit.end:
            continue
        starts.insert(i, hit.start)
        kept.insert(i, hit)
    return kept


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _lower_same_length(text: str) -> str:
    """Lower-case `text` for keyword search without shifting any offset."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


def _continues_word(ch: str) -> bool:
    return ch.isalnum() or ch in "_-"


def _keyword_automaton(rules: Iterable[Rule]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for rule in rules:
        for keyword in rule.keywords:
            automaton.add_word(keyword, keyword)
    if len(automaton):
        automaton.make_automaton()
    return automaton


def _keyword_starts(automaton: ahocorasick.Automaton, lowered: str) -> dict[str, list[int]]:
    """Where each keyword starts in `lowered`, found in one pass."""
    starts: dict[str, list[int]] = defaultdict(list)
    if automaton.kind == ahocorasick.AHOCORASICK:
        for end, keyword in automaton.iter(lowered):
            starts[keyword].append(end - len(keyword) + 1)
    return starts


def _anchored_matches(rule: Rule, text: str, starts: dict[str, list[int]]) -> Iterator[re.Match[str]]:
    """Try the rule's regex only where one of its keywords starts."""
    positions = sorted({
        at - back
        for keyword in rule.keywords
        for at in starts.get(keyword, ())
        for back in rule.anchor_back
        if at >= back
    })
    consumed = -1
    for at in positions:
        if at < consumed:
            continue
        match = rule.regex.match(text, at)
        if match is not None:
            consumed = match.end()
            yield match


class SecretDetector:
    """Credential detector: service formats, keyword assignments, encoded blobs.

    `extra_rules` are appended to `RULES`; `disabled` names rule ids (either a
    rule's own id or the finer id a validator reports, like `generic-password`)
    whose findings are dropped.
    """

    name = RECOGNIZER

    def __init__(self, extra_rules: Iterable[Rule] = (), disabled: Iterable[str] = ()) -> None:
        self._disabled = frozenset(disabled)
        self.rules: tuple[Rule, ...] = tuple(
            r for r in (*RULES, *extra_rules) if r.id not in self._disabled
        )
        self._automaton = _keyword_automaton(self.rules)

    def detect(self, text: str) -> list[Finding]:
        plain = _keep_most_specific(self._scan(text))
        starts = [h.start for h in plain]

        def covered(start: int, end: int) -> bool:
            i = bisect.bisect_left(starts, end)
            return i > 0 and plain[i - 1].end > start

        wrapped = [hit for blob in encoded_blobs(text, covered) for hit in self._scan_blob(blob)]
        hits = _keep_most_specific(plain + wrapped) if wrapped else plain
        return [
            Finding(ENTITY_TYPE, h.start, h.end, round(h.score, 3), RECOGNIZER, h.rule, h.description)
            for h in hits
        ]

    def _scan_blob(self, blob) -> list[_Hit]:
        inner = self._scan(blob.decoded)
        if not inner:
            return []
        best = max(inner, key=lambda h: (h.priority, h.score))
        return [_Hit(blob.start, blob.end, best.score * 0.95, f"{blob.encoding}:{best.rule}",
                     best.priority, f"{blob.encoding}-encoded: {best.description}")]

    def _scan(self, text: str) -> list[_Hit]:
        starts = _keyword_starts(self._automaton, _lower_same_length(text))
        hits: list[_Hit] = []
        for rule in self.rules:
            if rule.anchored:
                matches = _anchored_matches(rule, text, starts)
            elif not rule.keywords or any(k in starts for k in rule.keywords):
                matches = rule.regex.finditer(text)
            else:
                continue
            for match in matches:
                hit = self._judge(rule, match)
                if hit is not None:
                    hits.append(hit)
        return hits

    def _judge(self, rule: Rule, match) -> _Hit | None:
        start, end = secret_span(match)
        if start == end:
            return None
        if rule.left_edge and start > 0 and _continues_word(match.string[start - 1]):
            return None
        value = match.string[start:end]
        if rule.priority == SPECIFIC and is_format_placeholder(value):
            return None
        if rule.entropy is not None and shannon_entropy(value) < rule.entropy:
            return None
        verdict = rule.validator(match) if rule.validator else Verdict(rule.score)
        if verdict is None:
            return None
        rule_id = verdict.rule or rule.id
        if rule_id in self._disabled:
            return None
        return _Hit(start, end, verdict.score, rule_id, rule.priority, rule.description)
