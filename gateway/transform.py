"""Apply the planned actions to one field's text."""

from __future__ import annotations

from gateway.actions import ActionContext, Issued, get_action
from gateway.decide import Planned
from gateway.keys import KeyProvider


def transform(text: str, planned: list[Planned], vendor: str, keys: KeyProvider, issued: list[Issued],
              seen: list[tuple[Planned, str, str]] | None = None) -> str:
    """`seen`, when given, collects (span, original, what the vendor gets) for the exposure ledger."""
    out = []
    cursor = 0
    for p in sorted(planned, key=lambda p: p.start):
        ctx = ActionContext(vendor=vendor, entity_type=p.entity_type, keys=keys,
                            options=p.action.options, issued=issued)
        out.append(text[cursor:p.start])
        replaced = get_action(p.action.action).apply(text[p.start:p.end], ctx)
        if seen is not None:
            seen.append((p, text[p.start:p.end], replaced))
        out.append(replaced)
        cursor = p.end
    out.append(text[cursor:])
    return "".join(out)
