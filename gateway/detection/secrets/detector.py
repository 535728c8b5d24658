"""Run every secret rule over a text and return non-overlapping findings.

Two rule sets: ours (`catalog.py`, `generic.py`: Python regexes with
validators) and gitleaks' catalogue (`gitleaks.py`: RE2, loaded from data).
One pass over the lower-cased text finds our rules' keywords (`LiteralPositions`);
one multi-pattern pass (`MultiPattern`) says which catalogue rules can match
at all, and only those are checked for their keywords. Only rules with a
keyword present (and, for the catalogue, a prefilter hit) run their exact
regex, and validators, entropy and allowlists only see those matches.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache

from gateway.detection.finding import Finding
from gateway.detection.multipattern import LiteralPositions, MultiPattern
from gateway.detection.secrets import gitleaks
from gateway.detection.secrets.catalog import SERVICE_RULES
from gateway.detection.secrets.encoded import encoded_blobs
from gateway.detection.secrets.generic import GENERIC_RULES, PASSWORD_RULE, identifier_start
from gateway.detection.secrets.rule import GENERIC, SEMI_GENERIC, SPECIFIC, Rule, Verdict, secret_span
from gateway.detection.secrets.validators import b64decode_loose, pypi_token_complete
from gateway.detection.secrets.values import is_format_placeholder, shannon_entropy

RULES: tuple[Rule, ...] = tuple(SERVICE_RULES + GENERIC_RULES)
RECOGNIZER = "secrets"
ENTITY_TYPE = "SECRET"
# Catalogue findings rank below our own service, URL and header rules (which
# validate their format) and above our generic ones; gitleaks' generic rule
# ranks below ours.
CATALOGUE_PRIORITY = (SEMI_GENERIC + GENERIC) / 2
CATALOGUE_GENERIC_PRIORITY = GENERIC - 1
CATALOGUE_SCORE = 0.9
CATALOGUE_GENERIC_SCORE = 0.75


_GENERIC_VALUE = re.compile(r"[\w.=\-]+\Z")


def _jwt_header_is_json(secret: str) -> bool:
    raw = b64decode_loose(secret.split(".", 1)[0])
    if raw is None:
        return False
    try:
        return isinstance(json.loads(raw.decode("utf-8", "replace")), dict)
    except ValueError:
        return False


# Our structural checks applied to catalogue rules of the same format (bare gitleaks ids).
CATALOGUE_VALIDATORS = {"jwt": _jwt_header_is_json, "pypi-upload-token": pypi_token_complete}


@dataclass(frozen=True)
class CompiledCatalogue:
    """gitleaks' rules and their multi-pattern prefilter, built once per process.

    `generic_allowlists` are gitleaks' allowlists of its generic rule (names like
    `primary_key`, `keyPressed`, `csrf_token`; stopwords); our own generic
    findings pass them too (`password_allowlists`: the same without stopwords,
    which are words a chosen password may well contain).
    """

    rules: tuple[gitleaks.CatalogRule, ...]
    global_allowlist: gitleaks.Allowlist
    prefilter: MultiPattern
    generic_allowlists: tuple[gitleaks.Allowlist, ...]
    password_allowlists: tuple[gitleaks.Allowlist, ...]


@cache
def compiled_catalogue() -> CompiledCatalogue:
    catalogue = gitleaks.load()
    rules = tuple(catalogue.rules)
    generic = next((r.allowlists for r in rules if r.generic), ())
    passwords = tuple(a.without_stopwords() for a in generic if a.target != "secret")
    return CompiledCatalogue(rules, catalogue.global_allowlist, MultiPattern([r.pattern for r in rules]),
                             generic, passwords)


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    score: float
    rule: str
    priority: int
    description: str


def _keep_most_specific(hits: Iterable[_Hit]) -> list[_Hit]:
    """Drop hits overlapping a better one: higher priority, then longer, then higher score."""
    ranked = sorted(hits, key=lambda h: (-h.priority, -(h.end - h.start), -h.score, h.start))
    starts: list[int] = []
    kept: list[_Hit] = []
    for hit in ranked:
        i = bisect.bisect_left(starts, hit.start)
        if i > 0 and kept[i - 1].end > hit.start:
            continue
        if i < len(kept) and kept[i].start < hit.end:
            continue
        starts.insert(i, hit.start)
        kept.insert(i, hit)
    return kept


class _Outranked:
    """Does a span overlap one of `hits` of higher priority? (prefix maxima of ends, by start)."""

    def __init__(self, hits: Iterable[_Hit]) -> None:
        self._levels: dict[float, tuple[list[int], list[int]]] = {}
        for level in sorted({h.priority for h in hits}):
            ranked = sorted((h.start, h.end) for h in hits if h.priority == level)
            ends, top = [], -1
            for _, end in ranked:
                top = max(top, end)
                ends.append(top)
            self._levels[level] = ([s for s, _ in ranked], ends)

    def __call__(self, start: int, end: int, priority: float) -> bool:
        for level, (starts, ends) in self._levels.items():
            if level <= priority:
                continue
            i = bisect.bisect_left(starts, end)
            if i and ends[i - 1] > start:
                return True
        return False


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _lower_same_length(text: str) -> str:
    """Lower-case `text` for keyword search without shifting any offset."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


def _continues_word(ch: str) -> bool:
    return ch.isalnum() or ch in "_-"


def _anchored_matches(rule: Rule, text: str, starts: dict[str, list[int]]) -> Iterator[re.Match[str]]:
    """Try the rule's regex only where one of its keywords starts."""
    positions = sorted({
        at - back
        for keyword in rule.keywords
        for at in starts.get(keyword, ())
        for back in rule.anchor_back
        if at >= back
    })
    consumed = -1
    for at in positions:
        if at < consumed:
            continue
        match = rule.regex.match(text, at)
        if match is not None:
            consumed = match.end()
            yield match


class SecretDetector:
    """Credential detector: service formats, keyword assignments, encoded blobs.

    `extra_rules` are appended to `RULES`; `disabled` names rule ids (either a
    rule's own id or the finer id a validator reports, like `generic-password`)
    whose findings are dropped.
    """

    name = RECOGNIZER

    def __init__(self, extra_rules: Iterable[Rule] = (), disabled: Iterable[str] = (), *,
                 catalogue: bool = True, own_rules: bool = True) -> None:
        self._disabled = frozenset(disabled)
        self.rules: tuple[Rule, ...] = tuple(
            r for r in (*(RULES if own_rules else ()), *extra_rules) if r.id not in self._disabled
        )
        self._catalogue = compiled_catalogue() if catalogue else None
        self._keywords = LiteralPositions(k for rule in self.rules for k in rule.keywords)
        self._specific = tuple(r for r in self.rules if r.priority != GENERIC)
        self._generic = tuple(r for r in self.rules if r.priority == GENERIC)

    def detect(self, text: str) -> list[Finding]:
        plain = _keep_most_specific(self._scan(text))
        # A catalogue hit inside an encoded blob does not stop the blob being
        # decoded: the decoded text may hold more, and the blob is reported whole.
        own = [h for h in plain if not h.rule.startswith(gitleaks.RULE_PREFIX)]
        starts = [h.start for h in own]

        def covered(start: int, end: int) -> bool:
            i = bisect.bisect_left(starts, end)
            return i > 0 and own[i - 1].end > start

        wrapped = [hit for blob in encoded_blobs(text, covered) for hit in self._scan_blob(blob)]
        hits = _keep_most_specific(plain + wrapped) if wrapped else plain
        return [
            Finding(ENTITY_TYPE, h.start, h.end, round(h.score, 3), RECOGNIZER, h.rule, h.description)
            for h in hits
        ]

    def _scan_blob(self, blob) -> list[_Hit]:
        inner = self._scan(blob.decoded)
        if not inner:
            return []
        best = max(inner, key=lambda h: (h.priority, h.score))
        return [_Hit(blob.start, blob.end, best.score * 0.95, f"{blob.encoding}:{best.rule}",
                     best.priority, f"{blob.encoding}-encoded: {best.description}")]

    def _scan(self, text: str) -> list[_Hit]:
        """Rules from the most to the least specific, each group skipping what a better hit holds.

        Our service, URL and header rules, then the catalogue's specific rules,
        then our generic rules, then gitleaks' generic one: a match overlapping
        a hit that ranks above it would lose to it in `_keep_most_specific`, so
        it is dropped before its checks run (for our generic rules: when such a
        hit covers the value's first character, which stays in the value
        whatever the validator trims off its end).
        """
        lowered = _lower_same_length(text)
        starts = self._keywords.starts(lowered)
        hits = self._scan_own(self._specific, text, starts, None)
        catalogue = self._catalogue_candidates(text, lowered) if self._catalogue is not None else None
        if catalogue:
            hits.extend(self._scan_catalogue(catalogue[0], catalogue[2], text, _Outranked(hits)))
        if self._generic:
            hits.extend(self._scan_own(self._generic, text, starts, _Outranked(hits) if hits else None))
        if catalogue and catalogue[1]:
            hits.extend(self._scan_catalogue(catalogue[1], catalogue[2], text, _Outranked(hits)))
        return hits

    def _scan_own(self, rules: tuple[Rule, ...], text: str, starts: dict[str, list[int]],
                  outranked: _Outranked | None) -> list[_Hit]:
        hits: list[_Hit] = []
        for rule in rules:
            if rule.requires is not None and rule.requires.search(text) is None:
                continue
            if rule.anchored:
                matches = _anchored_matches(rule, text, starts)
            elif not rule.keywords or any(k in starts for k in rule.keywords):
                matches = rule.regex.finditer(text)
            else:
                continue
            for match in matches:
                if outranked is not None:
                    start = secret_span(match)[0]
                    if outranked(start, start + 1, rule.priority):
                        continue
                hit = self._judge(rule, match)
                if hit is not None:
                    hits.append(hit)
        return hits

    def _catalogue_candidates(self, text: str, lowered: str):
        """The prefilter's candidates with a keyword in the text (gitleaks' rule): specific, generic, bytes."""
        catalogue = self._catalogue
        data = gitleaks.utf8(text)
        candidates = catalogue.prefilter.candidates(text, data)
        if not candidates:
            return None
        specific: list[gitleaks.CatalogRule] = []
        generic: list[gitleaks.CatalogRule] = []
        for index in sorted(candidates):
            rule = catalogue.rules[index]
            if self._is_disabled(rule.id) or (rule.keywords and not any(k in lowered for k in rule.keywords)):
                continue
            (generic if rule.generic else specific).append(rule)
        return specific, generic, data

    def _scan_catalogue(self, rules: list[gitleaks.CatalogRule], data: bytes, text: str,
                        outranked: _Outranked) -> list[_Hit]:
        offsets = None
        hits: list[_Hit] = []
        for rule in rules:
            priority = CATALOGUE_GENERIC_PRIORITY if rule.generic else CATALOGUE_PRIORITY
            score = CATALOGUE_GENERIC_SCORE if rule.generic else CATALOGUE_SCORE
            for match in rule.regex.finditer(data):
                start, end = rule.secret_span(match)
                if offsets is None:
                    offsets = gitleaks.ByteOffsets(text)
                char_start, char_end = offsets.char(start), offsets.char(end)
                if outranked(char_start, char_end, priority):
                    continue
                if not self._catalogue_accepts(rule, data, match, start, end):
                    continue
                hits.append(_Hit(char_start, char_end, score, rule.id, priority, rule.description))
        return hits

    def _catalogue_accepts(self, rule: gitleaks.CatalogRule, data: bytes, match, start: int, end: int) -> bool:
        secret = data[start:end]
        if rule.entropy is not None and gitleaks.shannon_entropy(secret) <= rule.entropy:
            return False
        whole = match.group()
        line_start = data.rfind(b"\n", 0, match.start()) + 1
        line_end = data.find(b"\n", match.end())
        line = data[line_start:line_end if line_end != -1 else len(data)]
        lists = (self._catalogue.global_allowlist, *rule.allowlists)
        if any(a.allows(secret, whole, line) for a in lists):
            return False
        value = secret.decode("utf-8", "replace")
        validator = CATALOGUE_VALIDATORS.get(rule.id.removeprefix(gitleaks.RULE_PREFIX))
        if validator is not None and not validator(value):
            return False
        return not is_format_placeholder(value)

    def _is_disabled(self, rule_id: str) -> bool:
        """A rule id, or a catalogue id without its `gitleaks:` prefix, named in `disabled`."""
        return rule_id in self._disabled or rule_id.removeprefix(gitleaks.RULE_PREFIX) in self._disabled

    def _vetoed_by_catalogue(self, text: str, match, start: int, end: int, rule_id: str) -> bool:
        """gitleaks' generic allowlists applied to one of our generic findings."""
        # Stopwords are words of identifiers and repository names: they veto only
        # values gitleaks' generic rule could have matched (`[\w.=-]`), never a password.
        identifier_like = rule_id != PASSWORD_RULE and _GENERIC_VALUE.match(text, start, end) is not None
        lists = self._catalogue.generic_allowlists if identifier_like else self._catalogue.password_allowlists
        if not lists:
            return False
        name_start = identifier_start(text, match.start())
        line_start = text.rfind("\n", 0, name_start) + 1
        line_end = text.find("\n", end)
        secret = text[start:end].encode()
        whole = text[name_start:end].encode()
        line = text[line_start:line_end if line_end != -1 else len(text)].encode()
        return any(a.allows(secret, whole, line) for a in lists)

    def _judge(self, rule: Rule, match) -> _Hit | None:
        start, end = secret_span(match)
        if start == end:
            return None
        if rule.left_edge and start > 0 and _continues_word(match.string[start - 1]):
            return None
        value = match.string[start:end]
        if rule.priority == SPECIFIC and is_format_placeholder(value):
            return None
        if rule.entropy is not None and shannon_entropy(value) < rule.entropy:
            return None
        verdict = rule.validator(match) if rule.validator else Verdict(rule.score)
        if verdict is None:
            return None
        rule_id = verdict.rule or rule.id
        if rule_id in self._disabled:
            return None
        if verdict.end is not None:
            end = verdict.end
        if rule.priority == GENERIC and self._catalogue is not None \
                and self._vetoed_by_catalogue(match.string, match, start, end, rule_id):
            return None
        priority = (CATALOGUE_PRIORITY + GENERIC) / 2 if rule.below_catalogue else rule.priority
        return _Hit(start, end, verdict.score, rule_id, priority, rule.description)
