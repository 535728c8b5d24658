"""The token vault: which surrogate stands for which original, per vendor.

Rows are insert-only, keyed by (vendor, lower(surrogate)). Originals are
sealed with AES-GCM under a key derived for ("vault", vendor, key id); the key
id is kept per row so rotation leaves old rows readable, and the associated
data binds vendor, surrogate and entity type, so a row copied to another vendor
or surrogate does not open. Lookups only ever see the asking vendor's rows:
the vault is no decryption oracle for tokens issued to someone else.

A surrogate already taken by a different original is a collision: `store`
records the newcomer's fingerprint and raises `SurrogateCollision`; the
pipeline then transforms the request again with `collisions(vendor)` in the
action options, and the newcomer gets a different surrogate. Collisions are
kept in the database so every instance and restart agrees.

`shred` (a data subject's erasure, `vendorgate subject forget`) overwrites a
row's sealed original with nothing and keeps the row as a tombstone: the
surrogate stays taken (a later original gets a new one, never the old token),
lookups treat it as unknown, and an encrypt token (stateless: the original is
inside the token) gets a tombstone too, which restore checks before trusting
its decryption. SQLite overwrites the freed bytes (`secure_delete`) and
truncates the WAL; PostgreSQL keeps the old row version until VACUUM.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.keys import KeyProvider, KeyProviderError
from gateway.reversible.tokens import Issued, fingerprint
from gateway.storage.postgres import AsyncPostgresPool
from gateway.storage.sqlite import SQLiteFile
from gateway.storage.thread import StoreThread

SQLITE_FILE_NAME = "vault.sqlite3"
_NONCE_BYTES = 12


class SurrogateCollision(Exception):
    """Some issued surrogates already stand for other originals."""

    def __init__(self, issued: list[Issued]):
        types = sorted({i.entity_type for i in issued})
        super().__init__(f"{len(issued)} surrogate(s) collided ({', '.join(types)}); transform the request again")
        self.issued = issued


Row = tuple[str, str, str, str, bytes]  # vendor, surrogate (lower), entity type, key id, sealed


def _aad(vendor: str, surrogate: str, entity_type: str) -> bytes:
    return f"{vendor}\0{surrogate}\0{entity_type}".encode()


def seal(keys: KeyProvider, vendor: str, surrogate: str, entity_type: str, original: str) -> Row:
    key_id = keys.current_id()
    nonce = os.urandom(_NONCE_BYTES)
    aead = AESGCM(keys.derive("vault", vendor, key_id))
    sealed = nonce + aead.encrypt(nonce, original.encode(), _aad(vendor, surrogate, entity_type))
    return vendor, surrogate, entity_type, key_id, sealed


def unseal(keys: KeyProvider, row: Row) -> str:
    """The original of a row; KeyProviderError or InvalidTag if no key opens it."""
    vendor, surrogate, entity_type, key_id, sealed = row
    aead = AESGCM(keys.derive("vault", vendor, key_id))
    nonce, body = bytes(sealed[:_NONCE_BYTES]), bytes(sealed[_NONCE_BYTES:])
    return aead.decrypt(nonce, body, _aad(vendor, surrogate, entity_type)).decode()


class TokenVault:
    """Async interface; subclasses provide the five storage primitives."""

    def __init__(self, keys: KeyProvider):
        self.keys = keys
        self._collisions: dict[str, dict[str, int]] = {}

    async def open(self) -> TokenVault:
        await self._setup()
        await self._setup_scopes()
        self._collisions = {}
        for vendor, fp, attempt in await self._load_collisions():
            self._collisions.setdefault(vendor, {})[fp] = attempt
        return self

    async def store(self, vendor: str, issued: list[Issued], scope: str = "") -> None:
        """Persist issued surrogates before the request is forwarded; with a `scope` (e.g. the
        caller), also that they were issued in it (`in_scope`)."""
        if not issued:
            return
        wanted = {i.surrogate.lower(): i for i in reversed(issued)}
        await self._insert([seal(self.keys, vendor, s, i.entity_type, i.original) for s, i in wanted.items()])
        owners = {row[1]: row for row in await self._fetch(vendor, list(wanted))}
        collided = []
        for item in issued:
            row = owners.get(item.surrogate.lower())
            if row is None or row[2] != item.entity_type or self._open(row) != item.original:
                collided.append(item)
        if collided:
            await self._record_collisions(vendor, collided)
            raise SurrogateCollision(collided)
        if scope:
            await self._insert_scopes([(vendor, s, scope) for s in wanted])

    # Scopes: who a surrogate was issued to (caller, conversation). A separate table, so restore can be
    # limited to the asking caller's tokens without touching the token rows.

    async def add_to_scope(self, vendor: str, scope: str, surrogates: Iterable[str]) -> None:
        """Note stateless surrogates (encrypt tokens, which have no token row) as issued within `scope`."""
        rows = sorted({(vendor, s.lower(), scope) for s in surrogates})
        if rows and scope:
            await self._insert_scopes(rows)

    async def in_scope(self, vendor: str, scope: str, surrogates: Iterable[str]) -> set[str]:
        """The surrogates (lower-cased) among `surrogates` that were issued to `vendor` within `scope`."""
        asked = sorted({s.lower() for s in surrogates})
        return set(await self._fetch_scopes(vendor, scope, asked)) if asked else set()

    async def _setup_scopes(self) -> None:
        raise NotImplementedError

    async def _insert_scopes(self, rows: list[tuple[str, str, str]]) -> None:
        raise NotImplementedError

    async def _fetch_scopes(self, vendor: str, scope: str, surrogates: list[str]) -> list[str]:
        raise NotImplementedError

    async def lookup(self, vendor: str, surrogates: Iterable[str]) -> dict[str, Issued]:
        """Originals of surrogates issued to `vendor`, keyed as asked; unknown,
        foreign or unreadable surrogates are simply absent."""
        asked = {s.lower(): s for s in surrogates}
        if not asked:
            return {}
        found: dict[str, Issued] = {}
        for row in await self._fetch(vendor, list(asked)):
            original = self._open(row)
            if original is not None:
                found[asked[row[1]]] = Issued(asked[row[1]], row[2], original)
        return found

    def collisions(self, vendor: str) -> Mapping[str, int]:
        """Fingerprint -> collision count, for the action context of the next try."""
        return self._collisions.get(vendor, {})

    async def count_unreadable(self, keys: KeyProvider | None = None) -> int:
        """Rows that no configured key opens (a replaced or lost key file); shredded rows are not counted."""
        keys = keys or self.keys
        return sum(1 for row in await self._all_rows() if row[4] and self._open(row, keys) is None)

    async def entries_matching(self, matches: Callable[[str, str], Any]) -> list[tuple[str, str, str, Any]]:
        """(vendor, surrogate, entity type, label) of every row for which `matches(entity_type, original)`
        gives a label (not None). Every row is opened, so a value's tokens are found even when the
        ledger no longer lists them; originals never leave this method."""
        out = []
        for row in await self._all_rows():
            original = self._open(row) if row[4] else None
            label = matches(row[2], original) if original is not None else None
            if label is not None:
                out.append((row[0], row[1], row[2], label))
        return out

    async def shred(self, entries: Iterable[tuple[str, str, str]]) -> int:
        """Make the originals behind (vendor, surrogate, entity type) unrecoverable; returns rows shredded.
        A surrogate with no row (an encrypt token) gets a tombstone, so restore refuses it too."""
        rows = sorted({(vendor, surrogate.lower(), entity_type) for vendor, surrogate, entity_type in entries})
        if rows:
            await self._shred(rows)
        return len(rows)

    async def shredded(self, vendor: str, surrogates: Iterable[str]) -> set[str]:
        """The surrogates (lower-cased) among `surrogates` whose originals were shredded."""
        asked = sorted({s.lower() for s in surrogates})
        return {row[1] for row in await self._fetch(vendor, asked) if not row[4]} if asked else set()

    async def _shred(self, rows: list[tuple[str, str, str]]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _open(self, row: Row, keys: KeyProvider | None = None) -> str | None:
        if not row[4]:  # shredded
            return None
        try:
            return unseal(keys or self.keys, row)
        except (InvalidTag, KeyProviderError, UnicodeDecodeError):
            return None

    async def _record_collisions(self, vendor: str, collided: list[Issued]) -> None:
        known = self._collisions.setdefault(vendor, {})
        fps = {fingerprint(self.keys, vendor, item.entity_type, item.original) for item in collided}
        for fp in fps:
            known[fp] = known.get(fp, 0) + 1
        await self._save_collisions([(vendor, fp, known[fp]) for fp in sorted(fps)])

    async def _setup(self) -> None:
        raise NotImplementedError

    async def _insert(self, rows: list[Row]) -> None:
        raise NotImplementedError

    async def _fetch(self, vendor: str, surrogates: list[str]) -> list[Row]:
        raise NotImplementedError

    async def _all_rows(self) -> list[Row]:
        raise NotImplementedError

    async def _load_collisions(self) -> list[tuple[str, str, int]]:
        raise NotImplementedError

    async def _save_collisions(self, updates: list[tuple[str, str, int]]) -> None:
        raise NotImplementedError


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    vendor TEXT NOT NULL, surrogate TEXT NOT NULL, entity_type TEXT NOT NULL,
    key_id TEXT NOT NULL, sealed BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (vendor, surrogate)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS collisions (
    vendor TEXT NOT NULL, fingerprint TEXT NOT NULL, attempt INTEGER NOT NULL,
    PRIMARY KEY (vendor, fingerprint)) WITHOUT ROWID;
"""
_IN_BATCH = 500  # surrogates per `IN (...)`, under SQLite's variable limit


class SQLiteVault(TokenVault):
    """One file in the data dir, on the vault's own thread. synchronous=FULL: a token
    is stored before its request is forwarded, so it must outlive an OS crash too."""

    def __init__(self, path: Path, keys: KeyProvider):
        super().__init__(keys)
        self.path = Path(path)
        self._thread = StoreThread("vault")
        self._db: SQLiteFile | None = None

    async def _setup(self) -> None:
        self._db = await self._thread.run(lambda: SQLiteFile(self.path, _SQLITE_SCHEMA, synchronous="FULL"))

    def _insert_sync(self, rows: list[Row]) -> None:
        with self._db.transaction():
            self._db.run_many(
                "INSERT OR IGNORE INTO tokens (vendor, surrogate, entity_type, key_id, sealed) VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    async def _insert(self, rows: list[Row]) -> None:
        await self._thread.run(self._insert_sync, rows)

    def _fetch_sync(self, vendor: str, surrogates: list[str]) -> list[Row]:
        rows: list[Row] = []
        for start in range(0, len(surrogates), _IN_BATCH):
            part = surrogates[start : start + _IN_BATCH]
            rows += self._db.rows(
                f"SELECT vendor, surrogate, entity_type, key_id, sealed FROM tokens "
                f"WHERE vendor = ? AND surrogate IN ({','.join('?' * len(part))})",
                [vendor, *part],
            )
        return rows

    async def _fetch(self, vendor: str, surrogates: list[str]) -> list[Row]:
        return await self._thread.run(self._fetch_sync, vendor, surrogates)

    async def _all_rows(self) -> list[Row]:
        return await self._thread.run(self._db.rows, "SELECT vendor, surrogate, entity_type, key_id, sealed FROM tokens")

    async def _load_collisions(self) -> list[tuple[str, str, int]]:
        return await self._thread.run(self._db.rows, "SELECT vendor, fingerprint, attempt FROM collisions")

    def _shred_sync(self, rows: list[tuple[str, str, str]]) -> None:
        self._db.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left on disk
        try:
            with self._db.transaction():
                self._db.run_many(
                    "INSERT INTO tokens (vendor, surrogate, entity_type, key_id, sealed) VALUES (?, ?, ?, '', x'') "
                    "ON CONFLICT (vendor, surrogate) DO UPDATE SET sealed = x'', key_id = ''", rows)
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.execute("PRAGMA secure_delete = OFF")

    async def _shred(self, rows: list[tuple[str, str, str]]) -> None:
        await self._thread.run(self._shred_sync, rows)

    def _save_collisions_sync(self, updates: list[tuple[str, str, int]]) -> None:
        with self._db.transaction():
            self._db.run_many(
                "INSERT INTO collisions (vendor, fingerprint, attempt) VALUES (?, ?, ?) "
                "ON CONFLICT (vendor, fingerprint) DO UPDATE SET attempt = max(attempt, excluded.attempt)",
                updates,
            )

    async def _save_collisions(self, updates: list[tuple[str, str, int]]) -> None:
        await self._thread.run(self._save_collisions_sync, updates)

    def _setup_scopes_sync(self) -> None:
        self._db.script(
            "CREATE TABLE IF NOT EXISTS token_scopes (vendor TEXT NOT NULL, surrogate TEXT NOT NULL, "
            "scope TEXT NOT NULL, PRIMARY KEY (vendor, scope, surrogate)) WITHOUT ROWID"
        )

    async def _setup_scopes(self) -> None:
        await self._thread.run(self._setup_scopes_sync)

    def _insert_scopes_sync(self, rows: list[tuple[str, str, str]]) -> None:
        with self._db.transaction():
            self._db.run_many("INSERT OR IGNORE INTO token_scopes (vendor, surrogate, scope) VALUES (?, ?, ?)", rows)

    async def _insert_scopes(self, rows: list[tuple[str, str, str]]) -> None:
        await self._thread.run(self._insert_scopes_sync, rows)

    def _fetch_scopes_sync(self, vendor: str, scope: str, surrogates: list[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(surrogates), 500):
            part = surrogates[start : start + 500]
            found += [r[0] for r in self._db.rows(
                f"SELECT surrogate FROM token_scopes WHERE vendor = ? AND scope = ? "
                f"AND surrogate IN ({','.join('?' * len(part))})", [vendor, scope, *part])]
        return found

    async def _fetch_scopes(self, vendor: str, scope: str, surrogates: list[str]) -> list[str]:
        return await self._thread.run(self._fetch_scopes_sync, vendor, scope, surrogates)

    async def close(self) -> None:
        if self._db is not None:
            await self._thread.run(self._db.close)
            self._db = None
        await self._thread.close()


class PostgresVault(TokenVault):
    """Shared by several gateway instances: inserts never overwrite."""

    def __init__(self, dsn: str, keys: KeyProvider, table: str = "vendorgate_tokens"):
        super().__init__(keys)
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", table):
            raise ValueError("vault table name must be a lower-case SQL identifier")
        self.dsn = dsn
        self.table = table
        self._pool: AsyncPostgresPool | None = None

    async def _setup(self) -> None:
        self._pool = AsyncPostgresPool(self.dsn, size=4)
        await self._pool.create(
            f"""
            CREATE TABLE IF NOT EXISTS {self.table} (
                vendor TEXT NOT NULL, surrogate TEXT NOT NULL, entity_type TEXT NOT NULL,
                key_id TEXT NOT NULL, sealed BYTEA NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (vendor, surrogate));
            CREATE TABLE IF NOT EXISTS {self.table}_collisions (
                vendor TEXT NOT NULL, fingerprint TEXT NOT NULL, attempt INTEGER NOT NULL,
                PRIMARY KEY (vendor, fingerprint));
            """,
            lock_key=self.table,
        )

    async def _insert(self, rows: list[Row]) -> None:
        await self._pool.run_many(
            f"INSERT INTO {self.table} (vendor, surrogate, entity_type, key_id, sealed) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            rows,
        )

    async def _fetch(self, vendor: str, surrogates: list[str]) -> list[Row]:
        return await self._pool.rows(
            f"SELECT vendor, surrogate, entity_type, key_id, sealed FROM {self.table} "
            "WHERE vendor = %s AND surrogate = ANY(%s::text[])",
            (vendor, surrogates),
        )

    async def _all_rows(self) -> list[Row]:
        return await self._pool.rows(f"SELECT vendor, surrogate, entity_type, key_id, sealed FROM {self.table}")

    async def _load_collisions(self) -> list[tuple[str, str, int]]:
        return await self._pool.rows(f"SELECT vendor, fingerprint, attempt FROM {self.table}_collisions")

    async def _shred(self, rows: list[tuple[str, str, str]]) -> None:
        await self._pool.run_many(
            f"INSERT INTO {self.table} (vendor, surrogate, entity_type, key_id, sealed) VALUES (%s, %s, %s, '', '')"
            " ON CONFLICT (vendor, surrogate) DO UPDATE SET sealed = '', key_id = ''", rows)

    async def _save_collisions(self, updates: list[tuple[str, str, int]]) -> None:
        await self._pool.run_many(
            f"INSERT INTO {self.table}_collisions (vendor, fingerprint, attempt) VALUES (%s, %s, %s) "
            f"ON CONFLICT (vendor, fingerprint) DO UPDATE SET attempt = "
            f"GREATEST({self.table}_collisions.attempt, EXCLUDED.attempt)",
            updates,
        )

    async def _setup_scopes(self) -> None:
        await self._pool.create(
            f"CREATE TABLE IF NOT EXISTS {self.table}_scopes (vendor TEXT NOT NULL, surrogate TEXT NOT NULL, "
            "scope TEXT NOT NULL, PRIMARY KEY (vendor, scope, surrogate))",
            lock_key=self.table + "_scopes",
        )

    async def _insert_scopes(self, rows: list[tuple[str, str, str]]) -> None:
        await self._pool.run_many(
            f"INSERT INTO {self.table}_scopes (vendor, surrogate, scope) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            rows,
        )

    async def _fetch_scopes(self, vendor: str, scope: str, surrogates: list[str]) -> list[str]:
        records = await self._pool.rows(
            f"SELECT surrogate FROM {self.table}_scopes WHERE vendor = %s AND scope = %s "
            "AND surrogate = ANY(%s::text[])", (vendor, scope, surrogates))
        return [r[0] for r in records]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class VaultUnreadable(Exception):
    """The vault holds tokens that no configured key opens: refuse to start."""


async def open_vault(data_dir: Path, dsn: str | None, keys: KeyProvider, table: str = "vendorgate_tokens") -> TokenVault:
    """PostgreSQL when a DSN is configured, else a SQLite file in the data dir."""
    vault = PostgresVault(dsn, keys, table) if dsn else SQLiteVault(Path(data_dir) / SQLITE_FILE_NAME, keys)
    return await vault.open()


async def check_readable(vault: TokenVault, where: str) -> None:
    """Losing a key must be loud: every stored token has to open with some configured key."""
    unreadable = await vault.count_unreadable()
    if unreadable:
        raise VaultUnreadable(
            f"the token vault ({where}) holds {unreadable} token(s) that no configured key can open "
            f"(configured key ids: {', '.join(vault.keys.key_ids())}). The key file was replaced or lost, "
            f"or $VENDORGATE_MASTER_KEY differs from the one that made them. Restore the old key file, "
            f"or point the gateway at a new vault; refusing to start"
        )
