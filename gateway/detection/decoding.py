"""The decoding pre-pass: undo encodings and separators an insider uses to hide a value, before detection.

Each rule finds a stretch of the (NFKC-normalised) text and says what it reads as: an HTML entity
(`&#64;`, `&#x40;`, `&commat;`) as its character, a `%XX` escape (also `%25XX`, double-encoded) as its
printable ASCII character, an SSN written with dots or other separators as dashes, a long hex run as the
text it encodes (when that is printable), a PEM armour line with extra spaces as the canonical one, a PEM
body whose BEGIN line was left out with one put back, a line break next to an `@` as nothing, and a word
character glued before a distinctive token prefix (`xAKIA…`, `my_ghp_…`) as a space. `normalize`
applies the edits as pieces of its `NormalizedText`, so findings map back onto the original stretch (a
decoded piece maps to its whole encoded source). Each rule is a single regex scan; text without any of their markers is
returned unchanged after one search.
"""

from __future__ import annotations

import html.entities
import re
from collections.abc import Callable

Edit = tuple[int, int, str]  # replace text[start:end] with this

_ENTITY = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9A-Fa-f]{1,6})|([A-Za-z][A-Za-z0-9]{1,31}));")
_PERCENT = re.compile(r"%(?:25)*([0-9A-Fa-f]{2})")
_SSN_SEPARATED = re.compile(r"(?<![\d.\-/])(\d{3})([.\s_/\\])(\d{2})\2(\d{4})(?![\d.\-/])")
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])(?:[0-9a-fA-F]{2}){10,4096}(?![0-9A-Za-z])")
_PEM_ARMOUR = re.compile(r"-----(BEGIN|END)[ \t]{2,}((?:[A-Z0-9]+[ \t]+)*?[A-Z0-9]*KEY)[ \t]*-----|"
                         r"-----(BEGIN|END)[ \t]+((?:[A-Z0-9]+[ \t]{2,})+[A-Z0-9]*KEY)[ \t]*-----")
_PEM_END = re.compile(r"-----END ((?:[A-Z0-9]+ )*?[A-Z0-9]*(?:PRIVATE KEY|KEY))-----")
_PEM_BODY_LINE = re.compile(r"[A-Za-z0-9+/=]{16,}\r?\n")
_AT_BREAK = re.compile(r"(?<=[A-Za-z0-9._%+\-])@[ \t]*\r?\n[ \t]*(?=[A-Za-z0-9])|"
                       r"(?<=[A-Za-z0-9._%+\-])[ \t]*\r?\n[ \t]*@(?=[A-Za-z0-9])")
# Token prefixes distinctive enough that a word character before them is glue, not part of a word.
_GLUED_PREFIX = re.compile(r"(?<=[A-Za-z0-9_])(?=(?:gh[pousr]_|github_pat_|glpat-|xox[abposr]-|sk_live_|rk_live_|"
                           r"sk-proj-|sk-ant-|AKIA|ASIA)[A-Za-z0-9_\-]{16})")
_MARKERS = re.compile(r"[&%@\-]|\d{3}\D\d{2}\D\d{4}|[0-9a-fA-F]{20}|gh[pousr]_|github_pat_|glpat-|xox|_live_|sk-|AKIA|ASIA")


def _entities(text: str) -> list[Edit]:
    out = []
    for m in _ENTITY.finditer(text):
        dec, hexa, name = m.groups()
        if name is not None:
            char = html.entities.html5.get(name + ";")
        else:
            code = int(dec) if dec is not None else int(hexa, 16)
            char = chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else None
        if char and char.isprintable():
            out.append((m.start(), m.end(), char))
    return out


def _percent(text: str) -> list[Edit]:
    out = []
    for m in _PERCENT.finditer(text):
        char = chr(int(m.group(1), 16))
        if " " <= char <= "~":
            out.append((m.start(), m.end(), char))
    return out


def _ssn_separators(text: str) -> list[Edit]:
    out = []
    for m in _SSN_SEPARATED.finditer(text):
        for sep in (m.start(2), m.start(3) + 2):
            out.append((sep, sep + 1, "-"))
    return out


def _hex(text: str) -> list[Edit]:
    out = []
    for m in _HEX_RUN.finditer(text):
        raw = bytes.fromhex(m.group())
        if all(32 <= b < 127 or b in (9, 10, 13) for b in raw) and any(chr(b).isalpha() for b in raw):
            out.append((m.start(), m.end(), " " + raw.decode("ascii") + " "))
    return out


def _pem(text: str) -> list[Edit]:
    out = []
    for m in _PEM_ARMOUR.finditer(text):
        kind = m.group(1) or m.group(3)
        label = " ".join((m.group(2) or m.group(4)).split())
        out.append((m.start(), m.end(), f"-----{kind} {label}-----"))
    for m in _PEM_END.finditer(text):
        label = m.group(1)
        if f"-----BEGIN {label}-----" in text[:m.start()]:
            continue
        start = m.start()
        while True:  # walk back over the base64 body lines
            line_start = text.rfind("\n", 0, max(0, start - 1)) + 1
            if line_start >= start or not _PEM_BODY_LINE.fullmatch(text, line_start, start):
                break
            start = line_start
        if start < m.start():
            out.append((start, start, f"-----BEGIN {label}-----\n"))
    return out


def _at_breaks(text: str) -> list[Edit]:
    return [(m.start(), m.end(), "@") for m in _AT_BREAK.finditer(text)]


def _glued(text: str) -> list[Edit]:
    return [(m.start(), m.start(), " ") for m in _GLUED_PREFIX.finditer(text)]


RULES: tuple[Callable[[str], list[Edit]], ...] = (_entities, _percent, _ssn_separators, _hex, _pem, _at_breaks,
                                                  _glued)


def edits(text: str) -> list[Edit]:
    """Every rule's edits, in order, without overlaps (the first wins)."""
    if not _MARKERS.search(text):
        return []
    out: list[Edit] = []
    pos = 0
    for start, end, replacement in sorted((e for rule in RULES for e in rule(text)), key=lambda e: (e[0], e[1])):
        if start >= pos:
            out.append((start, end, replacement))
            pos = end
    return out
