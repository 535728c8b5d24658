"""Transform the request and persist what it issues, before anything is forwarded.

Reversible actions hand the vendor surrogates; the vault must hold them before
the request leaves, or the answer could not be restored. A surrogate that is
already taken by another original (`SurrogateCollision`) makes us transform
again with the vault's collision counts, so the newcomer gets a different one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from gateway.actions import Issued
from gateway.bodies import Document
from gateway.decide import Decision
from gateway.keys import KeyProvider
from gateway.tokens import find_tokens
from gateway.transform import transform
from gateway.vault import SurrogateCollision, TokenVault

MAX_TRIES = 3


class IssueError(Exception):
    """Surrogates could not be persisted: the request must not be forwarded."""


@dataclass
class Rendered:
    parts: list[bytes]
    issued: list[Issued]
    seen: list = field(default_factory=list)


def render(documents: list[Document], decision: Decision, vendor: str, keys: KeyProvider,
           extra_options: dict) -> Rendered:
    issued: list[Issued] = []
    seen: list = []
    parts: list[bytes] = []
    offset = 0
    for doc in documents:
        replacements = {}
        for i, f in enumerate(doc.fields):
            planned = decision.plans.get(offset + i)
            if planned:
                replacements[i] = transform(f.text, planned, vendor, keys, issued, extra_options, seen)
        parts.append(doc.render(replacements))
        offset += len(doc.fields)
    return Rendered(parts, issued, seen)


async def render_and_store(documents: list[Document], decision: Decision, vendor: str, keys: KeyProvider,
                           vault: TokenVault | None) -> Rendered:
    """Raises `transform.ActionFailed` (a value the policy can't protect) or `IssueError`."""
    for _ in range(MAX_TRIES):
        extra = {"collisions": vault.collisions(vendor)} if vault is not None else {}
        rendered = render(documents, decision, vendor, keys, extra)
        if not rendered.issued:
            return rendered
        if vault is None:
            raise IssueError("the policy issues reversible tokens but no token vault is open")
        try:
            await vault.store(vendor, rendered.issued)
            return rendered
        except SurrogateCollision:
            continue
        except Exception as exc:
            raise IssueError(f"token vault unavailable: {type(exc).__name__}") from None
    raise IssueError(f"surrogates still collided after {MAX_TRIES} tries")


def caller_literals(texts: Iterable[str], entity_types: Iterable[str], issued: list[Issued]) -> set[str]:
    """Token-shaped strings the caller wrote, and issued fakes the caller also wrote
    literally: the restorer must leave them as they are in the answer."""
    texts = list(texts)
    types = set(entity_types)
    found: set[str] = set()
    if not types:
        return found
    for text in texts:
        found |= find_tokens(text, types)
    haystack = "\n".join(texts).lower()
    found |= {i.surrogate for i in issued if i.surrogate.lower() in haystack}
    return found
