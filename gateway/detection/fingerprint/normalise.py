"""Text normalisation for fingerprinting, with a map back to the original text.

Two texts that differ only in what normalisation throws away (case, whitespace,
punctuation for prose; whitespace and comments for code) normalise to the same
string, so winnowing sees them as equal. Every normalised character remembers
the original range it came from, so a match maps back to the outbound text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

PROSE = "prose"
CODE = "code"
MODES = (PROSE, CODE)

IDENTIFIER_PLACEHOLDER = "v"

# Line comments start with `#` (at line start or after whitespace, so `a#b`
# and `this.#x` stay), `//` (not after `:`, so URLs stay) or `-- ` (SQL, Lua;
# not `i--`). Block comments are `/* ... */`. The stripper is not string-aware:
# both sides are stripped the same way, which is all the guarantee needs.
# The leading character class lets the regex engine skip ahead fast.
_COMMENT = re.compile(
    r"[/#-](?:(?<=/)\*.*?\*/|(?<=/)(?<!:/)/[^\n]*|(?<=#)(?<![^\s]#)[^\n]*|(?<=-)-(?=\s|$)[^\n]*)",
    re.DOTALL | re.MULTILINE,
)
_IDENTIFIER = re.compile(r"[^\W\d]\w*")

# Keywords survive identifier normalisation so the program's shape is kept.
CODE_KEYWORDS = frozenset(
    """
    abstract and as assert async await auto begin boolean break byte case catch char class const constexpr
    continue def default defer del delete do double elif else elsif end enum except explicit export extends
    extern false final finally float fn for foreach from func function global go goto if impl implements import
    in include instanceof int interface is lambda let long loop match mod module mut namespace new nil none
    nonlocal not null object of or override package pass private protected pub public raise return select
    self short signed sizeof static struct super switch synchronized template then this throw throws trait
    true try type typedef typeof union unless unsigned until use using val var virtual void volatile when
    where while with yield
    insert into values update set delete from where join inner outer left right on group by order having
    limit create table drop alter primary key foreign references index view distinct count sum avg min max
    echo fi done esac local export
    """.split()
)

_WHITESPACE_ASCII = np.zeros(128, dtype=bool)
_WHITESPACE_ASCII[[ord(c) for c in " \t\n\r\x0b\x0c"]] = True
_ALNUM_ASCII = np.array([chr(i).isalnum() for i in range(128)], dtype=bool)


@dataclass(frozen=True)
class Normalised:
    """A normalised string; char i came from `original[starts[i]:ends[i]]`."""

    text: str
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.text)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original range covering normalised chars [start, end)."""
        return int(self.starts[start]), int(self.ends[end - 1])


def normalise(text: str, mode: str, identifiers: bool = False) -> Normalised:
    """Normalise `text` for `mode` ("prose" or "code")."""
    if mode == PROSE:
        return _prose(text)
    if mode == CODE:
        return _code(text, identifiers)
    raise ValueError(f"unknown fingerprint mode {mode!r}")


def _prose(text: str) -> Normalised:
    """Casefold; keep letters and digits only."""
    folded, starts, ends = _casefold(text)
    keep = _classify(folded, _ALNUM_ASCII, str.isalnum)
    return _select(folded, starts, ends, keep)


def _code(text: str, identifiers: bool) -> Normalised:
    """Casefold; drop comments and whitespace; optionally collapse identifiers."""
    folded, starts, ends = _casefold(text)
    keep = ~_classify(folded, _WHITESPACE_ASCII, str.isspace)
    for m in _COMMENT.finditer(folded):
        keep[m.start() : m.end()] = False
    chars = None
    if identifiers:
        chars = np.frombuffer(folded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).copy()
        ends = ends.copy()
        v = ord(IDENTIFIER_PLACEHOLDER)
        for m in _IDENTIFIER.finditer(folded):
            s, e = m.span()
            if not keep[s] or m.group() in CODE_KEYWORDS:
                continue
            chars[s] = v
            keep[s + 1 : e] = False
            ends[s] = ends[e - 1]
        folded = chars.tobytes().decode("utf-32-le", "surrogatepass")
    return _select(folded, starts, ends, keep)


def _casefold(text: str) -> tuple[str, np.ndarray, np.ndarray]:
    """Casefold, keeping per-char origins (casefold may expand, e.g. ß -> ss)."""
    folded = text.casefold()
    if len(folded) == len(text):
        starts = np.arange(len(text), dtype=np.int64)
        return folded, starts, starts + 1
    parts: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        f = ch.casefold()
        parts.append(f)
        origin.extend([i] * len(f))
    starts = np.array(origin, dtype=np.int64)
    return "".join(parts), starts, starts + 1


def _classify(text: str, ascii_table: np.ndarray, predicate) -> np.ndarray:
    """Vectorised `predicate(ch)` per char: a table for ASCII, a few calls for the rest."""
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    out = np.zeros(len(cps), dtype=bool)
    ascii_mask = cps < 128
    out[ascii_mask] = ascii_table[cps[ascii_mask]]
    if not ascii_mask.all():
        others = np.unique(cps[~ascii_mask])
        hits = others[[predicate(chr(c)) for c in others]]
        out[~ascii_mask] = np.isin(cps[~ascii_mask], hits)
    return out


def _select(text: str, starts: np.ndarray, ends: np.ndarray, keep: np.ndarray) -> Normalised:
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    kept = cps[keep].tobytes().decode("utf-32-le", "surrogatepass")
    return Normalised(kept, starts[keep], ends[keep])
