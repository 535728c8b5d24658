"""AuditLog: one record per request, as leaves of an RFC 9162 Merkle tree.

Each record's leaf is its canonical JSON. Rows also keep a hash chain (each
row hashes the previous one) so `verify` can name the exact row that was
edited, removed or moved. One head row holds the tree's frontier, the chain
head, the last checkpoint and the prune point, MACed with the gateway's key so
cutting records off the end is caught even before the next checkpoint. Every
`checkpoint_every` records (and on a timer, and at shutdown) the gateway signs
a checkpoint (size, root, time) with its Ed25519 key: that is what an auditor
without the key can check.

Appends run in a single writer thread, never on the event loop, and commit in
groups: records that arrive while the writer is busy wait for it and then go
in together, as one transaction that locks the head row once (which
serialises gateways sharing one PostgreSQL log), one batch insert, one Merkle
frontier read and write, and one MACed head. No timer holds a record back: a
lone record is committed at once, and a record waits at most for the batch
before it (at most `MAX_BATCH` records). `append` returns once its record is
committed, so the response still completes after its record is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.audit.backend import open_backend
from gateway.audit.checkpoint import Checkpoint, signer_from_keys
from gateway.audit.merkle import MerkleTree, canonical_json, leaf_hash
from gateway.audit.record import GENESIS, AuditRecord, chain_hash
from gateway.keys import KeyProvider
from gateway.storage.thread import GroupCommit, StoreThread

log = logging.getLogger("vendorgate.audit")
DEFAULT_CHECKPOINT_EVERY = 1000
MAX_BATCH = 512  # records per group commit


@dataclass
class Head:
    log_id: str
    size: int
    chain: str
    frontier: tuple[bytes, ...]
    checkpoint_size: int
    checkpoint_time: str
    pruned_size: int
    pruned_chain: str
    pruned_frontier: tuple[bytes, ...]
    key_id: str
    mac: str = ""

    def message(self) -> bytes:
        parts = (self.log_id, self.size, self.chain, _hexes(self.frontier), self.checkpoint_size, self.checkpoint_time,
                 self.pruned_size, self.pruned_chain, _hexes(self.pruned_frontier))
        return "|".join(map(str, parts)).encode()

    def root(self) -> bytes:
        return MerkleTree(self.size, self.frontier).root()


HEAD_COLUMNS = ("log_id, seq, hash, frontier, checkpoint_size, checkpoint_time, "
                "pruned_size, pruned_hash, pruned_frontier, key_id, mac")
_FRONTIERS = {"frontier", "pruned_frontier"}


class AuditLogError(Exception):
    """The audit store cannot be written or read as a log (e.g. its head is gone)."""


class AuditLog:
    def __init__(self, backend: Any, keys: KeyProvider, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
                 read_only: bool = False):
        self.db = backend
        self.keys = keys
        self.checkpoint_every = checkpoint_every
        self._signer = signer_from_keys(keys)
        self._head_keys: dict[str, bytes] = {}
        self._writer = StoreThread("audit")
        self._appends = GroupCommit(self._writer, self.append_many_sync, MAX_BATCH)
        if not read_only:  # read-only commands (list, verify) never write, not even a new head
            self._init_head()

    @classmethod
    def in_data_dir(cls, data_dir: Path, keys: KeyProvider, dsn: str | None = None,
                    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY, read_only: bool = False) -> AuditLog:
        return cls(open_backend(Path(data_dir), dsn, read_only), keys, checkpoint_every, read_only)

    # -- head ---------------------------------------------------------------

    def _mac(self, head: Head) -> str:
        key = self._head_keys.get(head.key_id)
        if key is None:
            key = self._head_keys[head.key_id] = self.keys.derive("audit-head", key_id=head.key_id)
        return hmac.new(key, head.message(), hashlib.sha256).hexdigest()

    def head_is_sealed(self, head: Head) -> bool:
        try:
            return hmac.compare_digest(head.mac, self._mac(head))
        except Exception:  # unknown key id: not sealed by any key we hold
            return False

    def head(self, lock: bool = False) -> Head | None:
        rows = self.db.rows(f"SELECT {HEAD_COLUMNS} FROM audit_head WHERE one = 1" + (self.db.for_update if lock else ""))
        if not rows:
            return None
        values = [_unhexes(v) if f.name in _FRONTIERS else v for f, v in zip(fields(Head), rows[0])]
        return Head(*values)

    def _locked_head(self) -> Head:
        head = self.head(lock=True)
        if head is None:
            raise AuditLogError("the audit log's head row is missing (log tampered); run `vendorgate audit verify`")
        return head

    def write_head(self, head: Head) -> None:
        head.key_id = self.keys.current_id()
        head.mac = self._mac(head)
        self.db.run(
            "UPDATE audit_head SET seq = ?, hash = ?, frontier = ?, checkpoint_size = ?, checkpoint_time = ?, "
            "pruned_size = ?, pruned_hash = ?, pruned_frontier = ?, key_id = ?, mac = ? WHERE one = 1",
            (head.size, head.chain, _hexes(head.frontier), head.checkpoint_size, head.checkpoint_time,
             head.pruned_size, head.pruned_chain, _hexes(head.pruned_frontier), head.key_id, head.mac))

    def _init_head(self) -> None:
        """A new, empty store gets a head with a fresh log id. A store with
        records or checkpoints but no head is left alone for `verify` to report."""
        with self.db.locked():
            if self.db.rows("SELECT 1 FROM audit_head WHERE one = 1"):
                return
            if self.db.rows("SELECT 1 FROM audit LIMIT 1") or self.db.rows("SELECT 1 FROM audit_checkpoint LIMIT 1"):
                return
            head = Head(f"vendorgate-audit/{secrets.token_hex(8)}", 0, GENESIS, (), 0, "", 0, GENESIS, (), "")
            head.key_id = self.keys.current_id()
            head.mac = self._mac(head)
            self.db.run(f"INSERT INTO audit_head (one, {HEAD_COLUMNS}) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (one) DO NOTHING",
                        (head.log_id, 0, GENESIS, "", 0, "", 0, GENESIS, "", head.key_id, head.mac))

    # -- writes ---------------------------------------------------------------

    def append_sync(self, record: AuditRecord) -> int:
        """Append one record; sign a checkpoint when `checkpoint_every` are uncovered. Returns its seq."""
        return self.append_many_sync([record])[0]

    def append_many_sync(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append records in order in one transaction (a checkpoint is signed at the same tree
        sizes as one by one). All or none are written. Returns their seqs."""
        texts = [canonical_json(r.to_dict()) for r in records]
        with self.db.locked():
            head = self._locked_head()
            tree = MerkleTree(head.size, head.frontier)
            rows, seqs = [], []
            for record, text in zip(records, texts):
                seq, digest = head.size + 1, chain_hash(head.chain, text)
                tree.append(leaf_hash(text))
                rows.append((seq, record.id, record.ts, record.vendor, text.decode(), head.chain, digest))
                head.size, head.chain, head.frontier = seq, digest, tree.frontier
                seqs.append(seq)
                if head.size - head.checkpoint_size >= self.checkpoint_every:
                    self._insert(rows)
                    self._sign(head)
            self._insert(rows)
            self.write_head(head)
        return seqs

    def _insert(self, rows: list[tuple]) -> None:
        """Rows so far, before a checkpoint row that covers them; `rows` is emptied."""
        if rows:
            self.db.run_many("INSERT INTO audit (seq, id, ts, vendor, record, prev_hash, hash) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            rows.clear()

    def checkpoint_sync(self) -> Checkpoint | None:
        """Sign the current tree if it grew since the last checkpoint."""
        with self.db.locked():
            head = self._locked_head()
            if head.size == head.checkpoint_size:
                return None
            cp = self._sign(head)
            self.write_head(head)
            return cp

    def _sign(self, head: Head) -> Checkpoint:
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        # Gateways sharing a log may disagree on the clock by a little: never go back in time.
        cp = self._signer.sign(head.log_id, head.size, head.root(), max(now, head.checkpoint_time))
        self.db.run("INSERT INTO audit_checkpoint (tree_size, checkpoint) VALUES (?, ?)",
                    (cp.tree_size, json.dumps(cp.to_dict(), sort_keys=True)))
        head.checkpoint_size, head.checkpoint_time = cp.tree_size, cp.timestamp
        return cp

    async def append(self, record: AuditRecord) -> None:
        """Returns once the record is committed (with the others waiting at that moment).
        Shielded: a request cancelled at shutdown still gets its record written."""
        await self._appends.add(record)

    async def checkpoint(self) -> Checkpoint | None:
        return await self._writer.run(self.checkpoint_sync)

    async def run(self, func, *args):
        """Run a maintenance job (prune, ...) on the writer thread, after queued appends."""
        return await self._writer.run(func, *args)

    async def close(self) -> None:
        """Write every queued record, sign a final checkpoint, then close."""
        try:
            await self.checkpoint()
        except Exception:
            log.exception("could not sign the final audit checkpoint")
        await self._writer.close()
        self.db.close()

    # -- reads ----------------------------------------------------------------

    def records(self, vendor: str | None = None, limit: int | None = None) -> list[dict]:
        sql = "SELECT seq, record FROM audit"
        args: list = []
        if vendor:
            sql += " WHERE vendor = ?"
            args.append(vendor)
        sql += " ORDER BY seq DESC" + (" LIMIT ?" if limit else "")
        if limit:
            args.append(limit)
        rows = self.db.rows(sql, tuple(args))
        return [dict(json.loads(r[1]), seq=r[0]) for r in reversed(rows)]

    def rows(self, after_seq: int = 0, upto_seq: int | None = None, batch: int = 5000):
        """(seq, id, record text, prev_hash, hash) in seq order, fetched in batches."""
        last = after_seq
        while True:
            chunk = self.db.rows("SELECT seq, id, record, prev_hash, hash FROM audit WHERE seq > ? "
                                 + ("AND seq <= ? " if upto_seq is not None else "") + "ORDER BY seq LIMIT ?",
                                 (last, upto_seq, batch) if upto_seq is not None else (last, batch))
            yield from chunk
            if len(chunk) < batch:
                return
            last = chunk[-1][0]

    def checkpoints(self) -> list[tuple[Any, list[bytes] | None]]:
        """(checkpoint dict, saved consistency proof from the previous one), oldest first."""
        out = []
        for _size, raw, proof in self.db.rows("SELECT tree_size, checkpoint, proof FROM audit_checkpoint ORDER BY tree_size"):
            out.append((json.loads(raw), None if proof is None else [bytes.fromhex(p) for p in json.loads(proof)]))
        return out


def _hexes(hashes: tuple[bytes, ...]) -> str:
    return "".join(h.hex() for h in hashes)


def _unhexes(text: str) -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(text[i:i + 64]) for i in range(0, len(text), 64))
