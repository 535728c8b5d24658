"""Context words near a match raise or lower its score, and say so.

A window of characters on each side of the match is lower-cased and searched
for whole words; the word that changed the score goes into the explanation
(context words are vocabulary, never the matched value).
"""

from __future__ import annotations

import re
from typing import Iterable

from gateway.detection.finding import Finding

WINDOW = 40
BOOST = 0.3
DAMP = 0.4


def words(items: Iterable[str]) -> re.Pattern[str]:
    """One regex finding any of `items` as whole words in lower-cased text."""
    alternatives = sorted({re.escape(w.lower()) for w in items}, key=len, reverse=True)
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")(?![a-z0-9])")


def nearby(text: str, start: int, end: int, pattern: re.Pattern[str] | None, window: int = WINDOW) -> str | None:
    """The context word within `window` chars of text[start:end], if any."""
    if pattern is None:
        return None
    before = text[max(0, start - window):start].lower()
    found = None
    for found in pattern.finditer(before):
        pass
    if found is not None:
        return found.group()
    after = pattern.search(text[end:end + window].lower())
    return after.group() if after else None


def scored(
    text: str,
    entity_type: str,
    start: int,
    end: int,
    base: float,
    recognizer: str,
    boost: re.Pattern[str] | None = None,
    damp: re.Pattern[str] | None = None,
    note: str = "",
) -> Finding:
    """A finding whose score is `base` moved by context words near it."""
    score = base
    parts = [f"{recognizer}: base {base:.2f}"]
    if note:
        parts.append(note)
    up = nearby(text, start, end, boost)
    if up:
        score += BOOST
        parts.append(f"context '{up}' +{BOOST:.2f}")
    down = nearby(text, start, end, damp)
    if down:
        score -= DAMP
        parts.append(f"context '{down}' -{DAMP:.2f}")
    score = round(min(1.0, max(0.01, score)), 2)
    if up or down:
        parts.append(f"-> {score:.2f}")
    return Finding(entity_type, start, end, score, recognizer, explanation="; ".join(parts))
