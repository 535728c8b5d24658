"""Combining the layers: NER spans yield to confident pattern findings; allow-lists drop findings.

spaCy's small model tags "Email john@x.com" as one PERSON. The email finding
is exact and validated, so a name span that overlaps a confident structured
finding keeps only its part outside it, and is dropped when that part is less
than half of the span or has no real word left.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from gateway.detection.finding import Finding
from gateway.reversible.tokens import TOKEN_PATTERN

ANCHOR_SCORE = 0.5
# Field labels that the small NER model reads as organisations or names ("SSN 524-..." -> ORG).
LABEL_WORDS = frozenset({
    "ssn", "dob", "ein", "itin", "iban", "pin", "zip", "id", "email", "e-mail", "phone", "tel", "fax",
    "cvv", "mrn", "npi", "dl", "vin", "swift", "bic", "aba", "api", "url", "ip", "ssn#", "acct",
})
_EDGE = " \t\r\n,;:.()[]{}<>\"'|/-"
_WORD = re.compile(r"[^\W\d_]{2,}")


def _trim(text: str, f: Finding, anchors: list[Finding]) -> Finding | None:
    keep = [(f.start, f.end)]
    for a in anchors:
        if a.end <= f.start or a.start >= f.end:
            continue
        next_keep = []
        for s, e in keep:
            if a.start > s:
                next_keep.append((s, min(e, a.start)))
            if a.end < e:
                next_keep.append((max(s, a.end), e))
        keep = [(s, e) for s, e in next_keep if e > s]
    if keep == [(f.start, f.end)]:
        return f
    if not keep:
        return None
    s, e = max(keep, key=lambda span: span[1] - span[0])
    while s < e and text[s] in _EDGE:
        s += 1
    while e > s and text[e - 1] in _EDGE:
        e -= 1
    if (e - s) * 2 < f.end - f.start or not _WORD.search(text, s, e):
        return None
    return replace(f, start=s, end=e, explanation=f"{f.explanation}; trimmed around a structured finding")


def _label_or_token(span: str) -> bool:
    """A field label ("SSN") or one of our own surrogates (`PERSON_7QX2K4M9TB`,
    which a caller may quote back): neither is a name, and re-tokenizing a
    token would break the caller's reference to it."""
    return span.lower() in LABEL_WORDS or (TOKEN_PATTERN.fullmatch(span) is not None and span.split("_", 1)[0].isupper())


def yield_to_patterns(text: str, ner: Iterable[Finding], others: list[Finding]) -> list[Finding]:
    """NER findings trimmed (or dropped) where they overlap confident non-NER findings;
    bare field labels ("SSN", "DOB") and vendorgate surrogates dropped."""
    ner = [f for f in ner if not _label_or_token(text[f.start:f.end].strip(_EDGE))]
    anchors = [f for f in others if f.score >= ANCHOR_SCORE]
    if not anchors:
        return ner
    kept = []
    for f in ner:
        trimmed = _trim(text, f, anchors)
        if trimmed is not None:
            kept.append(trimmed)
    return kept


class AllowList:
    """Values never reported: exact (case-insensitive, surrounding blanks ignored) or a full regex match."""

    def __init__(self, exact: Iterable[str] = (), regexes: Iterable[str] = ()) -> None:
        self.exact = {v.strip().lower() for v in exact if v.strip()}
        self.regexes = [re.compile(r, re.IGNORECASE) for r in regexes]

    def __bool__(self) -> bool:
        return bool(self.exact or self.regexes)

    def allows(self, value: str) -> bool:
        value = value.strip()
        return value.lower() in self.exact or any(r.fullmatch(value) for r in self.regexes)

    def apply(self, text: str, findings: list[Finding]) -> list[Finding]:
        if not self:
            return findings
        return [f for f in findings if not self.allows(text[f.start:f.end])]
