"""Judging a candidate value: is it random enough, a password, or a placeholder?

Generic rules only see "some keyword = some value", so everything they report
rests on these checks. They are deliberately conservative about words,
identifiers, paths and template syntax, which are what config files and prose
put after "token" or "key" far more often than real credentials.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_PLACEHOLDER_PARTS = (
    "example", "sample", "placeholder", "your_", "your-", "yourkey", "yoursecret",
    "yourtoken", "yourpass", "yourapi", "redacted", "changeme", "change_me",
    "change-me", "dummy", "fake", "xxxx", "****", "....", "…", "%s", "%d",
    # Letters and digits counted off in turn (a1b2c3d4e5f6…, or backwards), a documentation filler.
    "a1b2c3", "c3b2a1",
    "_here", "-here", "insert", "replace",
    "getenv", "environ", "process.env", "secretmanager", "lorem", "foobar",
    "notreal", "not_real", "not-real", "mysecret", "mypassword", "mytoken",
    "password", "required", "min:", "max:",
)

# A Python %-format field (`%(password)s`); a bare `%(` also occurs in random keys (Django's
# generated SECRET_KEY draws from `!@#$%^&*(-_=+)`).
_PLACEHOLDER_SEARCH = re.compile(
    "|".join(re.escape(part) for part in _PLACEHOLDER_PARTS) + r"|%\([\w.\-]+\)[#0 +\-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]"
)
# A value that is a template reference as a whole (`${DB_PASS}`, `{{ .Values.x }}`,
# `<your key>`, `$(cat f)`, `#{secret}`, `[value]`); template syntax inside a longer literal is kept.
_TEMPLATE = re.compile(r"^(?:\$\{.*\}|\{\{.*\}\}|<.*>|\$\(.*\)|#\{.*\}|\{%.*%\}|\[[^\[\]]*\])$", re.DOTALL)
# Code, not a literal: a call or an index on an identifier (`foo(bar)`, `req.json['k']`).
_CALL_OR_INDEX = re.compile(r"^[A-Za-z_$][\w.$]*[(\[]")

_PLACEHOLDER_EXACT = frozenset({
    "null", "none", "nil", "nan", "true", "false", "yes", "no", "on", "off",
    "undefined", "string", "str", "bytes", "int", "bool", "text", "value",
    "empty", "required", "optional", "default", "secret", "secrets", "token",
    "password", "passwd", "pass", "pwd", "apikey", "api_key", "api-key", "key",
    "auth", "bearer", "basic", "test", "testing", "admin", "root", "user",
    "username", "guest", "public", "private", "hidden", "masked", "unset",
    "todo", "tbd", "fixme", "n/a", "na", "env", "vault", "sensitive",
})

_CODE_START = ("$", "@", "%", "&", "!", "*", "#", "./", "../", "~/", "\\", "=")
_FILE_SUFFIX = re.compile(
    r"\.(?:key|pem|crt|cer|der|p12|pfx|jks|json|ya?ml|txt|env|cfg|conf|ini|toml|xml|"
    r"properties|py|js|ts|sh|gpg|asc|pub|log|csv|html?)$",
    re.IGNORECASE,
)
_DRIVE_PATH = re.compile(r"^[A-Za-z]:[\\/]")
_DOTTED_NAME = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$")
_LETTERS_AND_SEPARATORS = re.compile(r"^[A-Za-z_.\-/ ]+$")
_CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-xzB-DF-HJ-NP-TV-XZ]{5,}")
_VOWELS = frozenset("aeiouyAEIOUY")


def shannon_entropy(value: str) -> float:
    """Bits per character of `value` over its own character distribution."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def is_sequential(value: str) -> bool:
    """True for runs like `123456`, `abcdef`, `654321` that people type as fillers."""
    if len(value) < 4:
        return False
    # At least 80% of the steps are ±1: stop at the first miss past the 20% allowed.
    allowed = 0.2 * (len(value) - 1)
    misses = 0
    codes = list(map(ord, value))
    for a, b in zip(codes, codes[1:]):
        if a - b not in (1, -1):
            misses += 1
            if misses > allowed:
                return False
    return True


def is_placeholder(value: str) -> bool:
    """Template syntax, filler text, masked values and other non-secrets."""
    lowered = value.lower()
    if lowered in _PLACEHOLDER_EXACT or _TEMPLATE.match(value):
        return True
    if _PLACEHOLDER_SEARCH.search(lowered):
        return True
    if max(Counter(lowered).values()) > 0.6 * len(lowered):
        return True
    return is_sequential(lowered)


def is_format_placeholder(value: str) -> bool:
    """The narrower check for values that already match a service's exact format.

    Documentation examples of a real format (`AKIAIOSFODNN7EXAMPLE`) still match;
    only obvious fillers (`xxxx`, `<token>`, `${VAR}`, one repeated char, a run like
    `abc…xyz1234567`, letters and digits counted off `a1b2c3…`) do not.
    """
    lowered = value.lower()
    if any(part in lowered for part in ("xxxx", "****", "<", ">", "${", "{{", "your_", "your-", "a1b2c3", "c3b2a1")):
        return True
    tail = lowered[-16:] if len(lowered) > 16 else lowered
    return max(Counter(tail).values()) > 0.75 * len(tail) or is_sequential(tail)


def looks_like_code_or_path(value: str) -> bool:
    """Variable references, calls, paths and URLs are not literal secrets."""
    if value.startswith(_CODE_START) or _DRIVE_PATH.match(value):
        return True
    if value.startswith("/") and "+" not in value and not value.endswith("="):
        return True
    if "://" in value or _CALL_OR_INDEX.match(value):
        return True
    if _FILE_SUFFIX.search(value):
        return True
    return bool(_DOTTED_NAME.match(value)) and not any(ch.isdigit() for ch in value)


def _is_wordy(value: str) -> bool:
    """Letters and separators that read as words, identifiers or a dotted/slashed name.

    Random mixed-case keys switch case every couple of letters and random
    lower-case keys have long consonant runs; words and camelCase do neither.
    """
    if not _LETTERS_AND_SEPARATORS.match(value):
        return False
    letters = [ch for ch in value if ch.isalpha()]
    if not letters:
        return True
    switches = sum(1 for a, b in zip(value, value[1:]) if a.isalpha() and b.isalpha() and a.islower() != b.islower())
    if switches > max(2, len(letters) // 4):
        return False
    if _CONSONANT_RUN.search(value):
        return False
    vowels = sum(1 for ch in letters if ch in _VOWELS) / len(letters)
    return 0.2 <= vowels <= 0.7


def looks_random(value: str) -> bool:
    """A machine-generated key: long enough, varied enough, not a word or a path."""
    n = len(value)
    if n < 10 or n > 512:
        return False
    if is_placeholder(value) or looks_like_code_or_path(value):
        return False
    has_letter = any(ch.isalpha() for ch in value)
    has_digit = any(ch.isdigit() for ch in value)
    if not has_letter:
        return False
    if _is_wordy(value):
        return False
    if not has_digit and value.isalpha() and (value.islower() or value.isupper()):
        return n >= 20 and shannon_entropy(value) >= 3.8
    threshold = min(3.0, math.log2(n) - 0.7)
    return shannon_entropy(value) >= threshold


def looks_like_password(value: str) -> bool:
    """A literal a person chose: short is fine, but it must not read as a word or code."""
    if not 6 <= len(value) <= 128:
        return False
    if is_placeholder(value) or looks_like_code_or_path(value):
        return False
    if value.isdigit():
        return len(value) >= 6 and len(set(value)) >= 4
    has_digit = any(ch.isdigit() for ch in value)
    has_symbol = any(not ch.isalnum() and ch not in "_-." for ch in value)
    if not (has_digit or has_symbol):
        return looks_random(value)
    return shannon_entropy(value) >= 2.0
