"""The pattern layer: every built-in recognizer in one regex pass, then validators."""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.detection.finding import Finding
from gateway.detection.patterns.base import Recognizer, scan_alternative
from gateway.detection.patterns.custom import CustomPattern
from gateway.detection.patterns.recognizers import BUILT_IN


class PatternDetector:
    """Finds structured PII with regexes, checksums and context words.

    The built-in recognizers are joined into one alternation scanned once; a
    candidate that fails validation lets the later alternatives try the same
    position, so e.g. a Luhn-invalid 16-digit run can still be a phone number.

    Every candidate starts a word, so one `(?<!\\w)` guard in front of the
    alternation rejects most positions before any alternative is tried, and
    each alternative is skipped on its first character (`scan_alternative`).
    """

    def __init__(self, entities: set[str] | None = None, custom: Iterable[CustomPattern] = ()) -> None:
        self.entities = set(entities) if entities is not None else None
        self._recognizers = [r for r in BUILT_IN if self.entities is None or r.entities & self.entities]
        self._index = {r.name: i for i, r in enumerate(self._recognizers)}
        self._single = [re.compile(f"(?P<{r.name}>{r.regex})") for r in self._recognizers]
        alternation = "|".join(scan_alternative(r, r.name) for r in self._recognizers)
        self._combined = re.compile(r"(?<!\w)(?:" + alternation + ")") if self._recognizers else None
        self._custom = [c for c in custom if self.entities is None or c.entity_type in self.entities]

    @property
    def supported_entities(self) -> set[str]:
        names = {e for r in self._recognizers for e in r.entities} | {c.entity_type for c in self._custom}
        return names if self.entities is None else names & self.entities

    def detect(self, text: str) -> list[Finding]:
        findings = self._scan(text) if self._combined is not None else []
        for pattern in self._custom:
            findings.extend(pattern.detect(text))
        if self.entities is not None:
            findings = [f for f in findings if f.entity_type in self.entities]
        findings.sort(key=lambda f: (f.start, -f.end, f.entity_type))
        return findings

    def _scan(self, text: str) -> list[Finding]:
        results: list[Finding] = []
        search = self._combined.search
        pos = 0
        while (m := search(text, pos)) is not None:
            index = self._index[m.lastgroup]
            start = m.start()
            recognizer = self._recognizers[index]
            exact = self._single[index].match(text, start)
            found = recognizer.handle(text, exact) if exact is not None else []
            if not found:
                found, recognizer = self._fallback(text, start, index)
            if not found:
                pos = start + 1
            else:
                results.extend(found)
                pos = start + 1 if recognizer.rescan else max(start + 1, max(f.end for f in found))
        return results

    def _fallback(self, text: str, start: int, failed: int) -> tuple[list[Finding], Recognizer | None]:
        """Later alternatives at a position whose first match failed validation."""
        for index in range(failed + 1, len(self._recognizers)):
            m = self._single[index].match(text, start)
            if m is not None:
                found = self._recognizers[index].handle(text, m)
                if found:
                    return found, self._recognizers[index]
        return [], None
