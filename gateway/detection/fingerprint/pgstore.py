"""The fingerprint index in PostgreSQL: one index shared by every gateway instance and the CLI.

Same contract as the SQLite store (`FingerprintStore`): keyed hashes, their
normalised positions and document metadata, never document text, and a
version counter that every add or remove bumps in the same transaction, so a
worker of any instance reloads its in-memory copy on its next lookup. Each
document's hashes and positions are one row of little-endian int64 arrays
(`bytea`): the index is only ever loaded whole, and this loads fast.

Synchronous (`gateway.storage.postgres`): the index is used in detection
worker processes and the CLI, never on the event loop.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from gateway.detection.fingerprint.records import DocumentInfo
from gateway.detection.fingerprint.store import StoredFingerprints
from gateway.storage.postgres import PostgresConnection

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ARRAY = np.dtype("<i8")
_SCHEMA_LOCK = 7_346_205_119  # pg_advisory_xact_lock id: processes starting together create tables once


def _ddl(s: str) -> list[str]:
    return [
        *([] if s == "public" else [f"CREATE SCHEMA IF NOT EXISTS {s}"]),
        f"CREATE TABLE IF NOT EXISTS {s}.fingerprint_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS {s}.fingerprint_documents (
            doc_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            label TEXT NOT NULL,
            path TEXT NOT NULL,
            mode TEXT NOT NULL,
            n_fingerprints BIGINT NOT NULL,
            normalised_length BIGINT NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS fingerprint_documents_label ON {s}.fingerprint_documents (label, path)",
        f"""CREATE TABLE IF NOT EXISTS {s}.fingerprint_hashes (
            doc_id BIGINT PRIMARY KEY REFERENCES {s}.fingerprint_documents ON DELETE CASCADE,
            hashes BYTEA NOT NULL,
            positions BYTEA NOT NULL
        )""",
        f"INSERT INTO {s}.fingerprint_meta (key, value) VALUES ('version', '0') ON CONFLICT DO NOTHING",
    ]


class PostgresFingerprintStore:
    """Tables `fingerprint_meta`, `fingerprint_documents`, `fingerprint_hashes` in one schema."""

    def __init__(self, dsn: str, schema: str = "public"):
        if not SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must match {SCHEMA_NAME.pattern}")
        self.schema = schema
        self._pg = PostgresConnection(dsn, _ddl(schema), _SCHEMA_LOCK)
        self.where = f"{self._pg.where} schema {schema}"

    @property
    def _db(self) -> Any:
        """The psycopg connection now (the tests reach for it)."""
        return self._pg.connection

    def compact(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum reclaims space of removed documents."""

    def close(self) -> None:
        self._pg.close()

    def read_settings(self) -> dict[str, str]:
        sql = f"SELECT key, value FROM {self.schema}.fingerprint_meta WHERE key != 'version'"
        return dict(self._pg.call(lambda db: db.execute(sql).fetchall()))

    def write_settings(self, values: dict[str, str]) -> None:
        sql = (f"INSERT INTO {self.schema}.fingerprint_meta (key, value) VALUES (%s, %s) "
               "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")

        def work(db) -> None:
            with db.transaction(), db.cursor() as cur:
                cur.executemany(sql, list(values.items()))

        self._pg.call(work)

    def add_document(
        self, label: str, path: str, mode: str, normalised_length: int, hashes: np.ndarray, positions: np.ndarray
    ) -> DocumentInfo:
        """Add one document, replacing an earlier one with the same label and path."""
        s = self.schema
        hash_bytes = np.ascontiguousarray(hashes, dtype=_ARRAY).tobytes()
        position_bytes = np.ascontiguousarray(positions, dtype=_ARRAY).tobytes()

        def work(db) -> int:
            with db.transaction():
                self._lock_version(db)
                db.execute(f"DELETE FROM {s}.fingerprint_documents WHERE label = %s AND path = %s", (label, path))
                doc_id = db.execute(
                    f"INSERT INTO {s}.fingerprint_documents (label, path, mode, n_fingerprints, normalised_length) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING doc_id",
                    (label, path, mode, len(hashes), normalised_length),
                ).fetchone()[0]
                db.execute(f"INSERT INTO {s}.fingerprint_hashes (doc_id, hashes, positions) VALUES (%s, %s, %s)",
                           (doc_id, hash_bytes, position_bytes))
                self._bump(db)
            return doc_id

        return DocumentInfo(self._pg.call(work), label, path, len(hashes), normalised_length, mode)

    def documents(self) -> list[DocumentInfo]:
        sql = (f"SELECT doc_id, label, path, n_fingerprints, normalised_length, mode "
               f"FROM {self.schema}.fingerprint_documents ORDER BY doc_id")
        return [DocumentInfo(*r) for r in self._pg.call(lambda db: db.execute(sql).fetchall())]

    def remove(self, label_or_doc_id: str | int) -> int:
        """Remove one document by id, or every document with a label; returns how many."""
        column = "doc_id" if isinstance(label_or_doc_id, int) else "label"

        def work(db) -> int:
            with db.transaction():
                self._lock_version(db)
                removed = db.execute(f"DELETE FROM {self.schema}.fingerprint_documents WHERE {column} = %s",
                                     (label_or_doc_id,)).rowcount
                if removed:
                    self._bump(db)
            return removed

        return self._pg.call(work)

    def version(self) -> int:
        sql = f"SELECT value FROM {self.schema}.fingerprint_meta WHERE key = 'version'"
        return int(self._pg.call(lambda db: db.execute(sql).fetchone()[0]))

    def load(self) -> StoredFingerprints:
        sql = f"SELECT doc_id, hashes, positions FROM {self.schema}.fingerprint_hashes"
        rows = self._pg.call(lambda db: db.execute(sql).fetchall())
        if not rows:
            empty = np.empty(0, dtype=np.int64)
            return StoredFingerprints(empty, empty.copy(), empty.copy())
        hashes = [np.frombuffer(h, dtype=_ARRAY) for _, h, _ in rows]
        positions = [np.frombuffer(p, dtype=_ARRAY) for _, _, p in rows]
        doc_ids = [np.full(len(h), doc_id, dtype=np.int64) for (doc_id, _, _), h in zip(rows, hashes)]
        return StoredFingerprints(*(np.concatenate(a).astype(np.int64) for a in (hashes, doc_ids, positions)))

    def _lock_version(self, db) -> None:
        """Writers queue on the version row, so replace-by-path and the counter stay consistent."""
        db.execute(f"SELECT value FROM {self.schema}.fingerprint_meta WHERE key = 'version' FOR UPDATE")

    def _bump(self, db) -> None:
        db.execute(f"UPDATE {self.schema}.fingerprint_meta SET value = (value::bigint + 1)::text WHERE key = 'version'")
