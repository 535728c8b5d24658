"""What every action is: one class, one method, like Presidio's operators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from gateway.keys import KeyProvider


@dataclass(frozen=True)
class Issued:
    """A reversible surrogate handed to a vendor; the pipeline stores it in the vault."""

    surrogate: str
    entity_type: str
    original: str = field(repr=False)


@dataclass
class ActionContext:
    """Everything an action may need besides the value itself."""

    vendor: str
    entity_type: str
    keys: KeyProvider
    options: Mapping[str, Any] = field(default_factory=dict)
    issued: list[Issued] = field(default_factory=list)


class Action:
    """Turn one sensitive value into what the vendor will see."""

    name: ClassVar[str]
    reversible: ClassVar[bool] = False
    options: ClassVar[frozenset[str]] = frozenset()

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise ValueError for an option value the action cannot use (names are
        checked against `options` by the policy)."""

    def apply(self, value: str, ctx: ActionContext) -> str:
        raise NotImplementedError
