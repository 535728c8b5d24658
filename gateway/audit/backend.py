"""Where the audit log's (and the exposure ledger's) tables live: SQLite
(default, one gateway) or PostgreSQL (several gateways sharing one log).

Both are used synchronously from one writer thread. SQL is written once with
`?` placeholders; `locked()` opens a transaction that holds the log's write
lock, which is what serialises appends across gateways.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gateway.storage.dsn import redact_dsn

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    vendor TEXT NOT NULL,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_vendor_ts ON audit (vendor, ts);
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
CREATE TABLE IF NOT EXISTS audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    log_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    frontier TEXT NOT NULL,
    checkpoint_size INTEGER NOT NULL,
    checkpoint_time TEXT NOT NULL,
    pruned_size INTEGER NOT NULL,
    pruned_hash TEXT NOT NULL,
    pruned_frontier TEXT NOT NULL,
    key_id TEXT NOT NULL,
    mac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoint (
    tree_size INTEGER PRIMARY KEY,
    checkpoint TEXT NOT NULL,
    proof TEXT
);
"""

POSTGRES_SCHEMA = SQLITE_SCHEMA.replace("INTEGER", "BIGINT")
_SCHEMA_LOCK = 7_346_205_118  # pg_advisory_xact_lock id: gateways starting together create tables once


class SqliteBackend:
    for_update = ""

    def __init__(self, path: Path, schema: str = SQLITE_SCHEMA, read_only: bool = False):
        self.where = str(path)
        if read_only:
            self._db = _open_read_only(path)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(audit_head)")}
        if columns and "frontier" not in columns:
            raise RuntimeError(f"{path} was written by an older vendorgate (hash chain only); move it aside to start a new log")
        self._db.executescript(schema)

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._db.execute(sql, args).fetchall()

    def run(self, sql: str, args: tuple = ()) -> int:
        return self._db.execute(sql, args).rowcount

    def run_many(self, sql: str, rows: list[tuple]) -> None:
        self._db.executemany(sql, rows)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """BEGIN IMMEDIATE takes SQLite's single write lock up front."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: in WAL mode every read inside sees one point in time."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


def _open_read_only(path: Path) -> sqlite3.Connection:
    """Never writes, not even SQLite's -wal/-shm files (read-only commands). A log a gateway has open
    has its -wal file, and is read through it; without one no writer is connected, and the file is read
    as immutable (which also works on a read-only copy)."""
    if not path.is_file():
        raise FileNotFoundError(2, "no such database", str(path))
    live = path.with_name(path.name + "-wal").exists()
    uri = "file:" + quote(str(path.resolve())) + ("?mode=ro" if live else "?mode=ro&immutable=1")
    db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("SELECT count(*) FROM sqlite_master").fetchall()
    return db


class PostgresBackend:
    """One autocommit connection; `locked()` is a transaction whose first
    statement is `SELECT ... FROM audit_head ... FOR UPDATE`."""

    for_update = " FOR UPDATE"

    def __init__(self, dsn: str, schema: str = POSTGRES_SCHEMA):
        import psycopg

        self.where = redact_dsn(dsn)
        self._db = psycopg.connect(dsn, autocommit=True)
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in filter(str.strip, schema.split(";")):
                self._db.execute(statement)

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._db.execute(_pg(sql), args).fetchall()

    def run(self, sql: str, args: tuple = ()) -> int:
        return self._db.execute(_pg(sql), args).rowcount

    def run_many(self, sql: str, rows: list[tuple]) -> None:
        with self._db.cursor() as cur:
            cur.executemany(_pg(sql), rows)

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._db.transaction():
            yield

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Repeatable read: verifying a log other gateways are writing sees one point in time."""
        with self._db.transaction():
            self._db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    def close(self) -> None:
        self._db.close()


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")



def open_backend(data_dir: Path, dsn: str | None, read_only: bool = False) -> Any:
    return PostgresBackend(dsn) if dsn else SqliteBackend(Path(data_dir) / "audit.sqlite", read_only=read_only)
