"""Exposure budgets: how many distinct values of a type a vendor may receive in clear.

A value counts when the policy's action for it is `allow` (the vendor sees it
as is). Each value is counted as a keyed fingerprint, HMAC-SHA256 under a
per-vendor key of its type and case-folded text, never the value. Windows are
fixed and aligned to the Unix epoch in UTC (a `1d` window resets at midnight
UTC). Sending a value already counted in the window costs nothing.

Spending is one atomic step in the shared store (`budget_store`), so gateway
instances racing for the last units cannot both get them. Past the cap the
budget's `over` decides: `block` refuses the request and spends nothing; any
other action replaces `allow` for the values that did not fit.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives import hashes, hmac

from gateway.keys import KeyProvider
from gateway.pipeline.budget_store import BudgetStore
from gateway.pipeline.decide import Decision, Planned
from gateway.policy import ActionSpec, Policy
from gateway.policy.company import Budget

KEY_PURPOSE = "exposure-budget"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Spent:
    """The `budget` stage: the decision after spending, and the types whose blocking budget ran out."""

    decision: Decision
    exhausted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Standing:
    """Where one vendor stands against one budget right now."""

    vendor: str
    budget: Budget
    used: int
    resets_in: int  # seconds until the window ends


def window_of(budget: Budget, now: float) -> tuple[int, int]:
    """The current window's number and the seconds left in it."""
    size = budget.window_seconds
    bucket = int(now // size)
    return bucket, max(1, math.ceil((bucket + 1) * size - now))


def budget_key(vendor: str, budget: Budget, bucket: int) -> str:
    return f"{vendor}:{budget.entity}:{budget.window_seconds}:{bucket}"


class Budgets:
    def __init__(self, store: BudgetStore, keys: KeyProvider):
        self.store = store
        self.keys = keys
        self._vendor_keys: dict[str, bytes] = {}

    def digest(self, vendor: str, entity_type: str, value: str) -> str:
        """Keyed fingerprint of a value: what the store counts instead of the value."""
        key = self._vendor_keys.get(vendor)
        if key is None:
            key = self._vendor_keys[vendor] = self.keys.derive(KEY_PURPOSE, vendor)
        h = hmac.HMAC(key, hashes.SHA256())
        h.update(f"{entity_type}\0{_SPACES.sub(' ', value.strip()).casefold()}".encode("utf-8", "surrogatepass"))
        return h.finalize()[:16].hex()

    async def enforce(self, vendor: str, policy: Policy, texts: list[str], decision: Decision) -> Spent:
        """Spend budget for the values about to go out in clear. Returns a new decision in
        which values that did not fit under a non-blocking budget get the budget's `over`
        action, and the types whose blocking budget is exhausted."""
        exhausted: list[str] = []
        plans = {index: list(spans) for index, spans in decision.plans.items()}
        actions = Counter(decision.actions)
        now = time.time()
        for budget in policy.budgets:
            spots = [
                (index, i, self.digest(vendor, p.entity_type, texts[index][p.start:p.end]))
                for index, spans in plans.items()
                for i, p in enumerate(spans)
                if p.entity_type == budget.entity and p.action.action == "allow"
            ]
            if not spots:
                continue
            members = list(dict.fromkeys(d for _, _, d in spots))
            bucket, ttl = window_of(budget, now)
            allowed = await self.store.spend(budget_key(vendor, budget, bucket), members, budget.max_distinct,
                                             ttl + 60, all_or_nothing=budget.over == "block")
            over = {m for m, ok in zip(members, allowed) if not ok}
            if not over:
                continue
            if budget.over == "block":
                exhausted.append(budget.entity)
                continue
            replacement = ActionSpec(action=budget.over)
            for index, i, digest in spots:
                if digest in over:
                    p = plans[index][i]
                    plans[index][i] = Planned(p.start, p.end, p.entity_type, replacement)
                    actions["allow"] -= 1
                    actions[budget.over] += 1
        if actions.get("allow", 1) <= 0:
            del actions["allow"]
        spent = replace(decision, plans=plans, actions=actions)
        return Spent(spent, tuple(sorted(set(exhausted))))

    async def standing(self, vendor: str, policy: Policy) -> list[Standing]:
        now = time.time()
        out = []
        for budget in policy.budgets:
            bucket, left = window_of(budget, now)
            out.append(Standing(vendor, budget, await self.store.used(budget_key(vendor, budget, bucket)), left))
        return out

    async def close(self) -> None:
        await self.store.close()
