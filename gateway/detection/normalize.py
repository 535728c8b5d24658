"""Undo cheap evasions before detection, keeping a map back to the original text.

NFKC folds full-width digits and letters, ligatures and circled numbers;
zero-width characters and soft hyphens are dropped so `4111\\u200b1111...` or
`jo\\u00adhn@example.com` are seen whole. Offsets found in the normalised text
map back exactly to the original through `to_original`.

`with_line_breaks` reads escaped line breaks (`\\n`, `\\r`, `\\t` as two
characters, common in logs and JSON-in-JSON) as blanks for the pattern and NER
layers, so "Name\\nJohn Smith\\n12 Main St" is seen as three lines. It keeps
the length, so offsets need no mapping.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Iterable

from gateway.detection.finding import Finding

INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_INVISIBLE = re.compile(f"[{INVISIBLE}]")
# The ASCII character before a run joins it: a combining mark composes with it.
_NON_ASCII_RUN = re.compile(r"[\x00-\x7f]?[^\x00-\x7f]+")


@dataclass(frozen=True)
class NormalizedText:
    """`text` plus, per character of it, the original span it came from.

    `starts`/`ends` are None when the text was left unchanged (identity map).
    """

    text: str
    original: str
    starts: list[int] | None = None
    ends: list[int] | None = None

    @property
    def changed(self) -> bool:
        return self.starts is not None

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original string that produced text[start:end]."""
        if self.starts is None:
            return start, end
        if end <= start:
            point = self.starts[start] if start < len(self.starts) else len(self.original)
            return point, point
        return self.starts[start], self.ends[end - 1]


_ESCAPED_BREAK = re.compile(r"(?<!\\)((?:\\\\)*)\\([nrt])")
_BLANKS = {"n": " \n", "r": "  ", "t": "  "}


def with_line_breaks(text: str) -> str:
    """`text` with escaped `\\n`/`\\r`/`\\t` (an odd number of backslashes) read as blanks, same length."""
    if "\\" not in text:
        return text
    return _ESCAPED_BREAK.sub(lambda m: m.group(1) + _BLANKS[m.group(2)], text)


def _cluster_end(text: str, i: int) -> int:
    """End of the character at i plus the combining marks that follow it."""
    j = i + 1
    while j < len(text) and unicodedata.combining(text[j]):
        j += 1
    return j


def normalize(text: str) -> NormalizedText:
    if text.isascii():
        return NormalizedText(text, text)
    if unicodedata.is_normalized("NFKC", text) and not _INVISIBLE.search(text):
        return NormalizedText(text, text)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for run in _NON_ASCII_RUN.finditer(text):
        if run.start() > pos:
            _keep(text, pos, run.start(), pieces, starts, ends)
        i = run.start()
        while i < run.end():
            j = _cluster_end(text, i)
            chunk = text[i:j]
            if chunk in INVISIBLE:
                i = j
                continue
            folded = unicodedata.normalize("NFKC", chunk)
            if _INVISIBLE.search(folded):
                folded = _INVISIBLE.sub("", folded)
            pieces.append(folded)
            starts.extend([i] * len(folded))
            ends.extend([j] * len(folded))
            i = j
        pos = max(pos, i)
    if pos < len(text):
        _keep(text, pos, len(text), pieces, starts, ends)
    return NormalizedText("".join(pieces), text, starts, ends)


def _keep(text: str, start: int, end: int, pieces: list[str], starts: list[int], ends: list[int]) -> None:
    """An ASCII run maps to itself character by character."""
    pieces.append(text[start:end])
    starts.extend(range(start, end))
    ends.extend(range(start + 1, end + 1))


def map_findings(findings: Iterable[Finding], normalized: NormalizedText) -> list[Finding]:
    """Findings on `normalized.text` moved onto the original string."""
    if not normalized.changed:
        return list(findings)
    mapped = []
    for f in findings:
        start, end = normalized.to_original(f.start, f.end)
        mapped.append(replace(f, start=start, end=end))
    return mapped
