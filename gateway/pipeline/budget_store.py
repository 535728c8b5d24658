"""Where exposure budgets are counted: Redis (shared by gateway instances) or SQLite
in the data dir. Spending is one atomic step: a Lua script in Redis, an immediate
transaction in SQLite. Connections follow `gateway.storage`'s rule.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from gateway.storage.redis import open_redis
from gateway.storage.sqlite import SQLiteFile
from gateway.storage.thread import StoreThread

SQLITE_FILE = "budgets.sqlite"


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
        self.prefix = prefix
        self._client = open_redis(url)
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
        self._db = SQLiteFile(
            self.path,
            "CREATE TABLE IF NOT EXISTS budget_members (key TEXT NOT NULL, member TEXT NOT NULL, expires REAL NOT NULL,"
            " PRIMARY KEY (key, member)) WITHOUT ROWID;"
            "CREATE INDEX IF NOT EXISTS budget_members_expires ON budget_members (expires);",
        )
        self._thread = StoreThread("budgets")

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SQLiteBudgetStore:
        return cls(Path(data_dir) / SQLITE_FILE)

    async def spend(self, key: str, members: list[str], limit: int, ttl: int, all_or_nothing: bool) -> list[bool]:
        if not members:
            return []
        return await self._thread.run(self._spend, key, members, limit, ttl, all_or_nothing)

    def _spend(self, key: str, members: list[str], limit: int, ttl: int, all_or_nothing: bool) -> list[bool]:
        now = time.time()
        db = self._db
        with db.transaction():
            db.run("DELETE FROM budget_members WHERE expires < ?", (now,))
            used = db.rows("SELECT COUNT(*) FROM budget_members WHERE key = ?", (key,))[0][0]
            known = {
                r[0] for r in db.rows(
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
                    db.run("INSERT INTO budget_members (key, member, expires) VALUES (?, ?, ?)",
                           (key, members[i], now + ttl))
                    used += 1
                    result[i] = True
        return result

    async def used(self, key: str) -> int:
        rows = await self._thread.run(self._db.rows, "SELECT COUNT(*) FROM budget_members WHERE key = ? AND expires >= ?",
                                      (key, time.time()))
        return int(rows[0][0])

    async def close(self) -> None:
        await self._thread.run(self._db.close)
        await self._thread.close()


def open_store(store_config, data_dir: Path) -> BudgetStore:
    """Redis when the config names one (shared by instances), else SQLite in the data dir."""
    if store_config is not None:
        return RedisBudgetStore(store_config.redis, store_config.prefix)
    return SQLiteBudgetStore.in_data_dir(data_dir)
