"""Deny-list terms (code names, projects, customers) and allow-lists.

Thousands of terms are matched in one pass with an Aho-Corasick automaton over
the lower-cased text; a hit counts only on word boundaries, so "Atlas" finds
"ATLAS," but not "Atlassian". Runs of whitespace inside a multiword term match
any whitespace run in the text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping

import ahocorasick

from gateway.detection.finding import Finding

_SPACES = re.compile(r"\s+")
_WIDE_SPACE = re.compile(r"\s{2,}|[^\S ]")


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _lower_same_length(text: str) -> str:
    """Lower-case without changing any offset (a few characters grow when lowered)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class _Squeezed:
    """`text` with each whitespace run other than a single space made one space, and a map back."""

    def __init__(self, text: str) -> None:
        self.norm_starts: list[int] = [0]
        self.orig_starts: list[int] = [0]
        pieces = []
        pos = 0
        out = 0
        for m in _WIDE_SPACE.finditer(text):
            pieces.append(text[pos:m.start()])
            out += m.start() - pos
            pieces.append(" ")
            self.norm_starts.append(out)
            self.orig_starts.append(m.start())
            out += 1
            self.norm_starts.append(out)
            self.orig_starts.append(m.end())
            pos = m.end()
        pieces.append(text[pos:])
        self.text = "".join(pieces)

    def original(self, index: int) -> int:
        k = bisect.bisect_right(self.norm_starts, index) - 1
        return self.orig_starts[k] + index - self.norm_starts[k]


class TermDetector:
    """Finds listed terms as whole words, case-insensitively."""

    def __init__(
        self,
        terms: Mapping[str, Iterable[str]],
        allow: Iterable[str] = (),
        allow_regex: Iterable[str] = (),
    ) -> None:
        self._automaton = ahocorasick.Automaton()
        self._multiword = False
        for entity_type, items in terms.items():
            for term in items:
                key = _SPACES.sub(" ", term.strip()).lower()
                if not key:
                    continue
                self._multiword = self._multiword or " " in key
                self._automaton.add_word(key, (entity_type, len(key), key[0], key[-1]))
        self._empty = len(self._automaton) == 0
        if not self._empty:
            self._automaton.make_automaton()
        self._allow = {a.strip().lower() for a in allow}
        self._allow_regex = [re.compile(r, re.IGNORECASE) for r in allow_regex]

    def detect(self, text: str) -> list[Finding]:
        if self._empty or not text:
            return []
        squeezed = _Squeezed(text) if self._multiword and _WIDE_SPACE.search(text) else None
        haystack = _lower_same_length(squeezed.text if squeezed else text)
        hits = []
        for last, (entity_type, length, first_ch, last_ch) in self._automaton.iter(haystack):
            start, end = last - length + 1, last + 1
            if _is_word(first_ch) and start > 0 and _is_word(haystack[start - 1]):
                continue
            if _is_word(last_ch) and end < len(haystack) and _is_word(haystack[end]):
                continue
            hits.append((start, end, entity_type))
        hits.sort(key=lambda h: (h[0], -h[1]))
        findings = []
        covered = -1
        for start, end, entity_type in hits:
            if end <= covered:
                continue
            covered = end
            if squeezed is not None:
                start, end = squeezed.original(start), squeezed.original(end)
            findings.append(Finding(entity_type, start, end, 0.85, "terms", explanation="terms: deny-list term"))
        return findings

    def is_allowed(self, value: str) -> bool:
        """True when `value` is on the allow-list (exact, case-insensitive) or fully matches an allow regex."""
        if value.strip().lower() in self._allow:
            return True
        return any(r.fullmatch(value) for r in self._allow_regex)
