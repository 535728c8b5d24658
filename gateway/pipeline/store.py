"""The `store` stage: persist what a request issues, before anything is forwarded.

Reversible actions hand the vendor surrogates; the vault must hold them before
the request leaves, or the answer could not be restored. A surrogate that is
already taken by another original (`SurrogateCollision`) makes the pipeline
transform again with the vault's collision counts, so the newcomer gets a
different one.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.refusal import Refusal
from gateway.reversible.tokens import ENCRYPT_PREFIX, Issued, find_tokens
from gateway.reversible.vault import SurrogateCollision, TokenVault

MAX_TRIES = 3


class IssueError(Refusal):
    """Surrogates could not be persisted: the request must not be forwarded."""

    def __init__(self, message: str):
        super().__init__(503, f"{message}; request not forwarded", outcome="error")


async def store_issued(vault: TokenVault | None, vendor: str, issued: tuple[Issued, ...], scope: str = "") -> None:
    """Raises `SurrogateCollision` (transform again) or `IssueError` (fail closed)."""
    if not issued:
        return
    if vault is None:
        raise IssueError("the policy issues reversible tokens but no token vault is open")
    try:
        await vault.store(vendor, list(issued), scope=scope) if scope else await vault.store(vendor, list(issued))
    except SurrogateCollision:
        raise
    except Exception as exc:
        raise IssueError(f"token vault unavailable: {type(exc).__name__}") from None


async def scope_stateless(vault: TokenVault | None, vendor: str, scope: str, replacements) -> None:
    """Encrypt tokens carry their value and have no vault row; restore scoping still needs to know
    whom they were issued to."""
    tokens = {r.sent for r in replacements if r.action == "encrypt" and r.sent.startswith(ENCRYPT_PREFIX)}
    if not scope or not tokens or vault is None:
        return
    try:
        await vault.add_to_scope(vendor, scope, tokens)
    except Exception as exc:
        raise IssueError(f"token vault unavailable: {type(exc).__name__}") from None


def caller_literals(texts: Iterable[str], entity_types: Iterable[str], issued: list[Issued]) -> set[str]:
    """Token-shaped strings the caller wrote, and issued fakes the caller also wrote
    literally: the restorer must leave them as they are in the answer."""
    texts = list(texts)
    types = set(entity_types)
    found: set[str] = set()
    if not types:
        return found
    joined = "\n".join(texts)  # a line break is a token boundary: one scan finds what each text holds
    found |= find_tokens(joined, types)
    haystack = joined.lower()
    found |= {i.surrogate for i in issued if i.surrogate.lower() in haystack}
    return found
