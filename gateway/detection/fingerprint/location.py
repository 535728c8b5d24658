"""Where a fingerprint index lives, as a small hashable value that crosses into workers.

The data dir always holds the master key (the index's hashes are keyed with
it); the index itself is `fingerprints.sqlite` there, or PostgreSQL tables
when the config has `fingerprints: {dsn: ...}`, shared by every gateway
instance and the CLI that use that config (they must share the master key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.detection.fingerprint.store import FILE_NAME, FingerprintStore, SQLiteFingerprintStore


@dataclass(frozen=True)
class IndexLocation:
    data_dir: str
    dsn: str = field(default="", repr=False)  # may carry a password: never printed
    schema: str = "public"

    @classmethod
    def of(cls, data_dir: Path | str, config=None) -> IndexLocation:
        """From a data dir and the config's `fingerprints` section (None: SQLite in the data dir)."""
        resolved = str(Path(data_dir).resolve())
        return cls(resolved, config.dsn, config.db_schema) if config is not None else cls(resolved)

    def describe(self) -> str:
        if not self.dsn:
            return str(Path(self.data_dir) / FILE_NAME)
        from gateway.storage.dsn import redact_dsn

        return f"PostgreSQL {redact_dsn(self.dsn)} schema {self.schema}"

    def open_store(self) -> FingerprintStore:
        """Open the store, creating its file or tables when missing."""
        if self.dsn:
            from gateway.detection.fingerprint.pgstore import PostgresFingerprintStore

            return PostgresFingerprintStore(self.dsn, self.schema)
        return SQLiteFingerprintStore.in_data_dir(Path(self.data_dir))

    def open_existing(self) -> FingerprintStore | None:
        """The store, or None when it holds no index yet (nothing has ever been added)."""
        if not self.dsn and not (Path(self.data_dir) / FILE_NAME).exists():
            return None
        store = self.open_store()
        if not store.read_settings():
            store.close()
            return None
        return store
