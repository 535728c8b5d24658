"""Verify the whole audit log and name the first thing that is wrong.

Order of checks: every checkpoint's signature (with the key id it names) and
log id; then the records in order, each against the hash chain (names an
edited, removed or moved row) and against the `vendor` and `ts` columns that
`audit list --vendor`, `audit vendor` and reports filter on, while rebuilding the Merkle tree from the prune
point, comparing the root at every checkpoint size (catches a rewritten
chain); then checkpoints beyond the last record (truncation); then the
consistency proofs saved for checkpoints whose records were pruned; last the
keyed head (truncation after the newest checkpoint).

Two checkpoints whose roots were both recomputed from the same records are
consistent by construction (one tree is a prefix of the other), which is a
stronger check than a consistency proof; only checkpoints inside the pruned
prefix need the saved proofs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from gateway.audit.anchor import AnchoredAuditLog, AnchorError
from gateway.audit.checkpoint import Checkpoint, CheckpointError, public_key_for, verify_checkpoint, verify_growth
from gateway.audit.merkle import MerkleTree, leaf_hash
from gateway.audit.record import chain_hash
from gateway.audit.store import AuditLog
from gateway.keys import KeyProviderError


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    problem: str = ""
    seq: int | None = None
    record_id: str | None = None
    checkpoints: int = 0
    pruned: int = 0
    latest_checkpoint: int = 0
    warnings: list[str] = field(default_factory=list)


def verify_log(log: AuditLog) -> VerifyResult:
    """Reads one consistent snapshot, so a log that gateways keep writing verifies too."""
    with log.db.snapshot():
        return _verify(log)


def _verify(log: AuditLog) -> VerifyResult:
    head = log.head()
    stored = log.checkpoints()
    if head is None:
        if stored or next(log.rows(), None):
            return VerifyResult(False, 0, "the log's head row is missing (log tampered)")
        return VerifyResult(True, 0)
    result = VerifyResult(False, 0, pruned=head.pruned_size)

    checkpoints, proofs = [], {}
    for raw, proof in stored:
        try:
            cp = Checkpoint.from_dict(raw)
        except CheckpointError as exc:
            return _fail(result, f"the checkpoint stored at size {raw.get('tree_size')} is malformed: {exc}")
        problem = _check_signature(log, cp, head.log_id)
        if problem:
            return _fail(result, problem)
        if checkpoints and cp.timestamp < checkpoints[-1].timestamp:
            return _fail(result, f"checkpoint at size {cp.tree_size} is dated before the checkpoint at size "
                                 f"{checkpoints[-1].tree_size} (checkpoints reordered or forged)")
        checkpoints.append(cp)
        proofs[cp.tree_size] = proof
    result.checkpoints = len(checkpoints)
    by_size = {cp.tree_size: cp for cp in checkpoints}
    if isinstance(log, AnchoredAuditLog):
        problem = _check_anchor(log, head, checkpoints, by_size, result.warnings)
        if problem:
            return _fail(result, problem)

    tree = MerkleTree(head.pruned_size, head.pruned_frontier)
    prev, expected, last_matched = head.pruned_chain, head.pruned_size + 1, head.pruned_size
    if tree.size in by_size and by_size[tree.size].root_hash != tree.root():
        return _fail(result, f"the kept frontier of the {tree.size} pruned record(s) does not match the checkpoint at "
                             f"size {tree.size} (prune point altered)")
    for seq, rid, ts, vendor, raw, prev_hash, digest in _rows(log, head.pruned_size):
        if seq != expected:
            return _fail(result, f"record seq {expected} is missing (deleted); next present is seq {seq}", expected)
        text = raw.encode()  # stored as canonical JSON: re-encoding it would only hide reformatting
        try:
            data = json.loads(text)
        except ValueError:
            return _fail(result, f"record seq {seq} (id {rid}) is not valid JSON (altered)", seq, rid)
        if prev_hash != prev:
            return _fail(result, f"record seq {seq} (id {rid}) does not follow seq {seq - 1} "
                                 "(a record was removed, reordered or altered)", seq, rid)
        if chain_hash(prev, text) != digest or not isinstance(data, dict) or data.get("id") != rid:
            return _fail(result, f"record seq {seq} (id {rid}) was altered: its content does not match its hash", seq, rid)
        for column, value in (("vendor", vendor), ("ts", ts)):
            if data.get(column) != value:
                return _fail(result, f"record seq {seq} (id {rid}): its {column} column says {value!r} but the hashed "
                                     f"record says {data.get(column)!r}: one of them was edited, and `audit list "
                                     "--vendor`, `audit vendor` and reports filter on the column", seq, rid)
        tree.append(leaf_hash(text))
        cp = by_size.get(seq)
        if cp is not None:
            if cp.root_hash != tree.root():
                return _fail(result, f"the records do not match the signed checkpoint at size {seq}: one of seq "
                                     f"{last_matched + 1}..{seq} was altered, removed or reordered and the hash chain "
                                     "rewritten to hide it", last_matched + 1)
            last_matched = seq
        prev, expected = digest, seq + 1
        result.checked += 1

    size = tree.size
    beyond = [cp for cp in checkpoints if cp.tree_size > size]
    if beyond:
        return _fail(result, f"the log ends at seq {size} but a signed checkpoint covers seq {beyond[0].tree_size}: "
                             f"records seq {size + 1}..{beyond[0].tree_size} were deleted (log truncated)", size + 1)

    problem = _check_pruned_growth(log, checkpoints, proofs, head.pruned_size)
    if problem:
        return _fail(result, problem)

    if not log.head_is_sealed(head):
        return _fail(result, "the keyed head does not verify (forged or written with another key)")
    if head.size != size or head.chain != prev or head.root() != tree.root():
        return _fail(result, f"the log ends at seq {size} but the keyed head says seq {head.size}: "
                             "records at the end were deleted", size + 1)
    if checkpoints and head.checkpoint_size != checkpoints[-1].tree_size:
        return _fail(result, f"the newest checkpoint is at size {checkpoints[-1].tree_size} but the keyed head "
                             f"says {head.checkpoint_size}: a checkpoint was deleted")
    result.ok = True
    result.latest_checkpoint = checkpoints[-1].tree_size if checkpoints else 0
    return result


def _rows(log: AuditLog, after_seq: int, batch: int = 5000):
    """(seq, id, ts, vendor, record, prev_hash, hash) in seq order: the columns commands filter on, next to
    the record they must agree with."""
    last = after_seq
    while True:
        chunk = log.db.rows("SELECT seq, id, ts, vendor, record, prev_hash, hash FROM audit WHERE seq > ? "
                            "ORDER BY seq LIMIT ?", (last, batch))
        yield from chunk
        if len(chunk) < batch:
            return
        last = chunk[-1][0]


def _check_anchor(log: AnchoredAuditLog, head, checkpoints: list[Checkpoint], by_size: dict, warnings: list[str]) -> str:
    """Every anchored checkpoint of this log must be in the database, unchanged: a database rolled back to an
    older copy lacks the newer ones, deleted checkpoint rows lack theirs. The records are then checked
    against the database's checkpoints as usual."""
    where = f"in {log.anchor.path}"
    try:
        anchored = log.anchor.read()
    except AnchorError as exc:
        return str(exc)
    if anchored and anchored[-1].log_id != head.log_id:
        return (f"the newest anchored checkpoint {where} is of log {anchored[-1].log_id!r} at size "
                f"{anchored[-1].tree_size}, but this database is log {head.log_id!r}: the audit database was replaced")
    ours = [cp for cp in anchored if cp.log_id == head.log_id]
    newest_stored = checkpoints[-1].tree_size if checkpoints else 0
    for cp in ours:
        what = f"the anchored checkpoint at size {cp.tree_size} (dated {cp.timestamp}, {where})"
        problem = _check_signature(log, cp, head.log_id)
        if problem:
            return f"{what}: {problem}"
        stored = by_size.get(cp.tree_size)
        if stored is None and cp.tree_size > max(head.size, newest_stored):
            return (f"{what} is beyond this database, which ends at seq {head.size} with its newest checkpoint at "
                    f"size {newest_stored}: the database was rolled back to an older copy or truncated")
        if stored is None:
            return f"{what} is missing from the database: checkpoints were deleted"
        if stored.root_hash != cp.root_hash or stored.timestamp != cp.timestamp:
            return f"the checkpoint at size {cp.tree_size} in the database differs from {what}: it was replaced"
    anchored_size = ours[-1].tree_size if ours else 0
    behind = [cp.tree_size for cp in checkpoints if cp.tree_size > anchored_size]
    if behind:
        warnings.append(f"{len(behind)} checkpoint(s) (sizes {behind[0]}..{behind[-1]}) are not in the anchor file "
                        f"{log.anchor.path} yet: signed by another gateway sharing this log or just before a crash (the gateway anchors "
                        "them at start-up), or the anchor file was truncated")
    return ""


def _check_signature(log: AuditLog, cp: Checkpoint, log_id: str) -> str:
    where = f"checkpoint at size {cp.tree_size} (dated {cp.timestamp}, key id {cp.key_id!r})"
    if cp.log_id != log_id:
        return f"{where} is for another log ({cp.log_id!r}, this log is {log_id!r})"
    try:
        verify_checkpoint(cp, public_key_for(log.keys, cp.key_id))
    except KeyProviderError:
        return f"{where} names a key this gateway does not hold"
    except CheckpointError:
        return f"{where} has a bad signature: it was forged or altered"
    return ""


def _check_pruned_growth(log: AuditLog, checkpoints: list[Checkpoint], proofs: dict, pruned: int) -> str:
    """Checkpoints below the prune point can't be recomputed: check the proofs saved at prune time."""
    for old, new in zip(checkpoints, checkpoints[1:]):
        if old.tree_size >= pruned:
            break
        proof = proofs.get(new.tree_size)
        if proof is None:
            return (f"checkpoint at size {old.tree_size} covers pruned records but no consistency proof to the "
                    f"checkpoint at size {new.tree_size} was kept")
        keys = {cp.key_id: public_key_for(log.keys, cp.key_id) for cp in (old, new)}
        try:
            verify_growth(old, new, proof, keys)
        except CheckpointError as exc:
            return f"checkpoint at size {new.tree_size} is not an extension of the checkpoint at size {old.tree_size}: {exc}"
    return ""


def _fail(result: VerifyResult, problem: str, seq: int | None = None, record_id: str | None = None) -> VerifyResult:
    result.ok, result.problem, result.seq, result.record_id = False, problem, seq, record_id
    return result
