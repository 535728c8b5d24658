"""What a secret rule is: a regex plus the cheap and the careful checks around it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

SPECIFIC = 2
SEMI_GENERIC = 1
GENERIC = 0


class Verdict(NamedTuple):
    """A validator's acceptance: the finding's score and, optionally, a finer rule id.

    `end` narrows the secret's span when the regex took more than the value
    (a closing bracket of the code around an unquoted value).
    """

    score: float
    rule: str | None = None
    end: int | None = None


Validator = Callable[[re.Match[str]], "Verdict | None"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One credential format.

    The reported span is the regex group named `secret` (or any participating
    group whose name starts with `secret`), else the whole match. The rule only
    runs when one of `keywords` (lower-case) occurs in the lower-cased text; an
    empty tuple means it always runs. `entropy` is a minimum Shannon entropy of
    the secret. `validator` gets the match and returns a `Verdict` or None to
    reject. When several findings overlap, the higher `priority` wins, then the
    longer span.

    Speed knobs: an `anchored` rule's regex is only tried (`regex.match`) where
    one of its keywords starts, so it must begin with a keyword, or exactly
    one of `anchor_back` characters before one (`\\d{8,10}:AA` with keyword
    ":aa" has anchor_back (8, 9, 10)); `left_edge`
    rejects a secret that continues a word on its left, which keeps the regex
    free of a leading lookbehind (that would disable the regex engine's fast
    literal-prefix search). `below_catalogue` ranks the rule's findings under
    gitleaks' specific rules: it fills a gap in a format the catalogue also knows.
    `requires` is a regex every match contains, searched once per text before
    the rule runs (for rules whose keywords occur far more often than the rule
    can match, or that have none): a text without it skips the rule.
    """

    id: str
    description: str
    regex: re.Pattern[str]
    keywords: tuple[str, ...] = ()
    entropy: float | None = None
    validator: Validator | None = None
    score: float = 0.95
    priority: int = SPECIFIC
    anchored: bool = False
    anchor_back: tuple[int, ...] = (0,)
    left_edge: bool = False
    below_catalogue: bool = False
    requires: re.Pattern[str] | None = None


def rule(
    id: str,
    description: str,
    pattern: str,
    keywords: tuple[str, ...] | list[str] = (),
    *,
    entropy: float | None = None,
    validator: Validator | None = None,
    score: float = 0.95,
    priority: int = SPECIFIC,
    anchored: bool = False,
    anchor_back: tuple[int, ...] = (0,),
    left_edge: bool = False,
    below_catalogue: bool = False,
    requires: str | None = None,
    flags: int = 0,
) -> Rule:
    """Build a `Rule` from a pattern string; keywords are lower-cased here."""
    return Rule(
        id=id,
        description=description,
        regex=re.compile(pattern, flags),
        keywords=tuple(k.lower() for k in keywords),
        entropy=entropy,
        validator=validator,
        score=score,
        priority=priority,
        anchored=anchored,
        anchor_back=anchor_back,
        left_edge=left_edge,
        below_catalogue=below_catalogue,
        requires=re.compile(requires) if requires is not None else None,
    )


def secret_span(match: re.Match[str]) -> tuple[int, int]:
    """The offsets of the secret inside a match (see `Rule`)."""
    if match.re.groupindex:
        for name, value in match.groupdict().items():
            if value is not None and name.startswith("secret"):
                return match.span(name)
    return match.span()
