"""The pattern layer: one multi-pattern pass, then the regex scan of the recognizers it allows, then validators."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cache

from gateway.detection import multipattern
from gateway.detection.finding import Finding
from gateway.detection.patterns.base import Recognizer, prefilter_regex, scan_alternative
from gateway.detection.patterns.custom import CustomPattern
from gateway.detection.patterns.recognizers import BUILT_IN

# Up to this many candidates, each one's own regex runs (compiled once per process) and their matches
# are merged; more, and the detector's one combined regex runs. A combined regex per set of candidates
# compiled ~25 ms for each new set: 2.5 s on the first pass over a corpus of payloads.
MERGED = 8
# Characters `re` treats as \\s or \\w that hyperscan's ASCII classes do not: a text holding one
# (or anything beyond ASCII) skips the prefilter and gets the full scan.
_NOT_PREFILTERED = re.compile(r"[^\x00-\x0a\x0c-\x1b\x20-\x7f]")


@cache
def built_in_prefilter() -> multipattern.MultiPattern | None:
    """One hyperscan database of every built-in recognizer, compiled at the first scan of the
    process (about 1 s) and shared by every detector; None without hyperscan."""
    if multipattern.hyperscan is None:
        return None
    return multipattern.MultiPattern([prefilter_regex(r) for r in BUILT_IN], engine="hyperscan")


def _guarded(alternatives: Iterable[str]) -> re.Pattern:
    """Every candidate starts a word: one guard in front rejects most positions before any branch."""
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + ")")


@cache
def _alone(index: int) -> re.Pattern:
    """One built-in recognizer's branch of the combined scan, on its own (compiled once per process)."""
    return _guarded([scan_alternative(BUILT_IN[index], "hit")])


class _Alternation:
    """The combined scan of some recognizers (indices into `BUILT_IN`, in order)."""

    def __init__(self, order: list[int]) -> None:
        self.order = order
        self.position = {BUILT_IN[i].name: k for k, i in enumerate(order)}
        self.regex = _guarded(scan_alternative(BUILT_IN[i], BUILT_IN[i].name) for i in order)

    def starts(self, text: str) -> Iterator[tuple[int, int]]:
        """(start, position in `order`) of each candidate, leftmost first; the caller sends back
        where to look next."""
        search, position, pos = self.regex.search, self.position, 0
        while (m := search(text, pos)) is not None:
            pos = yield m.start(), position[m.lastgroup]


def _merged_starts(order: list[int], text: str) -> Iterator[tuple[int, int]]:
    """What `_Alternation(order).starts` yields, from each recognizer's own regex: the leftmost
    next match of any, the first in `order` on a tie — no regex compiled per set of candidates."""
    searches = [_alone(i).search for i in order]
    upcoming = [search(text) for search in searches]
    pos = 0
    while True:
        best, start = -1, len(text) + 1
        for k, m in enumerate(upcoming):
            if m is not None and m.start() < pos:
                m = upcoming[k] = searches[k](text, pos)
            if m is not None and m.start() < start:
                best, start = k, m.start()
        if best < 0:
            return
        pos = yield start, best


class PatternDetector:
    """Finds structured PII with regexes, checksums and context words.

    A hyperscan pass over the text (prefilter mode: a superset of the
    recognizers whose regex matches somewhere) picks the candidates; a text
    none can match costs that pass alone. The candidates are tried in `BUILT_IN`
    order at each position, as one alternation would: a few candidates by merging
    their own regexes' matches, many by the detector's combined regex (`MERGED`).
    A candidate that fails validation lets the later alternatives try the same
    position, so e.g. a Luhn-invalid 16-digit run can still be a phone number. Recognizers the pass
    ruled out cannot match anywhere, so the findings are those of the full
    alternation. Texts beyond ASCII (where `re`'s Unicode classes differ from
    hyperscan's) get the full alternation.

    Every candidate starts a word, so one `(?<!\\w)` guard in front of the
    alternation rejects most positions before any alternative is tried, and
    each alternative is skipped on its first character (`scan_alternative`).
    """

    def __init__(self, entities: set[str] | None = None, custom: Iterable[CustomPattern] = (),
                 prefilter: bool = True) -> None:
        self.entities = set(entities) if entities is not None else None
        chosen = [i for i, r in enumerate(BUILT_IN) if self.entities is None or r.entities & self.entities]
        self._built_in = chosen  # indices into BUILT_IN, in order
        self._recognizers = [BUILT_IN[i] for i in chosen]
        self._single = {i: re.compile(f"(?P<{BUILT_IN[i].name}>{BUILT_IN[i].regex})") for i in chosen}
        self._wanted = frozenset(chosen)
        self._prefilter = built_in_prefilter() if prefilter and chosen else None
        self._full: _Alternation | None = None  # every chosen recognizer, built at the first text that needs it
        self._custom = [c for c in custom if self.entities is None or c.entity_type in self.entities]

    @property
    def supported_entities(self) -> set[str]:
        names = {e for r in self._recognizers for e in r.entities} | {c.entity_type for c in self._custom}
        return names if self.entities is None else names & self.entities

    def detect(self, text: str) -> list[Finding]:
        findings = self._scan(text) if self._built_in else []
        for pattern in self._custom:
            findings.extend(pattern.detect(text))
        if self.entities is not None:
            findings = [f for f in findings if f.entity_type in self.entities]
        findings.sort(key=lambda f: (f.start, -f.end, f.entity_type))
        return findings

    def candidates(self, text: str) -> frozenset[int]:
        """Indices into `BUILT_IN` of the recognizers that may match `text`."""
        if self._prefilter is None or _NOT_PREFILTERED.search(text):
            return self._wanted
        return self._wanted.intersection(self._prefilter.candidates(text))

    def _scan(self, text: str) -> list[Finding]:
        chosen = self.candidates(text)
        if not chosen:
            return []
        if len(chosen) <= MERGED:
            order = sorted(chosen)
            starts = _merged_starts(order, text)
        else:  # the detector's one combined regex: the ruled-out alternatives match nowhere anyway
            if self._full is None:
                self._full = _Alternation(self._built_in)
            order = self._full.order
            starts = self._full.starts(text)
        results: list[Finding] = []
        step = next(starts, None)
        while step is not None:
            start, at = step
            index = order[at]
            recognizer = BUILT_IN[index]
            exact = self._single[index].match(text, start)
            found = recognizer.handle(text, exact) if exact is not None else []
            if not found:
                found, recognizer = self._fallback(text, start, order, at)
            if not found:
                pos = start + 1
            else:
                results.extend(found)
                pos = start + 1 if recognizer.rescan else max(start + 1, max(f.end for f in found))
            try:
                step = starts.send(pos)
            except StopIteration:
                step = None
        return results

    def _fallback(self, text: str, start: int, order: list[int], failed: int) -> tuple[list[Finding], Recognizer | None]:
        """Later alternatives at a position whose first match failed validation."""
        for index in order[failed + 1:]:
            m = self._single[index].match(text, start)
            if m is not None:
                found = BUILT_IN[index].handle(text, m)
                if found:
                    return found, BUILT_IN[index]
        return [], None
