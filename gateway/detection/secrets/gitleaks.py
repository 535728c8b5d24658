"""gitleaks' rule catalogue (`data/gitleaks.toml`, MIT), loaded as data and compiled with RE2.

The file is gitleaks' own default configuration, kept verbatim (licence and
version in `data/SOURCE.md`). Each rule's regex is compiled once per process
with google-re2, which reads gitleaks' RE2 syntax as written; a rule RE2
refuses, or one that has no regex (gitleaks' path-only rules), is listed in
`Catalogue.skipped` with the reason and logged, never dropped silently.

What is kept of gitleaks' semantics: a rule runs only when one of its
lower-case `keywords` occurs in the text; the secret is the first
participating unnamed capture group (else the whole match); the secret's
Shannon entropy must exceed the rule's `entropy`; the global and per-rule
allowlists (`regexes` against the secret, the match or the line, `stopwords`
contained in the secret, OR/AND conditions) drop a candidate. Allowlists that
need a file path or a commit never apply: a request body has neither, so an
AND allowlist naming paths is never satisfied and a `path`-only allowlist is
ignored. A rule's own `path` restriction is ignored too (the rule runs on
every text) and listed in `Catalogue.path_rules`, unless the path is what
makes its match a secret (`PATH_DEPENDENT`: skipped and reported).

Matching runs on the UTF-8 bytes of the text; `ByteOffsets` maps byte offsets
back to character offsets.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import ahocorasick
import re2

log = logging.getLogger("vendorgate.detection")

DATA = Path(__file__).resolve().parents[1] / "data" / "gitleaks.toml"
RULE_PREFIX = "gitleaks:"
GENERIC_IDS = frozenset({"generic-api-key"})
# Rules whose `path` is what makes a match a finding; elsewhere our own rules judge such text.
PATH_DEPENDENT = {
    "hashicorp-tf-password": "only meaningful in .tf/.hcl files (path); a `password = \"...\"` elsewhere is "
                             "judged by our generic-password rule",
}

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def utf8(text: str) -> bytes:
    """UTF-8 bytes of `text`; a lone surrogate becomes U+FFFD (same byte length, same char count)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


class ByteOffsets:
    """Character offset of a byte offset in the UTF-8 form of one text."""

    __slots__ = ("_positions", "_extra")

    def __init__(self, text: str) -> None:
        self._positions: list[int] = []
        self._extra: list[int] = []
        if text.isascii():
            return
        total = 0
        for m in _NON_ASCII.finditer(text):
            self._positions.append(m.start() + total)
            total += len(m.group().encode("utf-8", "surrogatepass")) - 1
            self._extra.append(total)

    def char(self, byte_offset: int) -> int:
        if not self._positions:
            return byte_offset
        k = bisect.bisect_left(self._positions, byte_offset)
        return byte_offset - (self._extra[k - 1] if k else 0)


def shannon_entropy(value: bytes | str) -> float:
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


@dataclass(frozen=True)
class Allowlist:
    """One gitleaks allowlist; `applies` is False when it needs a path or commit we don't have."""

    regexes: tuple = ()
    target: str = "secret"
    stopwords: ahocorasick.Automaton | None = None
    condition_and: bool = False
    applies: bool = True

    def without_stopwords(self) -> Allowlist:
        return Allowlist(self.regexes, self.target, None, self.condition_and, self.applies)

    def allows(self, secret: bytes, match: bytes, line: bytes) -> bool:
        if not self.applies:
            return False
        checks = []
        if self.regexes:
            subject = {"secret": secret, "match": match, "line": line}[self.target]
            checks.append(any(r.search(subject) for r in self.regexes))
        if self.stopwords is not None:
            lowered = secret.decode("utf-8", "replace").lower()
            checks.append(next(self.stopwords.iter(lowered), None) is not None)
        if not checks:
            return False
        return all(checks) if self.condition_and else any(checks)


@dataclass(frozen=True)
class CatalogRule:
    id: str
    description: str
    regex: re2._Regexp
    keywords: tuple[str, ...]
    entropy: float | None
    allowlists: tuple[Allowlist, ...]
    generic: bool
    pattern: str = field(repr=False, default="")
    _unnamed: tuple[int, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        named = set(self.regex.groupindex.values())
        object.__setattr__(self, "_unnamed", tuple(g for g in range(1, self.regex.groups + 1) if g not in named))

    def secret_span(self, match) -> tuple[int, int]:
        """The first participating unnamed group, else the whole match (byte offsets)."""
        for group in self._unnamed:
            start, end = match.span(group)
            if start != -1 and end > start:
                return start, end
        return match.span()


@dataclass
class Catalogue:
    rules: list[CatalogRule]
    global_allowlist: Allowlist
    version: str
    skipped: dict[str, str] = field(default_factory=dict)
    path_rules: list[str] = field(default_factory=list)


def _automaton(words) -> ahocorasick.Automaton | None:
    words = [w.lower() for w in words if w]
    if not words:
        return None
    automaton = ahocorasick.Automaton()
    for w in words:
        automaton.add_word(w, w)
    automaton.make_automaton()
    return automaton


def _compile(pattern: str):
    options = re2.Options()
    options.max_mem = 64 << 20
    return re2.compile(pattern.encode("utf-8"), options=options)


def _allowlist(data: dict) -> Allowlist:
    needs_path = bool(data.get("paths")) or bool(data.get("commits"))
    condition_and = str(data.get("condition", data.get("matchCondition", "OR"))).upper() == "AND"
    patterns = data.get("regexes", ())
    # One alternation answers "does any of them match" in one pass.
    regexes = (_compile("|".join(f"(?:{r})" for r in patterns)),) if patterns else ()
    stopwords = _automaton(data.get("stopwords", ()))
    applies = not needs_path or not condition_and
    if needs_path and not regexes and stopwords is None:
        applies = False
    return Allowlist(regexes, data.get("regexTarget", "secret"), stopwords, condition_and, applies)


def _version(path: Path) -> str:
    source = path.with_name("SOURCE.md")
    if source.exists():
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.startswith("| `gitleaks.toml`"):
                return line.split("|")[3].strip()
    return "unknown"


@cache
def load(path: Path = DATA) -> Catalogue:
    """Parse and compile the catalogue once per process."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    global_allowlist = _allowlist(data.get("allowlist", {}))
    rules: list[CatalogRule] = []
    catalogue = Catalogue(rules, global_allowlist, _version(path))
    for raw in data.get("rules", ()):
        rule_id = raw["id"]
        if "regex" not in raw:
            catalogue.skipped[rule_id] = "no regex (a file-path rule: request bodies have no path)"
            continue
        try:
            regex = _compile(raw["regex"])
        except re2.error as exc:
            catalogue.skipped[rule_id] = f"RE2 cannot compile it: {exc}"
            continue
        if rule_id in PATH_DEPENDENT:
            catalogue.skipped[rule_id] = PATH_DEPENDENT[rule_id]
            continue
        if raw.get("path"):
            catalogue.path_rules.append(rule_id)
        lists = [raw["allowlist"]] if "allowlist" in raw else []
        lists += raw.get("allowlists", [])
        rules.append(CatalogRule(
            id=RULE_PREFIX + rule_id,
            description=raw.get("description", rule_id),
            regex=regex,
            keywords=tuple(k.lower() for k in raw.get("keywords", ())),
            entropy=float(raw["entropy"]) if raw.get("entropy") else None,
            allowlists=tuple(_allowlist(a) for a in lists),
            generic=rule_id in GENERIC_IDS,
            pattern=raw["regex"],
        ))
    for rule_id, reason in catalogue.skipped.items():
        # Known exclusions are information; a rule RE2 refuses is a warning.
        level = logging.WARNING if reason.startswith("RE2") else logging.INFO
        log.log(level, "gitleaks rule %s not loaded: %s", rule_id, reason)
    return catalogue
