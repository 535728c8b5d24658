"""Patterns a policy adds, shaped like Presidio's YAML recognizer registry."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.detection.finding import Finding
from gateway.detection.patterns.context import scored, words
from gateway.detection.patterns.validators import VALIDATORS

# Presidio compiles its pattern recognizers with these flags.
PRESIDIO_FLAGS = re.DOTALL | re.MULTILINE | re.IGNORECASE


@dataclass
class CustomPattern:
    """A policy-defined regex; `validator` names a check in `validators.VALIDATORS`."""

    name: str
    entity_type: str
    regex: str
    score: float = 0.6
    validator: str | None = None
    context: list[str] = field(default_factory=list)
    flags: int = 0

    def __post_init__(self) -> None:
        if self.validator is not None and self.validator not in VALIDATORS:
            raise ValueError(f"custom pattern {self.name!r}: unknown validator {self.validator!r}; "
                             f"known: {', '.join(sorted(VALIDATORS))}")
        try:
            self.compiled = re.compile(self.regex, self.flags)
        except re.error as exc:
            raise ValueError(f"custom pattern {self.name!r}: invalid regex ({exc.msg})") from None
        self._context = words(self.context) if self.context else None

    @classmethod
    def from_presidio_yaml(cls, spec: Mapping[str, Any]) -> list[CustomPattern]:
        """One CustomPattern per entry of a Presidio recognizer's `patterns` (and its `deny_list`)."""
        entity = spec.get("supported_entity") or (spec.get("supported_entities") or [None])[0]
        if not entity:
            raise ValueError(f"presidio recognizer {spec.get('name')!r} has no supported_entity")
        context = list(spec.get("context") or [])
        base_name = spec.get("name") or entity.lower()
        found = [
            cls(name=p.get("name") or base_name, entity_type=entity, regex=p["regex"],
                score=float(p.get("score", 0.6)), context=context, flags=PRESIDIO_FLAGS)
            for p in spec.get("patterns") or []
        ]
        deny = spec.get("deny_list") or []
        if deny:
            alternatives = "|".join(re.escape(t) for t in sorted(deny, key=len, reverse=True))
            found.append(cls(name=f"{base_name}_deny_list", entity_type=entity,
                             regex=r"(?<!\w)(?:" + alternatives + r")(?!\w)",
                             score=float(spec.get("deny_list_score", 1.0)), context=context, flags=re.IGNORECASE))
        return found

    def detect(self, text: str) -> list[Finding]:
        check = VALIDATORS[self.validator] if self.validator else None
        results = []
        for m in self.compiled.finditer(text):
            if m.start() == m.end() or (check is not None and not check(m.group())):
                continue
            note = f"validator {self.validator} ok" if check else ""
            results.append(scored(text, self.entity_type, m.start(), m.end(), self.score, self.name,
                                  self._context, note=note))
        return results
