"""The decoding pre-pass: undo encodings and separators an insider uses to hide a value, before detection.

Each rule finds a stretch of the (NFKC-normalised) text and says what it reads as: an HTML entity
(`&#64;`, `&#x40;`, `&commat;`) as its character, a `%XX` escape (also `%25XX`, double-encoded) as its
printable ASCII character, an SSN written with dots or other separators as dashes, a long hex run as the
text it encodes (when that is printable), a PEM armour line with extra spaces as the canonical one, a PEM
body whose BEGIN line was left out with one put back, a line break next to an `@`, inside a token after
its prefix or between digit groups as nothing (or a blank), a word character glued before a distinctive
token prefix (`xAKIA…`, `my_ghp_…`) as a space, and Cyrillic or Greek lookalike letters inside a word that
also has Latin letters as those Latin letters. `normalize`
applies the edits as pieces of its `NormalizedText`, so findings map back onto the original stretch (a
decoded piece maps to its whole encoded source). Each rule is one pass of `find` or of a regex that
starts on a literal or a rare character (digit and hex runs are found in a one-byte-per-character "shape"
of the text), and is skipped when its marker is absent: about 40-90 µs per 1 KB request body and 50-80 ms
per MiB on the (shared, loaded) test machine, against ~800 ms per MiB for the pattern and secret
detectors; a MiB of real Cyrillic ~100 ms, a MiB made of disguised mixed-script words ~0.9 s.
"""

from __future__ import annotations

import html.entities
import re
from collections.abc import Callable

import numpy as np

Edit = tuple[int, int, str]  # replace text[start:end] with this

_ENTITY = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9A-Fa-f]{1,6})|([A-Za-z][A-Za-z0-9]{1,31}));")
_PERCENT = re.compile(r"%(?:25)*([0-9A-Fa-f]{2})")
# Digit and hex runs are found in a "shape" of the text (one byte per character: d digit, h other hex
# letter, a other letter, the separators . _ / \ - as themselves, anything else a blank), with
# bytes.find, which is far cheaper than a regex that would be tried at every digit or letter.
_SHAPE = bytes((ord("d") if "0" <= chr(i) <= "9" else ord("h") if chr(i) in "abcdefABCDEF" else
                ord("a") if chr(i).isalpha() else i if chr(i) in "._/\\-" else ord(" ")) for i in range(256))
_DIGITS_AS_HEX = bytes.maketrans(b"d", b"h")
_HEX_SEED = b"h" * 20
_PEM_ARMOUR = re.compile(r"-----(BEGIN|END)[ \t]{2,}((?:[A-Z0-9]+[ \t]+)*?[A-Z0-9]*KEY)[ \t]*-----|"
                         r"-----(BEGIN|END)[ \t]+((?:[A-Z0-9]+[ \t]{2,})+[A-Z0-9]*KEY)[ \t]*-----")
_PEM_END = re.compile(r"-----END ((?:[A-Z0-9]+ )*?[A-Z0-9]*(?:PRIVATE KEY|KEY))-----")
_PEM_BODY_LINE = re.compile(r"[A-Za-z0-9+/=]{16,}\r?\n")
_AFTER_AT = re.compile(r"[ \t]*\r?\n[ \t]*(?=[A-Za-z0-9])")
_BEFORE_AT = re.compile(r"[ \t]*\r?\n[ \t]*$")
_LOCAL_CHAR = re.compile(r"[A-Za-z0-9._%+\-]")
# Token prefixes distinctive enough that a word character before them is glue, not part of a word.
_GLUED_PREFIXES = (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_", b"glpat-", b"xox", b"sk_live_", b"rk_live_", b"sk-proj-", b"sk-ant-", b"AKIA", b"ASIA")
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-]{16}")
_SPLIT_TAIL = re.compile(r"[A-Za-z0-9_\-]{1,63}([ \t]*\r?\n[ \t]*)[A-Za-z0-9_\-]")
_BREAK_BEFORE_DIGIT = re.compile(r"\r?\n[ \t]*(?=\d)")


def _entities(text: str, raw: bytes, shape: bytes) -> list[Edit]:
    if "&" not in text:
        return []
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


def _percent(text: str, raw: bytes, shape: bytes) -> list[Edit]:
    if "%" not in text:
        return []
    out = []
    for m in _PERCENT.finditer(text):
        char = chr(int(m.group(1), 16))
        if " " <= char <= "~":
            out.append((m.start(), m.end(), char))
    return out


def _ssn_separators(text: str, raw: bytes, shape: bytes) -> list[Edit]:
    out = []
    for sep in "._/\\":
        needle = f"ddd{sep}dd{sep}dddd".encode()
        at = shape.find(needle)
        while at >= 0:
            if (at == 0 or shape[at - 1] not in b"d.-/") and shape[at + 11:at + 12] not in (b"d", b".", b"-", b"/"):
                out.append((at + 3, at + 4, "-"))
                out.append((at + 6, at + 7, "-"))
            at = shape.find(needle, at + 1)
    return out


def _hex(text: str, raw: bytes, shape: bytes) -> list[Edit]:
    out = []
    shape = shape.translate(_DIGITS_AS_HEX)
    at = shape.find(_HEX_SEED)
    while at >= 0:
        end = at + len(_HEX_SEED)
        while end < len(shape) and shape[end] == 0x68:  # "h"
            end += 1
        before_ok = at == 0 or shape[at - 1] not in b"a_"
        after_ok = end == len(shape) or shape[end] not in b"a_"
        run = text[at:end]
        if before_ok and after_ok and len(run) % 2 == 0 and len(run) <= 8192:
            raw = bytes.fromhex(run)
            if all(32 <= b < 127 or b in (9, 10, 13) for b in raw) and any(chr(b).isalpha() for b in raw):
                out.append((at, end, " " + raw.decode("ascii") + " "))
        at = shape.find(_HEX_SEED, end)
    return out


def _pem(text: str, raw: bytes, shape: bytes) -> list[Edit]:
    if "-----" not in text:
        return []
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


def _at_breaks(text: str, raw: bytes, shape: bytes) -> list[Edit]:
    """`name@` / `example.com` or `name` / `@example.com` over a line break: the break reads as nothing."""
    out = []
    at = text.find("@")
    while at >= 0:
        if text[at + 1:at + 2] not in ("\n", "\r", " ", "\t") and text[at - 1:at] not in ("\n", " ", "\t"):
            at = text.find("@", at + 1)
            continue
        after = _AFTER_AT.match(text, at + 1)
        if after and at and _LOCAL_CHAR.match(text, at - 1):
            out.append((at, after.end(), "@"))
        else:
            before = _BEFORE_AT.search(text, max(0, at - 64), at)
            if before and before.start() and _LOCAL_CHAR.match(text, before.start() - 1) \
                    and at + 1 < len(text) and text[at + 1].isalnum():
                out.append((before.start(), at + 1, "@"))
        at = text.find("@", at + 1)
    return out


def _glued(text: str, raw: bytes, shape: bytes) -> list[Edit]:
    """A word character glued before a distinctive prefix reads as a space; a line break inside the
    token that follows the prefix reads as nothing (`AKIAIOSFOD` / `NN7EXAMPLE`)."""
    out = []
    for prefix in _GLUED_PREFIXES:
        at = raw.find(prefix)
        while at >= 0:
            tail = at + len(prefix)
            if prefix == b"xox":  # xoxa- xoxb- xoxp- xoxo- xoxs- xoxr-: one search, not six
                tail = tail + 2 if raw[tail:tail + 1] in (b"a", b"b", b"p", b"o", b"s", b"r") and \
                    raw[tail + 1:tail + 2] == b"-" else -1
            if tail > 0:
                whole = _TOKEN_TAIL.match(text, tail)
                split = None if whole else _SPLIT_TAIL.match(text, tail)
                if (whole or split) and at and shape[at - 1] in b"adh_" and text[at - 1].isascii():
                    out.append((at, at, " "))
                if split:
                    out.append((split.start(1), split.end(1), ""))
            at = raw.find(prefix, at + 1)
    return out


def _digit_breaks(text: str, raw: bytes, shape: bytes) -> list[Edit]:
    """A line break between digit groups (`4111 1111` / `1111 1111`, `536-22-` / `8841`) reads as a blank,
    or as nothing after a dash; the card and SSN validators still decide."""
    out = []
    for m in _BREAK_BEFORE_DIGIT.finditer(text):
        start = m.start()
        while start and text[start - 1] in " \t":
            start -= 1
        if not start or not (text[start - 1].isdigit() or (text[start - 1] == "-" and text[start - 2:start - 1].isdigit())):
            continue
        out.append((start, m.end(), "" if text[start - 1] == "-" else " "))
    return out


# Cyrillic and Greek letters that look like Latin ones (a subset of Unicode's confusables, UTS #39).
_CONFUSABLE = str.maketrans("аеорсухіјѕԁһԛԝӏАВЕКМНОРСТУХІЈЅ" "αονικΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
                            "aeopcyxijsdhqwlABEKMHOPCTYXIJS" "aovikABEZHIKMNOPTYX")
_LOOKALIKES = "[" + "".join(sorted(set("аеорсухіјѕԁһԛԝӏАВЕКМНОРСТУХІЈЅαονικΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"))) + "]"
# A lookalike next to an ASCII letter, digit or underscore: how a disguised Latin word looks. Starting on a
# narrow set keeps a page of real Cyrillic text to one fast scan.
_MIXED = re.compile(f"[A-Za-z0-9_]{_LOOKALIKES}|{_LOOKALIKES}[A-Za-z0-9_]")


def _homoglyphs(text: str, raw: bytes, shape: bytes) -> list[Edit]:
    """A word mixing ASCII letters with Cyrillic or Greek lookalikes (`ghр_…`, `jоhn`) is read in Latin.
    A word written wholly in Cyrillic or Greek is left alone: that is real text, not a disguise."""
    if text.isascii():
        return []
    out, seen = [], -1
    for m in _MIXED.finditer(text):
        if m.start() < seen:
            continue
        start = end = m.start()
        while start and (text[start - 1].isalnum() or text[start - 1] in "_-"):
            start -= 1
        while end < len(text) and (text[end].isalnum() or text[end] in "_-"):
            end += 1
        seen = end
        word = text[start:end]
        if any(c.isascii() and c.isalpha() for c in word):
            out.extend((i, i + 1, c.translate(_CONFUSABLE)) for i, c in enumerate(word, start)
                       if c.translate(_CONFUSABLE) != c)
    return out


RULES: tuple[Callable[[str, bytes, bytes], list[Edit]], ...] = (_entities, _percent, _ssn_separators, _hex, _pem, _at_breaks,
                                                  _glued, _digit_breaks, _homoglyphs)


def _one_byte_per_char(text: str) -> bytes:
    """Latin-1 bytes of `text`, any other character as `?`: same length, so offsets are shared.
    (`encode(..., "replace")` calls its error handler once per run of such characters: slow on real
    Cyrillic or CJK text; numpy does it in one pass.)"""
    if text.isascii():
        return text.encode("ascii")
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return np.where(codes < 256, codes, 0x3F).astype(np.uint8).tobytes()


def edits(text: str) -> list[Edit]:
    """Every rule's edits, in order, without overlaps (the first wins)."""
    raw = _one_byte_per_char(text)
    shape = raw.translate(_SHAPE)
    out: list[Edit] = []
    pos = 0
    for start, end, replacement in sorted((e for rule in RULES for e in rule(text, raw, shape)), key=lambda e: (e[0], e[1])):
        if start >= pos:
            out.append((start, end, replacement))
            pos = end
    return out
