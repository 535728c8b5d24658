"""Where the audit log's (and the exposure ledger's) tables live: SQLite
(default, one gateway) or PostgreSQL (several gateways sharing one log).

Connections follow `gateway.storage`'s rule; used synchronously from the log's
writer thread. SQL is written once with `?` placeholders; `locked()` opens a
transaction that holds the log's write lock, which is what serialises appends
across gateways.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from gateway.storage.dsn import redact_dsn
from gateway.storage.postgres import PostgresConnection
from gateway.storage.sqlite import SQLiteFile

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


class SqliteBackend(SQLiteFile):
    for_update = ""
    locked = SQLiteFile.transaction  # BEGIN IMMEDIATE takes SQLite's single write lock up front

    def __init__(self, path: Path, schema: str = SQLITE_SCHEMA, read_only: bool = False):
        super().__init__(path, read_only=read_only)
        columns = {r[1] for r in self.rows("PRAGMA table_info(audit_head)")}
        if columns and "frontier" not in columns:
            raise RuntimeError(f"{path} was written by an older vendorgate (hash chain only); move it aside to start a new log")
        if not read_only:
            self.script(schema)



class PostgresBackend:
    """`locked()` is a transaction whose first statement is `SELECT ... FROM audit_head ... FOR UPDATE`."""

    for_update = " FOR UPDATE"

    def __init__(self, dsn: str, schema: str = POSTGRES_SCHEMA):
        self.where = redact_dsn(dsn)
        self._db = PostgresConnection(dsn, [s for s in schema.split(";") if s.strip()], _SCHEMA_LOCK)

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._db.rows(_pg(sql), args)

    def run(self, sql: str, args: tuple = ()) -> int:
        return self._db.run(_pg(sql), args)

    def run_many(self, sql: str, rows: list[tuple]) -> None:
        self._db.run_many(_pg(sql), rows)

    def locked(self) -> AbstractContextManager:
        return self._db.transaction()

    def snapshot(self) -> AbstractContextManager:
        """Repeatable read: verifying a log other gateways are writing sees one point in time."""
        return self._db.transaction("REPEATABLE READ")

    def close(self) -> None:
        self._db.close()


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


def open_backend(data_dir: Path, dsn: str | None, read_only: bool = False) -> Any:
    return PostgresBackend(dsn) if dsn else SqliteBackend(Path(data_dir) / "audit.sqlite", read_only=read_only)
