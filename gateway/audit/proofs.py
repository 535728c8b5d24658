"""Inclusion bundles for one record, and pruning old records without losing
the ability to verify the rest.

Both rebuild node hashes from the kept leaves plus the frontier of the pruned
prefix (`Prover`), reading the records once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.audit.checkpoint import Checkpoint, InclusionBundle, public_key_for, verify_bundle
from gateway.audit.merkle import leaf_hash
from gateway.audit.prover import Prover
from gateway.audit.store import AuditLog, AuditLogError


def _prover(log: AuditLog, pruned: int, pruned_frontier, upto: int) -> tuple[Prover, dict[int, str]]:
    leaves, chains = [], {}
    for seq, _rid, raw, _prev, digest in log.rows(pruned, upto):
        leaves.append(leaf_hash(raw.encode()))
        chains[seq] = digest
    if len(leaves) != upto - pruned:
        raise AuditLogError(f"records between seq {pruned + 1} and {upto} are missing; run `vendorgate audit verify`")
    return Prover(pruned, pruned_frontier, leaves), chains


def _first_missing(log: AuditLog, pruned: int, upto: int) -> int | None:
    """The lowest seq in pruned+1..upto with no row (deleted), or None."""
    expected = pruned + 1
    for (seq,) in log.db.rows("SELECT seq FROM audit WHERE seq > ? AND seq <= ? ORDER BY seq", (pruned, upto)):
        if seq != expected:
            return expected
        expected += 1
    return expected if expected <= upto else None


def prove(log: AuditLog, record_id: str) -> InclusionBundle:
    """A bundle for `record_id` against the newest checkpoint (signing one if the record is newer).

    A deleted row makes every tree that contains it unprovable (its leaf hash is gone), but not the
    checkpoints signed before it: a record older than the gap is proven against the newest of those."""
    rows = log.db.rows("SELECT seq, record FROM audit WHERE id = ?", (record_id,))
    if not rows:
        raise AuditLogError(f"no record with id {record_id!r} (never written, or pruned by retention)")
    seq, raw = rows[0]
    head = log.head()
    if head is None:
        raise AuditLogError("the audit log's head row is missing (log tampered)")
    if head.checkpoint_size < seq:
        log.checkpoint_sync()
        head = log.head()
    sizes = [raw_cp["tree_size"] for raw_cp, _ in log.checkpoints()]
    if not sizes or sizes[-1] < seq:
        raise AuditLogError(f"no signed checkpoint covers seq {seq} although the keyed head says one does "
                            "(checkpoints deleted); run `vendorgate audit verify`")
    gap = _first_missing(log, head.pruned_size, sizes[-1])
    usable = [s for s in sizes if s >= seq and (gap is None or s < gap)]
    if not usable:
        before = [s for s in sizes if s > head.pruned_size and s < gap]
        can = (f"records seq {head.pruned_size + 1}..{before[-1]} can still be proven (against the checkpoint at "
               f"size {before[-1]})" if before else "no record can be proven: no checkpoint was signed before it")
        raise AuditLogError(f"record seq {seq} cannot be proven: record seq {gap} is missing (deleted) and every "
                            f"signed checkpoint that covers seq {seq} also covers seq {gap}; {can}; "
                            "run `vendorgate audit verify`")
    cp = Checkpoint.from_dict(log.checkpoints()[sizes.index(usable[-1])][0])
    prover, _ = _prover(log, head.pruned_size, head.pruned_frontier, cp.tree_size)
    if prover.root(cp.tree_size) != cp.root_hash:
        raise AuditLogError(f"the records do not match the checkpoint at size {cp.tree_size}; run `vendorgate audit verify`")
    bundle = InclusionBundle(json.loads(raw), seq - 1, cp.tree_size, prover.inclusion(seq - 1, cp.tree_size), cp,
                             public_key_for(log.keys, cp.key_id))
    verify_bundle(bundle)
    return bundle


def prove_many(log: AuditLog, record_ids: list[str], missing_ok: bool = False) -> dict[str, InclusionBundle]:
    """Bundles for several records against one checkpoint, the tree rebuilt once. With `missing_ok`,
    records not in the log (pruned by retention) are left out instead of refused."""
    wanted = sorted(set(record_ids))
    found: dict[str, tuple[int, str]] = {}
    for chunk in (wanted[i:i + 500] for i in range(0, len(wanted), 500)):
        for rid, seq, raw in log.db.rows(f"SELECT id, seq, record FROM audit WHERE id IN ({', '.join('?' * len(chunk))})",
                                         tuple(chunk)):
            found[rid] = (seq, raw)
    missing = [r for r in wanted if r not in found]
    if missing and not missing_ok:
        raise AuditLogError(f"no record with id {missing[0]!r} (never written, or pruned by retention)")
    if not found:
        return {}
    head = log.head()
    if head is None:
        raise AuditLogError("the audit log's head row is missing (log tampered)")
    if head.checkpoint_size < max(seq for seq, _ in found.values()):
        log.checkpoint_sync()
        head = log.head()
    cp = Checkpoint.from_dict(log.checkpoints()[-1][0])
    prover, _ = _prover(log, head.pruned_size, head.pruned_frontier, cp.tree_size)
    if prover.root(cp.tree_size) != cp.root_hash:
        raise AuditLogError(f"the records do not match the checkpoint at size {cp.tree_size}; run `vendorgate audit verify`")
    public_key = public_key_for(log.keys, cp.key_id)
    out = {}
    for rid, (seq, raw) in found.items():
        out[rid] = bundle = InclusionBundle(json.loads(raw), seq - 1, cp.tree_size, prover.inclusion(seq - 1, cp.tree_size),
                                            cp, public_key)
        verify_bundle(bundle)
    return out


@dataclass
class PruneResult:
    pruned: int       # records deleted now
    pruned_total: int  # records before the kept ones (ever pruned)
    kept: int
    reason: str = ""


def prune(log: AuditLog, retention_days: int, now: datetime | None = None) -> PruneResult:
    """Delete records older than `retention_days`, up to the newest checkpoint.

    Before deleting, save the consistency proof from every checkpoint inside
    the pruned range to the next one, and keep the frontier of the pruned
    prefix, so every checkpoint still verifies and the kept records still
    prove against the newest checkpoint.
    """
    if retention_days < 0:
        raise ValueError(f"retention_days must be 0 or more, not {retention_days} (a negative age is in the future)")
    cutoff = ((now or datetime.now(UTC)) - timedelta(days=retention_days)).isoformat(timespec="milliseconds")
    log.checkpoint_sync()
    with log.db.locked():
        head = log.head(lock=True)
        if head is None:
            raise AuditLogError("the audit log's head row is missing (log tampered)")
        first_kept = log.db.rows("SELECT MIN(seq) FROM audit WHERE ts >= ?", (cutoff,))[0][0]
        target = min(head.size if first_kept is None else first_kept - 1, head.checkpoint_size)
        if target <= head.pruned_size:
            return PruneResult(0, head.pruned_size, head.size - head.pruned_size, f"nothing older than {cutoff}")
        stored = log.checkpoints()
        sizes = [raw["tree_size"] for raw, _ in stored]
        pairs = [(a, b) for a, b, (_, proof) in zip(sizes, sizes[1:], stored[1:])
                 if head.pruned_size <= a < target and proof is None]
        upto = max([target] + [b for _, b in pairs])
        prover, chains = _prover(log, head.pruned_size, head.pruned_frontier, upto)
        for a, b in pairs:
            proof = json.dumps([p.hex() for p in prover.consistency(a, b)])
            log.db.run("UPDATE audit_checkpoint SET proof = ? WHERE tree_size = ?", (proof, b))
        head.pruned_frontier = prover.frontier(target)
        head.pruned_chain = chains[target]
        deleted = target - head.pruned_size
        head.pruned_size = target
        log.db.run("DELETE FROM audit WHERE seq <= ?", (target,))
        log.write_head(head)
    return PruneResult(deleted, target, head.size - target)
