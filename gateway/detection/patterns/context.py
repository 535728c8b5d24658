"""Context words near a match raise or lower its score, and say so.

A window of characters on each side of the match is lower-cased and searched
for whole words; the word that changed the score goes into the explanation
(context words are vocabulary, never the matched value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.detection.finding import Finding

WINDOW = 40
BOOST = 0.3
DAMP = 0.4


def words(items: Iterable[str]) -> re.Pattern[str]:
    """One regex finding any of `items` as whole words in lower-cased text."""
    alternatives = sorted({re.escape(w.lower()) for w in items}, key=len, reverse=True)
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")(?![a-z0-9])")


def nearby(text: str, start: int, end: int, pattern: re.Pattern[str] | None, window: int = WINDOW,
           after_window: int | None = None) -> str | None:
    """The context word within `window` chars before or `after_window` (default `window`) after text[start:end]."""
    if pattern is None:
        return None
    before = text[max(0, start - window):start].lower()
    found = None
    for found in pattern.finditer(before):  # noqa: B007 (the last match is wanted)
        pass
    if found is not None:
        return found.group()
    after_window = window if after_window is None else after_window
    if after_window <= 0:
        return None
    after = pattern.search(text[end:end + after_window].lower())
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
    damp_after: bool = True,
) -> Finding:
    """A finding whose score is `base` moved by context words near it; `damp_after=False` looks for
    damping words only in front of the match (a label: "order 1009-22-1187", not "...; my order")."""
    score = base
    parts = [f"{recognizer}: base {base:.2f}"]
    if note:
        parts.append(note)
    up = nearby(text, start, end, boost)
    if up:
        score += BOOST
        parts.append(f"context '{up}' +{BOOST:.2f}")
    down = nearby(text, start, end, damp, after_window=None if damp_after else 0)
    if down:
        score -= DAMP
        parts.append(f"context '{down}' -{DAMP:.2f}")
    score = round(min(1.0, max(0.01, score)), 2)
    if up or down:
        parts.append(f"-> {score:.2f}")
    return Finding(entity_type, start, end, score, recognizer, explanation="; ".join(parts))
