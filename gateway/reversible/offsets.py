"""Offset maps: where a replaced value sits in the text the vendor saw, and what stood there.

A labeling vendor's annotations point into the text it was sent (`start`, `end`
character offsets). An `OffsetMap` lists the segments one text had replaced,
each with its start in the sent text, the text sent there and the original, so
offsets move between the two texts: pre-annotations forward (original -> sent),
annotations back (sent -> original), and the sent text can be restored.

Inside a segment, a position maps exactly where both sides agree: a common
suffix ("Maria Gonzalez's" / "Aiko Tanaka's": the `'s`), a common prefix, or a
word boundary when both sides have the same number of words (the end of
"Maria" is the end of "Aiko"). Anywhere else a span is widened to the whole
segment (a start moves to the segment's start, an end to its end), so a span
never covers part of a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Segment:
    start: int       # in the sent text
    sent: str
    original: str
    entity_type: str = ""

    @property
    def end(self) -> int:
        return self.start + len(self.sent)


def _boundaries(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _WORD.finditer(text)]


def _common(a: str, b: str, reverse: bool = False) -> int:
    n = 0
    for x, y in zip(reversed(a) if reverse else a, reversed(b) if reverse else b):
        if x != y:
            break
        n += 1
    return n


def within(d: int, source: str, target: str, side: str) -> int:
    """Offset `d` inside `source` as an offset inside `target` (see the module docstring)."""
    if d <= 0:
        return 0
    if d >= len(source):
        return len(target)
    suffix = min(_common(source, target, reverse=True), len(source) - 1, len(target) - 1)
    if d >= len(source) - suffix:
        return len(target) - (len(source) - d)
    ours, theirs = _boundaries(source), _boundaries(target)
    if len(ours) == len(theirs):
        for (s0, e0), (s1, e1) in zip(ours, theirs):
            if d == s0:
                return s1
            if d == e0:
                return e1
    prefix = min(_common(source, target), len(source) - 1, len(target) - 1)
    if d <= prefix:
        return d
    return 0 if side == "start" else len(target)


@dataclass(frozen=True)
class OffsetMap:
    """Segments of one text, sorted by their start in the sent text, not overlapping."""

    segments: tuple[Segment, ...] = ()

    @classmethod
    def from_replacements(cls, replaced: Iterable[tuple[int, str, str, str]]) -> OffsetMap:
        """From (start in the original, original, sent, entity type), as the transform made them."""
        segments, shift = [], 0
        for start, original, sent, entity_type in sorted(replaced):
            segments.append(Segment(start + shift, sent, original, entity_type))
            shift += len(sent) - len(original)
        return cls(tuple(segments))

    def to_sent(self, pos: int, side: str) -> int:
        """An offset in the original text as an offset in the sent text."""
        shift = 0
        for s in self.segments:
            o_start = s.start - shift
            if pos < o_start or (pos == o_start and side == "end"):
                break
            if pos < o_start + len(s.original) or (pos == o_start + len(s.original) and side == "end"):
                return s.start + within(pos - o_start, s.original, s.sent, side)
            shift += len(s.sent) - len(s.original)
        return pos + shift

    def to_original(self, pos: int, side: str) -> int:
        """An offset in the sent text as an offset in the restored (original) text."""
        shift = 0
        for s in self.segments:
            if pos < s.start or (pos == s.start and side == "end"):
                break
            if pos < s.end or (pos == s.end and side == "end"):
                return s.start + shift + within(pos - s.start, s.sent, s.original, side)
            shift += len(s.original) - len(s.sent)
        return pos + shift

    def restore(self, sent: str) -> str | None:
        """The original text; None if `sent` is not the text this map was made for."""
        out, pos = [], 0
        for s in self.segments:
            if sent[s.start:s.end] != s.sent or s.start < pos:
                return None
            out += [sent[pos:s.start], s.original]
            pos = s.end
        out.append(sent[pos:])
        return "".join(out)

    def to_json(self) -> list:
        return [[s.start, s.sent, s.original, s.entity_type] for s in self.segments]

    @classmethod
    def from_json(cls, rows: list) -> OffsetMap:
        return cls(tuple(Segment(int(a), str(b), str(c), str(d)) for a, b, c, d in rows))


def in_order(pairs: Iterable[tuple[str, str]], replaced: Iterable[tuple[int, str, str]]) -> list[list[int] | None]:
    """Which replacements made each (original, sent) text, when the replacements name only a path shared
    by many texts (one per JSON Lines line) but come in the texts' order, each text's by start.

    `replaced` is (start in its original text, original, sent). For each pair, the indices of the
    replacements that turn its original into its sent text (none when the two are equal); None from
    the first pair they cannot explain on (then for every later pair: the order is lost). Replacements
    that changed nothing (`allow`) are never counted."""
    queue = [(i, r) for i, r in enumerate(replaced) if r[1] != r[2]]
    out: list[list[int] | None] = []
    pos = 0
    for original, sent in pairs:
        if pos is None:
            out.append(None)
            continue
        if original == sent:
            out.append([])
            continue
        taken, parts, cursor, found = [], [], 0, False
        for i, (start, was, now) in queue[pos:]:
            if start < cursor or original[start:start + len(was)] != was:
                break
            parts += [original[cursor:start], now]
            cursor = start + len(was)
            taken.append(i)
            if "".join(parts) + original[cursor:] == sent:
                found = True
                break
        if found:
            out.append(taken)
            pos += len(taken)
        else:
            out.append(None)
            pos = None
    return out
