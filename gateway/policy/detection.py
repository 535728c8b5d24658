"""Policy keys that extend detection: `recognizers:` (custom patterns) and `allow:`.

`recognizers` entries take the shape of Presidio's YAML recognizer registry
(`name`, `supported_entity`, `patterns: [{name, regex, score}]`, `context`,
`deny_list`), plus `validator` (a checksum from
`gateway/detection/patterns/validators.py`), so a Presidio user can paste theirs.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.detection.patterns.custom import PRESIDIO_FLAGS
from gateway.detection.patterns.validators import VALIDATORS
from gateway.detection.spec import PatternSpec

_ENTITY_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _compiles(regex: str) -> str:
    try:
        re.compile(regex, PRESIDIO_FLAGS)
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc.msg}") from None
    return regex


class PatternEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    regex: str
    score: float = Field(0.6, ge=0.0, le=1.0)

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        return _compiles(value)


class RecognizerSpec(BaseModel):
    """One custom recognizer: regex patterns and/or a deny-list, for one entity type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    supported_entity: str
    patterns: list[PatternEntry] = Field(default_factory=list)
    deny_list: list[str] = Field(default_factory=list)
    deny_list_score: float = Field(1.0, ge=0.0, le=1.0)
    context: list[str] = Field(default_factory=list)
    validator: str | None = None
    supported_language: str = "en"

    @field_validator("supported_entity")
    @classmethod
    def _entity_name(cls, value: str) -> str:
        if not _ENTITY_NAME.fullmatch(value):
            raise ValueError("entity type must be UPPER_SNAKE_CASE, e.g. EMPLOYEE_ID")
        return value

    @field_validator("validator")
    @classmethod
    def _known_validator(cls, value: str | None) -> str | None:
        if value is not None and value not in VALIDATORS:
            raise ValueError(f"unknown validator {value!r}; known: {', '.join(sorted(VALIDATORS))}")
        return value

    @field_validator("supported_language")
    @classmethod
    def _english(cls, value: str) -> str:
        if value != "en":
            raise ValueError("only 'en' is supported")
        return value

    @model_validator(mode="after")
    def _something(self) -> RecognizerSpec:
        if not self.patterns and not self.deny_list:
            raise ValueError("a recognizer needs patterns or a deny_list")
        return self

    def patterns_spec(self) -> list[PatternSpec]:
        context = tuple(self.context)
        specs = [PatternSpec(name=p.name or self.name, entity_type=self.supported_entity, regex=p.regex,
                             score=p.score, validator=self.validator, context=context, flags=PRESIDIO_FLAGS)
                 for p in self.patterns]
        if self.deny_list:
            words = "|".join(re.escape(t) for t in sorted(self.deny_list, key=len, reverse=True))
            specs.append(PatternSpec(name=f"{self.name}_deny_list", entity_type=self.supported_entity,
                                     regex=r"(?<!\w)(?:" + words + r")(?!\w)", score=self.deny_list_score,
                                     context=context, flags=re.IGNORECASE))
        return specs


class AllowSpec(BaseModel):
    """Values never reported: exact (case-insensitive) or full-match regexes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[str] = Field(default_factory=list)
    regex: list[str] = Field(default_factory=list)

    @field_validator("regex")
    @classmethod
    def _compile_all(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                re.compile(value, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc.msg}") from None
        return values


def custom_entity_types(data: Any) -> set[str]:
    """Entity types declared by a policy's own recognizers (so `actions` may name them)."""
    if not isinstance(data, dict) or not isinstance(data.get("recognizers"), list):
        return set()
    return {r["supported_entity"] for r in data["recognizers"]
            if isinstance(r, dict) and isinstance(r.get("supported_entity"), str)}
