"""Where fingerprints live. SQLite here; `pgstore` is the PostgreSQL `FingerprintStore`.

Only keyed hashes, their normalised positions and document metadata are
stored, never document text. A version counter bumps on every change so a
process holding the hashes in memory knows when to reload.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from gateway.detection.fingerprint.records import DocumentInfo

FILE_NAME = "fingerprints.sqlite"


@dataclass(frozen=True)
class StoredFingerprints:
    """Every fingerprint of every document, as parallel arrays."""

    hashes: np.ndarray
    doc_ids: np.ndarray
    positions: np.ndarray


class FingerprintStore(Protocol):
    def read_settings(self) -> dict[str, str]: ...

    def write_settings(self, values: dict[str, str]) -> None: ...

    def add_document(
        self, label: str, path: str, mode: str, normalised_length: int, hashes: np.ndarray, positions: np.ndarray
    ) -> DocumentInfo: ...

    def documents(self) -> list[DocumentInfo]: ...

    def remove(self, label_or_doc_id: str | int) -> int: ...

    def version(self) -> int: ...

    def load(self) -> StoredFingerprints: ...

    def compact(self) -> None: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id INTEGER PRIMARY KEY,
    label TEXT NOT NULL,
    path TEXT NOT NULL,
    mode TEXT NOT NULL,
    n_fingerprints INTEGER NOT NULL,
    normalised_length INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_label ON documents (label);
CREATE TABLE IF NOT EXISTS fingerprints (
    hash INTEGER NOT NULL,
    doc_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (hash, doc_id, position)
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('version', '0');
"""


class SQLiteFingerprintStore:
    """One SQLite file; the fingerprints table is clustered on hash (its index on hash)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SQLiteFingerprintStore:
        return cls(Path(data_dir) / FILE_NAME)

    def compact(self) -> None:
        """Rebuild the file tightly (after bulk adds or removes) and fold the WAL into it."""
        with self._lock:
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._db.close()

    def read_settings(self) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM meta WHERE key != 'version'").fetchall()
        return dict(rows)

    def write_settings(self, values: dict[str, str]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())

    def add_document(
        self, label: str, path: str, mode: str, normalised_length: int, hashes: np.ndarray, positions: np.ndarray
    ) -> DocumentInfo:
        """Add one document, replacing an earlier one with the same label and path."""
        with self._lock, self._transaction():
            old = [r[0] for r in self._db.execute("SELECT doc_id FROM documents WHERE label = ? AND path = ?", (label, path))]
            self._delete(old)
            cur = self._db.execute(
                "INSERT INTO documents (label, path, mode, n_fingerprints, normalised_length) VALUES (?, ?, ?, ?, ?)",
                (label, path, mode, len(hashes), normalised_length),
            )
            doc_id = cur.lastrowid
            self._db.executemany(
                "INSERT OR IGNORE INTO fingerprints (hash, doc_id, position) VALUES (?, ?, ?)",
                ((h, doc_id, p) for h, p in zip(hashes.tolist(), positions.tolist())),
            )
            self._bump()
        return DocumentInfo(doc_id, label, path, len(hashes), normalised_length, mode)

    def documents(self) -> list[DocumentInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc_id, label, path, n_fingerprints, normalised_length, mode FROM documents ORDER BY doc_id"
            ).fetchall()
        return [DocumentInfo(*r) for r in rows]

    def remove(self, label_or_doc_id: str | int) -> int:
        """Remove one document by id, or every document with a label; returns how many."""
        column = "doc_id" if isinstance(label_or_doc_id, int) else "label"
        with self._lock, self._transaction():
            ids = [r[0] for r in self._db.execute(f"SELECT doc_id FROM documents WHERE {column} = ?", (label_or_doc_id,))]
            self._delete(ids)
            if ids:
                self._bump()
        return len(ids)

    def version(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])

    def load(self) -> StoredFingerprints:
        with self._lock:
            rows = self._db.execute("SELECT hash, doc_id, position FROM fingerprints").fetchall()
        arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return StoredFingerprints(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())

    def _delete(self, doc_ids: list[int]) -> None:
        for doc_id in doc_ids:
            self._db.execute("DELETE FROM fingerprints WHERE doc_id = ?", (doc_id,))
            self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))

    def _bump(self) -> None:
        self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
