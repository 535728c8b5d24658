"""AuditLog: an append-only, hash-chained record store in SQLite (WAL).

Each row carries the hash of the previous row, so editing, deleting or
reordering rows breaks the chain. A keyed MAC over the newest (seq, hash) --
the head -- is updated in the same transaction, so cutting rows off the end is
caught too: forging a head needs the gateway's key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.record import GENESIS, AuditRecord, chain_hash
from gateway.keys import KeyProvider

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT NOT NULL
);
"""


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    problem: str = ""
    seq: int | None = None
    record_id: str | None = None


class AuditLog:
    def __init__(self, path: Path, keys: KeyProvider):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._head_key = keys.derive("audit-head")
        # After `keys rotate` the head is still signed with an older key until the next append.
        self._verify_keys = [keys.derive("audit-head", key_id=k) for k in keys.key_ids()]
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path, keys: KeyProvider) -> "AuditLog":
        return cls(Path(data_dir) / "audit.sqlite", keys)

    def _mac(self, seq: int, digest: str, key: bytes | None = None) -> str:
        return hmac.new(key or self._head_key, f"{seq}:{digest}".encode(), hashlib.sha256).hexdigest()

    def append_sync(self, record: AuditRecord) -> None:
        data = record.to_dict()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT seq, hash FROM audit_head WHERE one = 1").fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            digest = chain_hash(prev, data)
            db.execute(
                "INSERT INTO audit (seq, id, ts, vendor, record, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, record.id, record.ts, record.vendor, json.dumps(data, sort_keys=True), prev, digest),
            )
            db.execute(
                "INSERT INTO audit_head (one, seq, hash, mac) VALUES (1, ?, ?, ?) "
                "ON CONFLICT(one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac",
                (seq, digest, self._mac(seq, digest)),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def append(self, record: AuditRecord) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self.append_sync, record)

    def records(self, vendor: str | None = None, limit: int | None = None) -> list[dict]:
        sql = "SELECT seq, record FROM audit"
        args: list = []
        if vendor:
            sql += " WHERE vendor = ?"
            args.append(vendor)
        sql += " ORDER BY seq DESC" + (" LIMIT ?" if limit else "")
        if limit:
            args.append(limit)
        rows = self._db.execute(sql, args).fetchall()
        return [dict(json.loads(r[1]), seq=r[0]) for r in reversed(rows)]

    def verify(self) -> VerifyResult:
        """Walk the whole chain; report the first record that does not fit."""
        prev, expected_seq, checked = GENESIS, 1, 0
        for seq, rid, raw, prev_hash, digest in self._db.execute(
            "SELECT seq, id, record, prev_hash, hash FROM audit ORDER BY seq"
        ):
            if seq != expected_seq:
                return VerifyResult(False, checked, f"record seq {expected_seq} is missing (deleted); next present is seq {seq}", expected_seq)
            try:
                data = json.loads(raw)
            except ValueError:
                return VerifyResult(False, checked, f"record seq {seq} is not valid JSON (altered)", seq, rid)
            if prev_hash != prev:
                return VerifyResult(False, checked, f"record seq {seq} does not follow seq {seq - 1} (a record was removed, reordered or altered)", seq, rid)
            if chain_hash(prev, data) != digest or data.get("id") != rid:
                return VerifyResult(False, checked, f"record seq {seq} (id {rid}) was altered: its content does not match its hash", seq, rid)
            prev, expected_seq, checked = digest, seq + 1, checked + 1
        head = self._db.execute("SELECT seq, hash, mac FROM audit_head WHERE one = 1").fetchone()
        if head is None:
            if checked:
                return VerifyResult(False, checked, "the signed head is missing (log tampered)")
            return VerifyResult(True, 0)
        head_seq, head_hash, mac = head
        if not any(hmac.compare_digest(mac, self._mac(head_seq, head_hash, k)) for k in self._verify_keys):
            return VerifyResult(False, checked, "the signed head does not verify (forged or written with another key)")
        if head_seq != checked or head_hash != prev:
            return VerifyResult(False, checked, f"the log ends at seq {checked} but the signed head says seq {head_seq}: records at the end were deleted", checked + 1)
        return VerifyResult(True, checked)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._db.close()
