"""Undo cheap evasions before detection, keeping a map back to the original text.

NFKC folds full-width digits and letters, ligatures and circled numbers;
zero-width characters and soft hyphens are dropped so `4111\\u200b1111...` or
`jo\\u00adhn@example.com` are seen whole. Offsets found in the normalised text
map back exactly to the original through `to_original`.

`with_line_breaks` reads escaped line breaks (`\\n`, `\\r`, `\\t` as two
characters, common in logs and JSON-in-JSON) as blanks for the pattern and NER
layers, so "Name\\nJohn Smith\\n12 Main St" is seen as three lines. It keeps
the length, so offsets need no mapping.

After NFKC, `decoding.edits` undoes encodings and separators used to hide a
value (HTML entities, percent escapes, hex, SSN separators, PEM armour, an `@`
split over lines, glued token prefixes); those edits are a second map, chained
to the first. Bidi marks (LRM, RLM, embeddings, isolates) are invisible too.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.detection.decoding import Edit, edits
from gateway.detection.finding import Finding

INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE = re.compile(f"[{INVISIBLE}]")
# A run of non-ASCII characters; the ASCII character before it joins it (a
# combining mark composes with it). The pattern starts with its character set,
# so `re` skips ASCII stretches in C instead of trying a match at every position.
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


@dataclass(frozen=True)
class NormalizedText:
    """`text` plus a map back to the original string, kept per piece, not per character.

    `text` is the concatenation of pieces; piece k starts at `piece_starts[k]`
    in `text` and came from `piece_spans[k]` = (start, end, kept) of the
    original. A kept piece (an unchanged run) maps character by character; a
    folded piece (one NFKC-folded character cluster) maps every character to
    the whole cluster. Both are None when the text was left unchanged.
    """

    text: str
    original: str
    piece_starts: list[int] | None = None
    piece_spans: list[tuple[int, int, bool]] | None = None
    inner: NormalizedText | None = None  # the pieces map into inner.text, and inner maps on to `original`

    @property
    def changed(self) -> bool:
        return self.piece_starts is not None

    def _origin(self, at: int) -> tuple[int, int]:
        """The original span that produced text[at]."""
        k = bisect.bisect_right(self.piece_starts, at) - 1
        start, end, kept = self.piece_spans[k]
        if kept:
            start += at - self.piece_starts[k]
            return start, start + 1
        return start, end

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original string that produced text[start:end]."""
        if self.piece_starts is None:
            return start, end
        if end <= start:
            point = self._origin(start)[0] if start < len(self.text) else len(self.inner.text if self.inner
                                                                                else self.original)
            span = point, point
        else:
            span = self._origin(start)[0], self._origin(end - 1)[1]
        return self.inner.to_original(*span) if self.inner is not None else span


# A run of backslashes then n/r/t. The pattern starts with a literal, so `re`
# jumps between backslashes; a match always starts a run (a run not followed
# by n/r/t fails at every position inside it too).
_ESCAPED_BREAK = re.compile(r"\\+[nrt]")
_BLANKS = {"n": " \n", "r": "  ", "t": "  "}


def _blank(m: re.Match[str]) -> str:
    run = m.group()
    if len(run) % 2:
        return run
    return run[:-2] + _BLANKS[run[-1]]


def with_line_breaks(text: str) -> str:
    """`text` with escaped `\\n`/`\\r`/`\\t` (an odd number of backslashes) read as blanks, same length."""
    if "\\" not in text:
        return text
    return _ESCAPED_BREAK.sub(_blank, text)


def _cluster_end(text: str, i: int) -> int:
    """End of the character at i plus the combining marks that follow it."""
    j = i + 1
    while j < len(text) and unicodedata.combining(text[j]):
        j += 1
    return j


def normalize(text: str) -> NormalizedText:
    """NFKC and invisible characters, then the decoding pre-pass on the result."""
    folded = _fold(text)
    found = edits(folded.text)
    if not found:
        return folded
    decoded = _apply(folded.text, found)
    return NormalizedText(decoded.text, text, decoded.piece_starts, decoded.piece_spans,
                          folded if folded.changed else None)


def _apply(text: str, found: list[Edit]) -> NormalizedText:
    pieces: list[str] = []
    starts: list[int] = []
    spans: list[tuple[int, int, bool]] = []
    size = pos = 0
    for start, end, replacement in found + [(len(text), len(text), "")]:
        for piece, span in ((text[pos:start], (pos, start, True)), (replacement, (start, end, False))):
            if piece:
                pieces.append(piece)
                starts.append(size)
                spans.append(span)
                size += len(piece)
        pos = end
    return NormalizedText("".join(pieces), text, starts, spans)


def _fold(text: str) -> NormalizedText:
    if text.isascii():
        return NormalizedText(text, text)
    if unicodedata.is_normalized("NFKC", text) and not _INVISIBLE.search(text):
        return NormalizedText(text, text)
    pieces: list[str] = []
    starts: list[int] = []
    spans: list[tuple[int, int, bool]] = []
    size = 0

    def add(piece: str, start: int, end: int, kept: bool) -> None:
        nonlocal size
        if piece:
            pieces.append(piece)
            starts.append(size)
            spans.append((start, end, kept))
            size += len(piece)

    pos = 0
    for run in _NON_ASCII_RUN.finditer(text):
        i = max(pos, run.start() - 1)
        if i > pos:
            add(text[pos:i], pos, i, True)
        while i < run.end():
            j = _cluster_end(text, i)
            chunk = text[i:j]
            if chunk in INVISIBLE:
                i = j
                continue
            folded = unicodedata.normalize("NFKC", chunk)
            if _INVISIBLE.search(folded):
                folded = _INVISIBLE.sub("", folded)
            add(folded, i, j, folded == chunk and j == i + 1)
            i = j
        pos = max(pos, i)
    if pos < len(text):
        add(text[pos:], pos, len(text), True)
    return NormalizedText("".join(pieces), text, starts, spans)


def map_findings(findings: Iterable[Finding], normalized: NormalizedText) -> list[Finding]:
    """Findings on `normalized.text` moved onto the original string."""
    if not normalized.changed:
        return list(findings)
    mapped = []
    for f in findings:
        start, end = normalized.to_original(f.start, f.end)
        if (start, end) != (f.start, f.end):
            f = Finding(f.entity_type, start, end, f.score, f.recognizer, f.rule, f.explanation)
        mapped.append(f)
    return mapped
