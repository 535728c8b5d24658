"""Exposure budgets: how many distinct values of a type a vendor may receive in clear.

A value counts when the policy's action for it is `allow` (the vendor sees it
as is). Each value is counted as a keyed fingerprint, HMAC-SHA256 under a
per-vendor key of its type and case-folded text, never the value. Windows are
fixed and aligned to the Unix epoch in UTC (a `1d` window resets at midnight
UTC). Sending a value already counted in the window costs nothing.

Spending is one atomic step in the shared store (a Lua script in Redis, an
immediate transaction in SQLite), so gateway instances racing for the last
units cannot both get them. Past the cap the budget's `over` decides: `block`
refuses the request and spends nothing; any other action replaces `allow` for
the values that did not fit.
"""

from __future__ import annotations

import asyncio
import math
import re
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes, hmac

from gateway.keys import KeyProvider
from gateway.pipeline.decide import Decision, Planned
from gateway.policy import ActionSpec, Policy
from gateway.policy.company import Budget

KEY_PURPOSE = "exposure-budget"
SQLITE_FILE = "budgets.sqlite"
_SPACES = re.compile(r"\s+")


class BudgetError(Exception):
    """The budget store could not be reached; the request must not be forwarded."""


class BudgetStore(Protocol):
    async def spend(self, key: str, members: list[str], limit: int, ttl: int, all_or_nothing: bool) -> list[bool]:
        """Atomically add the members that fit under `limit`; True per member the vendor may receive."""
        ...

    async def used(self, key: str) -> int: ...

    async def close(self) -> None: ...


_SPEND_LUA = """
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local all_or_nothing = ARGV[3] == '1'
local used = redis.call('SCARD', KEYS[1])
local result = {}
local fresh = {}
for i = 4, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then
    result[i - 3] = 1
  else
    result[i - 3] = 0
    table.insert(fresh, i)
  end
end
if all_or_nothing and used + #fresh > limit then
  return result
end
for _, i in ipairs(fresh) do
  if used < limit then
    redis.call('SADD', KEYS[1], ARGV[i])
    used = used + 1
    result[i - 3] = 1
  end
end
if #fresh > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return result
"""


class RedisBudgetStore:
    """One Redis set per vendor, type and window; shared by every gateway instance."""

    def __init__(self, url: str, prefix: str = "vendorgate"):
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._client = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._spend = self._client.register_script(_SPEND_LUA)

    async def spend(self, key: str, members: list[str], limit: int, ttl: int, all_or_nothing: bool) -> list[bool]:
        if not members:
            return []
        try:
            flags = await self._spend(keys=[self._key(key)], args=[limit, ttl, int(all_or_nothing), *members])
        except Exception as exc:
            raise BudgetError(f"redis: {type(exc).__name__}") from None
        return [bool(int(f)) for f in flags]

    async def used(self, key: str) -> int:
        try:
            return int(await self._client.scard(self._key(key)))
        except Exception as exc:
            raise BudgetError(f"redis: {type(exc).__name__}") from None

    async def close(self) -> None:
        await self._client.aclose()

    def _key(self, key: str) -> str:
        return f"{self.prefix}:budget:{key}"


class SQLiteBudgetStore:
    """Single-machine default in the data dir; BEGIN IMMEDIATE serialises processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS budget_members (key TEXT NOT NULL, member TEXT NOT NULL, expires REAL NOT NULL,"
            " PRIMARY KEY (key, member)) WITHOUT ROWID;"
            "CREATE INDEX IF NOT EXISTS budget_members_expires ON budget_members (expires);"
        )

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SQLiteBudgetStore:
        return cls(Path(data_dir) / SQLITE_FILE)

    async def spend(self, key: str, members: list[str], limit: int, ttl: int, all_or_nothing: bool) -> list[bool]:
        if not members:
            return []
        return await asyncio.to_thread(self._spend, key, members, limit, ttl, all_or_nothing)

    def _spend(self, key: str, members: list[str], limit: int, ttl: int, all_or_nothing: bool) -> list[bool]:
        now = time.time()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM budget_members WHERE expires < ?", (now,))
                used = db.execute("SELECT COUNT(*) FROM budget_members WHERE key = ?", (key,)).fetchone()[0]
                known = {
                    r[0] for r in db.execute(
                        f"SELECT member FROM budget_members WHERE key = ? AND member IN ({','.join('?' * len(members))})",
                        (key, *members),
                    )
                }
                result = [m in known for m in members]
                fresh = [i for i, m in enumerate(members) if m not in known]
                if not (all_or_nothing and used + len(fresh) > limit):
                    for i in fresh:
                        if used >= limit:
                            break
                        db.execute("INSERT INTO budget_members (key, member, expires) VALUES (?, ?, ?)",
                                   (key, members[i], now + ttl))
                        used += 1
                        result[i] = True
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return result

    async def used(self, key: str) -> int:
        def count() -> int:
            with self._lock:
                row = self._db.execute("SELECT COUNT(*) FROM budget_members WHERE key = ? AND expires >= ?",
                                       (key, time.time())).fetchone()
            return int(row[0])

        return await asyncio.to_thread(count)

    async def close(self) -> None:
        self._db.close()


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


def open_store(store_config, data_dir: Path) -> BudgetStore:
    """Redis when the config names one (shared by instances), else SQLite in the data dir."""
    if store_config is not None:
        return RedisBudgetStore(store_config.redis, store_config.prefix)
    return SQLiteBudgetStore.in_data_dir(data_dir)
