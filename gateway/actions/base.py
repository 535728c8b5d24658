"""What every action is: one class, one method, like Presidio's operators.

`apply` returns what the vendor sees and the surrogates it issued; it appends
to nothing. The pipeline stores the issued surrogates before forwarding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.keys import KeyProvider
from gateway.reversible.tokens import Issued


@dataclass(frozen=True)
class ActionContext:
    """Everything an action may need besides the value itself. `collisions` is the
    vault's count of earlier surrogate collisions (fingerprint -> count), so a value
    whose surrogate was taken gets a longer one; `related` holds the PERSON values of the
    same unit (one task) given the same action, so `consistent` can tell that a lone
    "Gonzalez" is the surname of "Maria Gonzalez". The pipeline sets both, never a policy."""

    vendor: str
    entity_type: str
    keys: KeyProvider
    options: Mapping[str, Any] = field(default_factory=dict)
    collisions: Mapping[str, int] = field(default_factory=dict)
    related: tuple[str, ...] = ()
    also: frozenset[str] = frozenset()  # other types detectors gave the value (overlapping findings)


@dataclass(frozen=True)
class Replaced:
    """What the vendor will see instead of a value, and the reversible surrogates issued for it."""

    text: str
    issued: tuple[Issued, ...] = ()


class Action:
    """Turn one sensitive value into what the vendor will see."""

    name: ClassVar[str]
    reversible: ClassVar[bool] = False
    options: ClassVar[frozenset[str]] = frozenset()

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise ValueError for an option value the action cannot use (names are
        checked against `options` by the policy)."""

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        raise NotImplementedError
