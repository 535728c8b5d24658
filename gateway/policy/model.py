"""Policy files: what to detect for a vendor and what to do with each finding.

A policy is YAML; `load_policy` validates it and reports problems as
`file:line: field: message`. An invalid policy stops the gateway from starting.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gateway.actions import ACTIONS
from gateway.detection.entities import DEFAULT_ENTITIES, KNOWN_ENTITIES
from gateway.detection.spec import DetectionSpec
from gateway.policy.actionspec import ActionSpec
from gateway.policy.company import (
    Budget,
    ProtectedDocuments,
    SourceCodeRules,
    check_term_type,
    read_terms_file,
)
from gateway.policy.detection import AllowSpec, RecognizerSpec, custom_entity_types
from gateway.policy.fields import FieldRule, RuleSet
from gateway.yamlfile import FileError, load_yaml, validate


def _check_entity(name: str, info: ValidationInfo) -> str:
    known = KNOWN_ENTITIES | set(info.data.get("terms") or {}) | set((info.context or {}).get("custom_entities", ()))
    if name not in known:
        raise ValueError(f"unknown entity type {name!r}; known: {', '.join(sorted(known))}")
    return name


EntityType = Annotated[str, AfterValidator(_check_entity)]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str = ""
    # Company vocabulary first: the types it defines are valid in detect, actions and budgets.
    terms_files: dict[Annotated[str, AfterValidator(check_term_type)], Path] = Field(default_factory=dict)
    terms: dict[Annotated[str, AfterValidator(check_term_type)], list[str]] = Field(default_factory=dict, validate_default=True)
    markings: list[str] = Field(default_factory=list)
    source_code: SourceCodeRules = SourceCodeRules()
    protected_documents: ProtectedDocuments = ProtectedDocuments()
    detect: list[EntityType] | Literal["all"] = "all"
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    default_action: ActionSpec = ActionSpec(action="redact")
    actions: dict[EntityType, ActionSpec] = Field(default_factory=dict)
    unknown_content: Literal["block", "pass"] = "block"
    media: Literal["pass", "block", "scan_text_parts"] = "pass"  # what a vendor preset does with media fields (README "Vendors")
    never_restore: list[EntityType] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)

    # Structured payloads (README "Structured payloads"): rules per field, first match wins.
    fields: list[FieldRule] = Field(default_factory=list)
    field_default: Any = "scan"
    nested_json: bool = False
    bad_lines: Literal["block", "drop"] = "block"
    # A block (rule or finding) inside one task of a batch (a JSON array element, a JSON Lines line):
    # refuse the whole batch, or forward the batch without that task (counted as `drop_task`).
    on_block: Literal["refuse", "drop_task"] = "refuse"
    recognizers: list[RecognizerSpec] = Field(default_factory=list)
    allow: AllowSpec = AllowSpec()
    digest: str = ""

    @field_validator("terms_files")
    @classmethod
    def _resolve_terms_files(cls, value: dict[str, Path], info: ValidationInfo) -> dict[str, Path]:
        base = (info.context or {}).get("base_dir", Path.cwd())
        return {name: (base / path).resolve() for name, path in value.items()}

    @field_validator("terms")
    @classmethod
    def _merge_terms_files(cls, value: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        merged = {name: list(terms) for name, terms in value.items()}
        for name, path in (info.data.get("terms_files") or {}).items():
            merged.setdefault(name, []).extend(read_terms_file(path))
        return merged

    @field_validator("budgets")
    @classmethod
    def _budget_entities(cls, value: list[Budget], info: ValidationInfo) -> list[Budget]:
        known = KNOWN_ENTITIES | set(info.data.get("terms") or {})
        for i, budget in enumerate(value):
            if budget.entity not in known:
                raise ValueError(f"budget {i + 1}: unknown entity type {budget.entity!r}")
        return value

    @model_validator(mode="after")
    def _field_default(self) -> Policy:
        FieldRule(select=["$"], action=self.field_default)
        return self

    @cached_property
    def rule_set(self) -> RuleSet:
        return RuleSet(self.fields, FieldRule(select=["$"], action=self.field_default).action)

    @property
    def entities(self) -> frozenset[str]:
        if self.detect == "all":
            return DEFAULT_ENTITIES | frozenset(self.terms) | {r.supported_entity for r in self.recognizers}
        return frozenset(self.detect) | frozenset(self.actions)

    def detection_spec(self, data_dir: Path | str | None = None, fingerprints=None) -> DetectionSpec:
        """What the detection workers need from this policy (hashable, cached per worker);
        `data_dir` (and the config's `fingerprints`, if any) locate the protected-document index."""
        from gateway.detection.company import company_spec

        return DetectionSpec(
            entities=self.entities, min_score=self.min_score,
            recognizers=tuple(p for r in self.recognizers for p in r.patterns_spec()),
            allow=tuple(self.allow.values), allow_regex=tuple(self.allow.regex),
            company=company_spec(self, data_dir, fingerprints),
        )

    def action_for(self, entity_type: str) -> ActionSpec:
        return self.actions.get(entity_type, self.default_action)

    @property
    def reversible_types(self) -> frozenset[str]:
        """Types whose action issues tokens the response restorer must look for."""
        found = {t for t in self.entities if ACTIONS[self.action_for(t).action].reversible}
        found |= {r.token_type() for r in self.fields if not isinstance(r.action, str)
                  and ACTIONS[r.action.action].reversible}  # whole-value rules: CUSTOMER_ID_..., restored too
        return frozenset(found)


class PolicyError(FileError):
    """An invalid policy file."""


def default_policy() -> Policy:
    """Every detector at its default threshold, everything redacted (used by `scan`)."""
    return Policy(name="default", min_score=0.4, digest="default")


def load_policy(path: Path | str) -> Policy:
    try:
        loaded = load_yaml(path)
        context = {"base_dir": Path(path).resolve().parent, "custom_entities": custom_entity_types(loaded.data)}
        policy = validate(loaded, Policy, context)
    except FileError as exc:
        raise PolicyError(exc.path, exc.problems) from None
    sha = hashlib.sha256(Path(path).read_bytes())
    for terms_file in policy.terms_files.values():  # a changed term list is a changed policy
        sha.update(terms_file.read_bytes())
    digest = sha.hexdigest()
    return policy.model_copy(update={"digest": digest})
