"""What a built-in recognizer is: a regex fragment plus a handler that validates it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gateway.detection.finding import Finding

Handler = Callable[[str, "re.Match[str]"], list[Finding]]


@dataclass(frozen=True)
class Recognizer:
    """One alternative of the combined scan.

    `regex` may use named groups (prefixed with the recognizer's name) but no
    numbered ones, so it can be joined with the others into one alternation.
    `handle` returns no findings when the candidate fails validation; the
    scanner then tries the other recognizers at the same position.
    `first` is a character class holding every character a match can start
    with; the combined scan uses it to skip the alternative cheaply.
    `rescan` resumes scanning inside the match (a URL can hold an email).
    `prefilter`, when set, is a looser regex (every match of `regex` matches
    it) for the multi-pattern pass, for a regex too long for hyperscan.
    """

    name: str
    entities: frozenset[str]
    regex: str
    handle: Handler
    first: str
    rescan: bool = False
    prefilter: str | None = None


def word_alternation(words: list[str], ignore_case: bool = True) -> str:
    """A regex matching any of `words`, factored as a trie.

    `re` tries alternatives one by one but skips in a few instructions those
    whose first item is a literal or a character class that does not match,
    so a trie of 100 keywords costs about what one keyword does. Spaces in a
    word match any run of blanks.
    """
    trie: dict = {}
    for word in words:
        node = trie
        for ch in (word.lower() if ignore_case else word):
            node = node.setdefault(ch, {})
        node[""] = {}

    def atom(ch: str) -> str:
        if ch == " ":
            return r"[ \t]+"
        if ignore_case and ch.lower() != ch.upper():
            return f"[{ch.lower()}{ch.upper()}]"
        return re.escape(ch)

    def emit(node: dict) -> str:
        branches = [atom(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        ending = "" in node
        if len(branches) == 1 and not ending:
            return branches[0]
        body = "(?:" + "|".join(branches) + ")"
        return body + "?" if ending else body

    return emit(trie)


_SIMPLE_GROUP = re.compile(r"\(\?P<(\w+)>(\[[^\]]+\])\)")
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


def without_groups(regex: str) -> str:
    """`regex` with named groups made non-capturing, for use inside a lookbehind.

    A backreference becomes the character class its group matched, which is
    looser; the scanner re-matches the exact regex before using a candidate.
    """
    classes = dict(_SIMPLE_GROUP.findall(regex))
    for name, cls in classes.items():
        regex = regex.replace(f"(?P={name})", cls)
    if "(?P=" in regex:
        raise ValueError("backreferences must refer to a single character class group")
    return _NAMED_GROUP.sub("(?:", regex)


_POSSESSIVE = re.compile(r"(?<!\\)(\{\d+(?:,\d*)?\})\+")  # a possessive counted repeat, `{1,64}+`


def prefilter_regex(recognizer: Recognizer) -> str:
    """The recognizer's regex for hyperscan's prefilter mode: no groups, no backreferences, no
    possessive quantifiers (each change only loosens it; lookarounds hyperscan drops itself)."""
    return _POSSESSIVE.sub(r"\1", without_groups(recognizer.prefilter or recognizer.regex))


def scan_alternative(recognizer: Recognizer, tag: str) -> str:
    """One branch of the combined scan: cheap first-character test, then a lookahead.

    The branch starts with the character class, which `re` rejects in a few
    instructions; only then does it look ahead (from inside a one-character
    lookbehind, i.e. from the candidate's start) for the full regex. The empty
    `tag` group, closed last, names the recognizer in `match.lastgroup`.
    """
    return f"{recognizer.first}(?<=(?={without_groups(recognizer.regex)}).)(?P<{tag}>)"
