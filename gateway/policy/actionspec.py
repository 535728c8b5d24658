"""An action as a policy names it: `redact`, or `{action: mask, keep: 4}`.

Its own module because both the policy (`model.py`) and field rules (`fields.py`) name actions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.actions import ACTIONS


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
    def _known(self) -> ActionSpec:
        action = ACTIONS.get(self.action)
        if action is None:
            raise ValueError(f"unknown action {self.action!r}; known: {', '.join(sorted(ACTIONS))}")
        unknown = set(self.options) - set(action.options)
        if unknown:
            allowed = ", ".join(sorted(action.options)) or "none"
            raise ValueError(f"action {self.action!r} has no option {', '.join(sorted(unknown))}; allowed: {allowed}")
        action.check_options(self.options)
        return self
