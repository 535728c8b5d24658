"""One pass over a text that says which of many regexes can match it.

Hyperscan compiles every pattern into one database in prefilter mode
(`HS_FLAG_PREFILTER`): a scan reports a superset of the patterns that truly
match, so a pattern it does not report cannot match and its exact regex (RE2
or `re`) is never run. Without the hyperscan package (it needs x86-64), an
RE2 `Set` does the same pass, exactly; on gitleaks' rules it needs a large
DFA budget (with 32 MB it took seconds per MB of text), hence hyperscan.

Hyperscan scans a one-byte-per-character view of the text: ASCII as is,
every other character as byte 0x80 (which no ASCII class, `\\w` or literal
matches, and `.` and negated classes do). Counted repeats then count
characters, as RE2 does on UTF-8, and the view is a superset for the exact
RE2 match on the real UTF-8 bytes (the secrets layer sees NFKC-normalised
text, so Unicode case-folding variants of ASCII letters do not occur).
Hyperscan's UTF-8 mode would be exact too, but compiles gitleaks' rules in
25 s instead of 3 s. The RE2 `Set` scans the UTF-8 bytes.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence

import re2

log = logging.getLogger("vendorgate.detection")

try:
    import hyperscan
except ImportError:  # pragma: no cover - exercised only where hyperscan has no wheel
    hyperscan = None

_NAMED_GROUP = re.compile(r"\(\?P<\w+>")
# Dropping a leading part that may match empty, or a trailing one, keeps every
# match of the full pattern a match of the shorter one: still a prefilter, and
# gitleaks' `[\w.-]{0,50}?` name prefixes and delimiter suffixes triple the
# hyperscan compile time.
_LEADING_NAME = re.compile(r"^(\(\?i\))?\[\\w\.-\]\{0,50\}\?(?:(\(\?i:)\[\\w\.-\]\{0,50\}\?)?")
_TRAILING_DELIMITER = "(?:[\\x60'\"\\s;]|\\\\[nr]|$)"


def prefilter_pattern(pattern: str) -> str:
    """`pattern` for hyperscan: named groups made plain, optional name prefix and delimiter suffix cut."""
    pattern = _NAMED_GROUP.sub("(?:", pattern)
    lead = _LEADING_NAME.match(pattern)
    if lead:
        pattern = (lead.group(1) or "") + (lead.group(2) or "") + pattern[lead.end():]
    return pattern.removesuffix(_TRAILING_DELIMITER)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def char_view(text: str) -> bytes:
    """One byte per character: ASCII kept, anything else 0x80."""
    if text.isascii():
        return text.encode("ascii")
    return _NON_ASCII.sub("\x80", text).encode("latin-1")


class MultiPattern:
    """`candidates(data)` → indices of the patterns that may match `data`.

    `engine` says which implementation was built ("hyperscan" or "re2-set").
    Patterns use RE2 syntax (named groups are made plain for hyperscan).
    A pattern hyperscan cannot take even in prefilter mode is reported by
    every scan (its exact regex then always runs): `always` lists them.
    """

    def __init__(self, patterns: Sequence[str], engine: str = "auto") -> None:
        """`engine`: "auto" (hyperscan when installed), "hyperscan" or "re2-set".

        Compiled at the first scan, once per process (hyperscan takes 1.5–3 s
        for gitleaks' rules), so a worker that never scans for secrets never pays.
        """
        self.size = len(patterns)
        self.always: frozenset[int] = frozenset()
        self._patterns = tuple(patterns)
        self._use_hyperscan = engine == "hyperscan" or (engine == "auto" and hyperscan is not None)
        self._db = None
        self._set = None
        self._built = False

    @property
    def engine(self) -> str:
        return "hyperscan" if self._use_hyperscan else "re2-set"

    def compile(self) -> None:
        """Build now rather than at the first scan (a worker does it before it says ready)."""
        if not self._built:
            self._build()

    def _build(self) -> None:
        if self._use_hyperscan:
            self._build_hyperscan(self._patterns)
        else:
            self._build_set(self._patterns)
        self._built = True

    def _build_hyperscan(self, patterns: Sequence[str]) -> None:
        flags = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
        expressions = [prefilter_pattern(p).encode("utf-8") for p in patterns]
        usable = list(range(len(patterns)))
        try:
            self._compile(expressions, usable, flags)
            return
        except hyperscan.error:
            pass
        always = []
        for i in list(usable):
            try:
                hyperscan.Database().compile(expressions=[expressions[i]], ids=[i], flags=[flags])
            except hyperscan.error as exc:
                log.info("multi-pattern: pattern %d always runs (hyperscan: %s)", i, exc)
                always.append(i)
        self.always = frozenset(always)
        usable = [i for i in usable if i not in self.always]
        if usable:
            self._compile(expressions, usable, flags)

    def _compile(self, expressions: list[bytes], ids: list[int], flags: int) -> None:
        db = hyperscan.Database()
        db.compile(expressions=[expressions[i] for i in ids], ids=ids, flags=[flags] * len(ids))
        self._db = db

    def _build_set(self, patterns: Sequence[str]) -> None:
        options = re2.Options()
        options.max_mem = 256 << 20
        self._set = re2.Set.SearchSet(options)
        for pattern in patterns:
            self._set.Add(pattern.encode("utf-8"))
        self._set.Compile()

    def candidates(self, text: str, data: bytes | None = None) -> set[int]:
        """`data` is `text` in UTF-8 (needed by the RE2 `Set` only)."""
        if not self._built:
            self._build()
        found = set(self.always)
        if self._db is not None:
            def on_match(pattern_id, start, end, flags, context):
                found.add(pattern_id)

            self._db.scan(char_view(text), match_event_handler=on_match)
        elif self._set is not None:
            found.update(self._set.Match(text.encode("utf-8") if data is None else data) or ())
        return found


class LiteralPositions:
    """`starts(lowered)` → where each of `words` (lower-case literals) starts in `lowered`.

    Every occurrence, overlapping ones included, as an Aho-Corasick pass reports
    them; hyperscan finds them about three times faster (one scan, one callback
    per occurrence). Without hyperscan, or for a word that is not ASCII (the
    scan reads the one-byte-per-character view), pyahocorasick does the pass.
    """

    def __init__(self, words, engine: str = "auto") -> None:
        """`engine`: "auto" (hyperscan when installed and every word is ASCII) or "aho-corasick"."""
        self._words = sorted(set(words))
        self._engine = engine
        self._db = None
        self._automaton = None
        self._built = False

    def _build(self) -> None:
        self._built = True
        if not self._words:
            return
        if self._engine == "auto" and hyperscan is not None and all(w.isascii() for w in self._words):
            self._db = hyperscan.Database()
            self._db.compile(expressions=[re.escape(w).encode("ascii") for w in self._words],
                             ids=list(range(len(self._words))), flags=[0] * len(self._words))
            return
        import ahocorasick

        self._automaton = ahocorasick.Automaton()
        for word in self._words:
            self._automaton.add_word(word, word)
        self._automaton.make_automaton()

    def starts(self, lowered: str) -> dict[str, list[int]]:
        if not self._built:
            self._build()
        found: dict[str, list[int]] = defaultdict(list)
        if self._db is not None:
            words = self._words
            lengths = [len(w) for w in words]

            def on_match(word_id, start, end, flags, context):
                found[words[word_id]].append(end - lengths[word_id])

            self._db.scan(char_view(lowered), match_event_handler=on_match)
        elif self._automaton is not None:
            for end, word in self._automaton.iter(lowered):
                found[word].append(end - len(word) + 1)
        return found
