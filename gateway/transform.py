"""Apply the planned actions to one field's text."""

from __future__ import annotations

from typing import Any, Mapping

from gateway.actions import ActionContext, Issued, get_action
from gateway.actions.fpe import FPEDomainTooSmall
from gateway.decide import Planned
from gateway.keys import KeyProvider
from gateway.reversible.tokens import TokenError


class ActionFailed(Exception):
    """An action could not protect a value (e.g. too few digits for fpe); the
    request is refused. Names the type and action, never the value."""

    def __init__(self, entity_type: str, action: str, reason: str):
        self.entity_type = entity_type
        super().__init__(f"action {action!r} cannot protect a {entity_type} value ({reason}); request not forwarded")


def transform(text: str, planned: list[Planned], vendor: str, keys: KeyProvider, issued: list[Issued],
              extra_options: Mapping[str, Any] | None = None,
              seen: list[tuple[Planned, str, str]] | None = None) -> str:
    """`extra_options` are pipeline-internal options (the vault's "collisions");
    `seen`, when given, collects (span, original, what the vendor gets) for the exposure ledger."""
    out = []
    cursor = 0
    for p in sorted(planned, key=lambda p: p.start):
        ctx = ActionContext(vendor=vendor, entity_type=p.entity_type, keys=keys,
                            options={**p.action.options, **(extra_options or {})}, issued=issued)
        out.append(text[cursor:p.start])
        try:
            replaced = get_action(p.action.action).apply(text[p.start:p.end], ctx)
        except (FPEDomainTooSmall, TokenError) as exc:
            raise ActionFailed(p.entity_type, p.action.action, str(exc)) from None
        except ValueError as exc:
            raise ActionFailed(p.entity_type, p.action.action, type(exc).__name__) from None
        if seen is not None:
            seen.append((p, text[p.start:p.end], replaced))
        out.append(replaced)
        cursor = p.end
    out.append(text[cursor:])
    return "".join(out)
