"""The exposure ledger: which vendor received which value, in clear or as which token.

A row per distinct value per request, holding a keyed fingerprint of the value
(HMAC-SHA256 under `keys.derive("ledger")`), never the value. The key is the
same for every vendor, so one value sent to two vendors has one fingerprint and
`who_saw` finds both. Values are normalised first (case-folded emails, card and
phone numbers without spaces or dashes) so formatting does not hide a match.

Limit: a fingerprint of a low-entropy value (a 4-digit PIN, a date) can be
brute-forced by anyone who holds the gateway key; without the key it reveals
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.audit.backend import PostgresBackend, SqliteBackend
from gateway.keys import KeyProvider
from gateway.storage.thread import StoreThread

KEY_PURPOSE = "ledger"
DB_NAME = "ledger.sqlite"
# What the vendor got, by action: `clear` for allow; the action name for
# surrogates (reversible tokens and keyed pseudonyms). Redact and mask expose
# no specific value worth tracing, so they are not in the ledger.
TRACKED = {"allow": "clear", "tokenize": "tokenize", "encrypt": "encrypt", "fpe": "fpe",
           "synthetic": "synthetic", "consistent": "consistent", "hash": "hash"}
_COMPACT_TYPES = {"CREDIT_CARD", "PHONE_NUMBER", "US_SSN", "US_ITIN", "US_BANK_NUMBER", "IBAN_CODE",
                  "US_PASSPORT", "US_DRIVER_LICENSE", "MEDICAL_LICENSE", "CRYPTO"}
_NAME_TYPES = {"EMAIL_ADDRESS", "PERSON", "LOCATION", "NRP", "URL", "IP_ADDRESS"}
_SEPARATORS = re.compile(r"[\s\-.()/]+")
_SPACES = re.compile(r"\s+")

SCHEMA = """
CREATE TABLE IF NOT EXISTS exposure (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    request_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    vendor TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    key_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    via TEXT NOT NULL,
    surrogate TEXT,
    occurrences INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS exposure_fingerprint ON exposure (fingerprint);
CREATE INDEX IF NOT EXISTS exposure_vendor_ts ON exposure (vendor, ts);
CREATE INDEX IF NOT EXISTS exposure_ts ON exposure (ts);
"""
POSTGRES_SCHEMA = SCHEMA.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY").replace(" INTEGER ", " BIGINT ")
COLUMNS = ("ts", "request_id", "record_id", "caller", "vendor", "entity_type", "key_id", "fingerprint",
           "via", "surrogate", "occurrences")


def normalise(entity_type: str, value: str) -> str:
    """The form of a value that is fingerprinted: formatting differences removed."""
    text = unicodedata.normalize("NFKC", value).strip()
    if entity_type in _COMPACT_TYPES:
        return _SEPARATORS.sub("", text).upper()
    if entity_type in _NAME_TYPES:
        return _SPACES.sub(" ", text).casefold()
    return text


def fingerprint(key: bytes, entity_type: str, value: str) -> str:
    return hmac.new(key, normalise(entity_type, value).encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Exposure:
    """One value one vendor received in one request. `value` stays in memory."""

    entity_type: str
    via: str
    value: str = field(repr=False)
    surrogate: str | None = None


@dataclass(frozen=True)
class RequestMeta:
    ts: str
    request_id: str
    record_id: str
    caller: str
    vendor: str


def exposures_from(replacements: Iterable) -> list[Exposure]:
    """The pipeline's replacements (entity_type, action, original, sent) -> ledger exposures."""
    out = []
    for r in replacements:
        via = TRACKED.get(r.action)
        if via is None or not r.original.strip():
            continue
        out.append(Exposure(r.entity_type, via, r.original, None if via == "clear" else r.sent))
    return out


class ExposureLedger:
    """`ledger.sqlite` (WAL) in the data dir, or the `exposure` table in the audit
    PostgreSQL database so that gateways sharing one audit log share one ledger.
    Writes go through one thread, one transaction per request."""

    def __init__(self, db, keys: KeyProvider):
        self.db = db
        self._keys = keys
        self._key_id = keys.current_id()
        self._key = keys.derive(KEY_PURPOSE, "", self._key_id)
        self._writer = StoreThread("ledger")

    @classmethod
    def in_data_dir(cls, data_dir: Path, keys: KeyProvider, dsn: str | None = None) -> ExposureLedger:
        """PostgreSQL when `dsn` (the config's `audit.dsn`) is set, else SQLite in the data dir."""
        db = PostgresBackend(dsn, POSTGRES_SCHEMA) if dsn else SqliteBackend(Path(data_dir) / DB_NAME, SCHEMA)
        return cls(db, keys)

    def add_sync(self, meta: RequestMeta, exposures: list[Exposure]) -> int:
        """One row per distinct (value, type, how sent) in the request; returns rows written."""
        grouped: dict[tuple, int] = {}
        for e in exposures:
            k = (e.entity_type, fingerprint(self._key, e.entity_type, e.value), e.via, e.surrogate)
            grouped[k] = grouped.get(k, 0) + 1
        if not grouped:
            return 0
        rows = [(meta.ts, meta.request_id, meta.record_id, meta.caller, meta.vendor, etype, self._key_id, fp, via,
                 surrogate, n) for (etype, fp, via, surrogate), n in grouped.items()]
        with self.db.locked():
            self.db.run_many(
                f"INSERT INTO exposure ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
        return len(rows)

    async def add(self, meta: RequestMeta, exposures: list[Exposure]) -> int:
        if not exposures:
            return 0
        return await self._writer.run(self.add_sync, meta, exposures)

    def who_saw(self, value: str, entity_type: str | None = None) -> list[dict]:
        """Every ledger row for this value (under any key id), oldest first."""
        types = [entity_type] if entity_type else sorted(_COMPACT_TYPES | _NAME_TYPES | {""})
        wanted: dict[str, str] = {}  # fingerprint -> the normalisation family that produced it
        for key_id in self._keys.key_ids():
            key = self._keys.derive(KEY_PURPOSE, "", key_id)
            for t in types:
                wanted[fingerprint(key, t, value)] = normalise(t, value)
        marks = ", ".join("?" * len(wanted))
        args: list = list(wanted)
        sql = f"SELECT {', '.join(COLUMNS)} FROM exposure WHERE fingerprint IN ({marks})"
        if entity_type:
            sql += " AND entity_type = ?"
            args.append(entity_type)
        rows = [dict(zip(COLUMNS, r)) for r in self.db.rows(sql + " ORDER BY ts, id", tuple(args))]
        # a row matches only if the value, normalised the way its own type is, gives its fingerprint
        return [r for r in rows if wanted[r["fingerprint"]] == normalise(r["entity_type"], value)]

    def rows(self, vendor: str | None = None, since: str | None = None) -> list[dict]:
        sql, args = f"SELECT {', '.join(COLUMNS)} FROM exposure WHERE 1 = 1", []
        if vendor:
            sql += " AND vendor = ?"
            args.append(vendor)
        if since:
            sql += " AND ts >= ?"
            args.append(since)
        return [dict(zip(COLUMNS, r)) for r in self.db.rows(sql + " ORDER BY ts, id", tuple(args))]

    def prune_sync(self, before: str) -> int:
        """Retention: delete rows older than `before` (an ISO UTC time); returns rows deleted."""
        with self.db.locked():
            return self.db.run("DELETE FROM exposure WHERE ts < ?", (before,))

    async def prune(self, before: str) -> int:
        return await self._writer.run(self.prune_sync, before)

    async def close(self) -> None:
        await self._writer.close()
        self.db.close()
