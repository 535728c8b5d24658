"""Policy files: what to detect for a vendor and what to do with each finding.

A policy is YAML; `load_policy` validates it and reports problems as
`file:line: field: message`. An invalid policy stops the gateway from starting.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from gateway.actions import ACTIONS
from gateway.detection.entities import KNOWN_ENTITIES
from gateway.detection.spec import DetectionSpec
from gateway.policy_detection import AllowSpec, RecognizerSpec, custom_entity_types
from gateway.yamlfile import FileError, load_yaml, validate


class ActionSpec(BaseModel):
    """`redact` or `{action: mask, keep: 4}`: an action name and its options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"action": value}
        if isinstance(value, dict) and "options" not in value:
            rest = {k: v for k, v in value.items() if k != "action"}
            return {"action": value.get("action"), "options": rest}
        return value

    @model_validator(mode="after")
    def _known(self) -> "ActionSpec":
        action = ACTIONS.get(self.action)
        if action is None:
            raise ValueError(f"unknown action {self.action!r}; known: {', '.join(sorted(ACTIONS))}")
        unknown = set(self.options) - set(action.options)
        if unknown:
            allowed = ", ".join(sorted(action.options)) or "none"
            raise ValueError(f"action {self.action!r} has no option {', '.join(sorted(unknown))}; allowed: {allowed}")
        return self


def _check_entity(name: str, info: ValidationInfo) -> str:
    known = KNOWN_ENTITIES | set((info.context or {}).get("custom_entities", ()))
    if name not in known:
        raise ValueError(f"unknown entity type {name!r}; known: {', '.join(sorted(known))}")
    return name


EntityType = Annotated[str, AfterValidator(_check_entity)]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str = ""
    detect: list[EntityType] | Literal["all"] = "all"
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    default_action: ActionSpec = ActionSpec(action="redact")
    actions: dict[EntityType, ActionSpec] = Field(default_factory=dict)
    unknown_content: Literal["block", "pass"] = "block"
    recognizers: list[RecognizerSpec] = Field(default_factory=list)
    allow: AllowSpec = AllowSpec()
    digest: str = ""

    @property
    def entities(self) -> frozenset[str]:
        if self.detect == "all":
            return KNOWN_ENTITIES | {r.supported_entity for r in self.recognizers}
        return frozenset(self.detect) | frozenset(self.actions)

    def detection_spec(self) -> DetectionSpec:
        """What the detection workers need from this policy (hashable, cached per worker)."""
        return DetectionSpec(
            entities=self.entities, min_score=self.min_score,
            recognizers=tuple(p for r in self.recognizers for p in r.patterns_spec()),
            allow=tuple(self.allow.values), allow_regex=tuple(self.allow.regex),
        )

    def action_for(self, entity_type: str) -> ActionSpec:
        return self.actions.get(entity_type, self.default_action)


class PolicyError(FileError):
    """An invalid policy file."""


def default_policy() -> Policy:
    """Every detector at its default threshold, everything redacted (used by `scan`)."""
    return Policy(name="default", min_score=0.4, digest="default")


def load_policy(path: Path | str) -> Policy:
    try:
        loaded = load_yaml(path)
        policy = validate(loaded, Policy, {"custom_entities": custom_entity_types(loaded.data)})
    except FileError as exc:
        raise PolicyError(exc.path, exc.problems) from None
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return policy.model_copy(update={"digest": digest})
