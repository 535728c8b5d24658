"""SQLite files: one connection per store, WAL, a busy timeout, one lock.

The connection is shared by the store's threads, so every statement holds the
lock; a write transaction holds it throughout and starts with BEGIN IMMEDIATE,
which takes the file's write lock up front: other processes on the same file
wait (up to the busy timeout) instead of failing half-way.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

BUSY_TIMEOUT_SECONDS = 30


def connect(path: Path, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Autocommit (transactions are explicit), WAL so readers never block the writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    return db


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Never writes, not even SQLite's -wal/-shm files (read-only commands, an auditor's copy).
    A file a gateway has open has its -wal file and is read through it; without one no writer
    is connected, and the file is read as immutable (which also works on a read-only copy)."""
    if not path.is_file():
        raise FileNotFoundError(2, "no such database", str(path))
    live = path.with_name(path.name + "-wal").exists()
    uri = "file:" + quote(str(path.resolve())) + ("?mode=ro" if live else "?mode=ro&immutable=1")
    db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS)
    db.execute("SELECT count(*) FROM sqlite_master").fetchall()
    return db


class SQLiteFile:
    """`synchronous`: NORMAL survives a crashed process; FULL also an OS crash, at an fsync per commit."""

    def __init__(self, path: Path | str, schema: str = "", synchronous: str = "NORMAL", read_only: bool = False):
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = Path(path)
        self.where = str(self.path)
        self._lock = threading.RLock()
        self.read_only = read_only
        self._db = connect_read_only(self.path) if read_only else connect(self.path, synchronous)
        if schema and not read_only:
            self.script(schema)

    def script(self, sql: str) -> None:
        """Several statements (a schema), outside any transaction."""
        with self._lock:
            self._db.executescript(sql)

    def execute(self, sql: str, args: Iterable = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, tuple(args))

    def rows(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def run(self, sql: str, args: Iterable = ()) -> int:
        """One statement; returns the rows it changed."""
        with self._lock:
            return self._db.execute(sql, tuple(args)).rowcount

    def run_many(self, sql: str, rows: Iterable) -> None:
        with self._lock:
            self._db.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction: committed at the end, rolled back on any exception."""
        with self._lock:
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
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
