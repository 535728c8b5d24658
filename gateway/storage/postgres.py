"""PostgreSQL through one driver, psycopg 3: sync connections for stores used from
a writer thread, a worker process or the CLI; async connections for the vault,
which the event loop calls directly.

Every connection is autocommit: transactions are explicit. Tables are created
under a transaction-scoped advisory lock, so processes starting together
create them once. A connection lost between transactions (a server restart)
is reopened on next use; one lost inside a transaction fails that transaction.
Connection errors never carry the DSN's password (`dsn.scrub`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from gateway.storage.dsn import redact_dsn, scrub

CONNECT_TIMEOUT_SECONDS = 10
R = TypeVar("R")


class PostgresConnection:
    """One sync connection per store and one lock, like `SQLiteFile`: every
    statement holds the lock, a transaction holds it throughout."""

    def __init__(self, dsn: str, schema: Sequence[str] = (), lock_id: int | None = None):
        self.where = f"PostgreSQL {redact_dsn(dsn)}"
        self._dsn, self._schema, self._lock_id = dsn, list(schema), lock_id
        self._lock = threading.RLock()
        self._depth = 0  # open transactions on this connection
        self._db = self._connect()

    def _connect(self) -> Any:
        import psycopg

        with _scrubbed(self._dsn):
            db = psycopg.connect(self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        if self._schema:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
                for statement in self._schema:
                    db.execute(statement)
        return db

    @property
    def connection(self) -> Any:
        """The psycopg connection, reopened first if it was lost outside a transaction."""
        with self._lock:
            if self._depth == 0 and (self._db.broken or self._db.closed):
                self._db = self._connect()
            return self._db

    def call(self, work: Callable[[Any], R]) -> R:
        """`work(connection)`; after a connection lost during it, reconnect once and run it again
        (for work that is a whole transaction, or a read)."""
        import psycopg

        with self._lock:
            try:
                return work(self.connection)
            except psycopg.OperationalError:
                if self._depth or not (self._db.broken or self._db.closed):
                    raise
                return work(self.connection)

    def rows(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self.connection.execute(sql, tuple(args)).fetchall()

    def run(self, sql: str, args: Iterable = ()) -> int:
        with self._lock:
            return self.connection.execute(sql, tuple(args)).rowcount

    def run_many(self, sql: str, rows: Iterable) -> None:
        with self._lock, self.connection.cursor() as cur:
            cur.executemany(sql, list(rows))

    @contextmanager
    def transaction(self, isolation: str = "") -> Iterator[Any]:
        """`isolation`: e.g. "REPEATABLE READ" for reads that must see one point in time."""
        with self._lock:
            db = self.connection
            with db.transaction():
                self._depth += 1
                try:
                    if isolation:
                        db.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
                    yield db
                finally:
                    self._depth -= 1

    def close(self) -> None:
        with self._lock:
            self._db.close()


class AsyncPostgresPool:
    """Up to `size` async connections, opened as needed; a lost one is replaced on next use."""

    def __init__(self, dsn: str, size: int = 4):
        self.where = f"PostgreSQL {redact_dsn(dsn)}"
        self._dsn, self._size = dsn, size
        self._idle: asyncio.Queue = asyncio.Queue()
        self._opened = 0
        self._closed = False

    async def _connect(self) -> Any:
        import psycopg

        with _scrubbed(self._dsn):
            return await psycopg.AsyncConnection.connect(self._dsn, autocommit=True,
                                                         connect_timeout=CONNECT_TIMEOUT_SECONDS)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        if self._closed:
            raise RuntimeError(f"the pool for {self.where} is closed")
        if self._idle.empty() and self._opened < self._size:
            self._opened += 1
            try:
                conn = await self._connect()
            except BaseException:
                self._opened -= 1
                raise
        else:
            conn = await self._idle.get()
            if conn.broken or conn.closed:
                try:
                    conn = await self._connect()
                except BaseException:
                    self._opened -= 1
                    raise
        try:
            yield conn
        finally:
            if self._closed:
                await conn.close()
            else:
                self._idle.put_nowait(conn)

    async def create(self, schema: str, lock_key: str) -> None:
        """Run `schema` under an advisory lock on `lock_key`, so concurrent starts create it once."""
        async with self.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_key,))
            await conn.execute(schema)

    async def rows(self, sql: str, args: Sequence = ()) -> list[tuple]:
        async with self.connection() as conn:
            cur = await conn.execute(sql, args)
            return await cur.fetchall()

    async def run_many(self, sql: str, rows: list[Sequence]) -> None:
        async with self.connection() as conn, conn.cursor() as cur:
            await cur.executemany(sql, rows)

    async def close(self) -> None:
        self._closed = True
        while not self._idle.empty():
            await self._idle.get_nowait().close()


@contextmanager
def _scrubbed(dsn: str) -> Iterator[None]:
    """Connection errors keep their type, without the DSN's password in the message."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        message = scrub(str(exc), dsn)
        if message == str(exc):
            raise
        raise type(exc)(message) from None
