"""Classification markings ("CONFIDENTIAL", "ATTORNEY-CLIENT PRIVILEGED", "SECRET//NOFORN").

A marking says the author considered the text protected, so it is a cheap,
explainable signal. Matching is case-insensitive on word boundaries and
tolerant of whitespace and hyphen variants ("attorney client", "INTERNAL-USE
ONLY"). The word "confidential" also occurs in ordinary prose ("please keep
this confidential"), so the score says how much the match looks like a marking:

- 0.95: written in capitals, capitalised and alone on its line (a header or
  footer, at most two other words), or after a
  "Classification:" style label, and every `A//B` banner;
- 0.6: a multi-word marking inside running text ("do not distribute");
- 0.3: a single-word marking inside running text ("confidential", "proprietary").

A policy that wants only real markings acts on score >= 0.9.
"""

from __future__ import annotations

import re

from gateway.detection.finding import Finding

ENTITY_TYPE = "CLASSIFICATION_MARKING"

DEFAULT_MARKINGS = [
    "CONFIDENTIAL",
    "STRICTLY CONFIDENTIAL",
    "HIGHLY CONFIDENTIAL",
    "COMPANY CONFIDENTIAL",
    "BUSINESS CONFIDENTIAL",
    "CONFIDENTIAL AND PROPRIETARY",
    "PROPRIETARY AND CONFIDENTIAL",
    "PROPRIETARY",
    "INTERNAL ONLY",
    "INTERNAL USE ONLY",
    "FOR INTERNAL USE ONLY",
    "ATTORNEY-CLIENT PRIVILEGED",
    "ATTORNEY-CLIENT PRIVILEGE",
    "ATTORNEY WORK PRODUCT",
    "PRIVILEGED & CONFIDENTIAL",
    "TOP SECRET",
    "TRADE SECRET",
    "DO NOT DISTRIBUTE",
    "DO NOT FORWARD",
    "NOT FOR DISTRIBUTION",
]

BANNER_RULE = "BANNER"
# US-style banner lines: a level, then one or more `//` caveats (SECRET//NOFORN,
# TOP SECRET//SI//REL TO USA, FVEY). Banners are written in capitals; matched case-sensitively.
_BANNER = re.compile(
    r"(?<![\w/])(?:TOP[ \t]+SECRET|SECRET|CONFIDENTIAL|RESTRICTED|UNCLASSIFIED|CUI)"
    r"(?:[ \t]*//[ \t]*[A-Z][A-Z0-9-]*(?:(?:[ \t]+|,[ \t]*)[A-Z][A-Z0-9-]*)*)+"
)
_SEPARATOR = r"[\s_\-\u2010-\u2015]+"
_LABEL = re.compile(r"(?:classification|marking|sensitivity|label)\s*[:=]\s*$", re.IGNORECASE)

HIGH, MULTI_WORD, SINGLE_WORD = 0.95, 0.6, 0.3


def _phrase_pattern(phrase: str) -> str:
    words = [w for w in re.split(r"[\s_\-\u2010-\u2015]+", phrase.strip()) if w]
    parts = ["(?:&|and)" if w in ("&", "AND", "and") else re.escape(w) for w in words]
    return _SEPARATOR.join(parts)


class MarkingDetector:
    """`markings` maps entity type -> phrases; defaults are kept unless `include_defaults=False`."""

    name = "markings"

    def __init__(self, markings: dict[str, list[str]] | None = None, include_defaults: bool = True):
        table: dict[str, list[str]] = {ENTITY_TYPE: list(DEFAULT_MARKINGS)} if include_defaults else {}
        for entity_type, phrases in (markings or {}).items():
            table.setdefault(entity_type, []).extend(phrases)
        entries = sorted(
            {(phrase.upper(), entity_type) for entity_type, phrases in table.items() for phrase in phrases},
            key=lambda e: (-len(e[0]), e),
        )
        self._entries = entries
        alternation = "|".join(f"({_phrase_pattern(phrase)})" for phrase, _ in entries)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE) if entries else None
        self._banners = ENTITY_TYPE in table

    def detect(self, text: str) -> list[Finding]:
        findings: list[Finding] = []
        taken: list[tuple[int, int]] = []
        if self._banners:
            for m in _BANNER.finditer(text):
                findings.append(Finding(ENTITY_TYPE, m.start(), m.end(), HIGH, self.name, BANNER_RULE, "banner"))
                taken.append(m.span())
        if self._pattern is not None:
            for m in self._pattern.finditer(text):
                if any(s < m.end() and m.start() < e for s, e in taken):
                    continue
                phrase, entity_type = self._entries[m.lastindex - 1]
                score, why = self._score(text, m, phrase)
                findings.append(Finding(entity_type, m.start(), m.end(), score, self.name, phrase, why))
        return sorted(findings, key=lambda f: (f.start, f.end))

    def _score(self, text: str, m: re.Match, phrase: str) -> tuple[float, str]:
        matched = m.group()
        if any(c.isalpha() for c in matched) and matched == matched.upper():
            return HIGH, "capitals"
        line_start = text.rfind("\n", 0, m.start()) + 1
        line_end = text.find("\n", m.end())
        line_end = len(text) if line_end == -1 else line_end
        rest = self._pattern.sub(" ", text[line_start:line_end])
        own_line = len(re.findall(r"\w+", rest)) <= 2 and not re.search(r"[.!?]\s+\w", text[line_start:line_end])
        if own_line and matched[0].isupper():
            return HIGH, "own line"
        if _LABEL.search(text[line_start : m.start()]):
            return HIGH, "labelled"
        if len(phrase.split()) > 1:
            return MULTI_WORD, "phrase in running text"
        return SINGLE_WORD, "word in running text"
