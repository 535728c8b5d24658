"""Where fingerprints live. SQLite here; `pgstore` is the PostgreSQL `FingerprintStore`.

Only keyed hashes, their normalised positions and document metadata are
stored, never document text. A version counter bumps on every change so a
process holding the hashes in memory knows when to reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from gateway.detection.fingerprint.records import DocumentInfo
from gateway.storage.sqlite import SQLiteFile

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
        self._db = SQLiteFile(self.path, _SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SQLiteFingerprintStore:
        return cls(Path(data_dir) / FILE_NAME)

    def compact(self) -> None:
        """Rebuild the file tightly (after bulk adds or removes) and fold the WAL into it."""
        self._db.script("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")

    def close(self) -> None:
        self._db.close()

    def read_settings(self) -> dict[str, str]:
        return dict(self._db.rows("SELECT key, value FROM meta WHERE key != 'version'"))

    def write_settings(self, values: dict[str, str]) -> None:
        self._db.run_many("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())

    def add_document(
        self, label: str, path: str, mode: str, normalised_length: int, hashes: np.ndarray, positions: np.ndarray
    ) -> DocumentInfo:
        """Add one document, replacing an earlier one with the same label and path."""
        with self._db.transaction():
            self._delete([r[0] for r in self._db.rows("SELECT doc_id FROM documents WHERE label = ? AND path = ?",
                                                      (label, path))])
            doc_id = self._db.execute(
                "INSERT INTO documents (label, path, mode, n_fingerprints, normalised_length) VALUES (?, ?, ?, ?, ?)",
                (label, path, mode, len(hashes), normalised_length),
            ).lastrowid
            self._db.run_many(
                "INSERT OR IGNORE INTO fingerprints (hash, doc_id, position) VALUES (?, ?, ?)",
                ((h, doc_id, p) for h, p in zip(hashes.tolist(), positions.tolist())),
            )
            self._bump()
        return DocumentInfo(doc_id, label, path, len(hashes), normalised_length, mode)

    def documents(self) -> list[DocumentInfo]:
        rows = self._db.rows(
            "SELECT doc_id, label, path, n_fingerprints, normalised_length, mode FROM documents ORDER BY doc_id")
        return [DocumentInfo(*r) for r in rows]

    def remove(self, label_or_doc_id: str | int) -> int:
        """Remove one document by id, or every document with a label; returns how many."""
        column = "doc_id" if isinstance(label_or_doc_id, int) else "label"
        with self._db.transaction():
            ids = [r[0] for r in self._db.rows(f"SELECT doc_id FROM documents WHERE {column} = ?", (label_or_doc_id,))]
            self._delete(ids)
            if ids:
                self._bump()
        return len(ids)

    def version(self) -> int:
        return int(self._db.rows("SELECT value FROM meta WHERE key = 'version'")[0][0])

    def load(self) -> StoredFingerprints:
        arr = np.array(self._db.rows("SELECT hash, doc_id, position FROM fingerprints"), dtype=np.int64).reshape(-1, 3)
        return StoredFingerprints(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())

    def _delete(self, doc_ids: list[int]) -> None:
        for doc_id in doc_ids:
            self._db.run("DELETE FROM fingerprints WHERE doc_id = ?", (doc_id,))
            self._db.run("DELETE FROM documents WHERE doc_id = ?", (doc_id,))

    def _bump(self) -> None:
        self._db.run("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")
