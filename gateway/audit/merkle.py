"""RFC 9162 Merkle tree hashing, proofs and proof verification (SHA-256).

The audit log is an append-only list of records; each record's leaf is its
canonical JSON. A root hash over all leaves, signed in a checkpoint, lets an
auditor check that one record is in the log (inclusion proof) and that a later
log only extends an earlier one (consistency proof), without trusting the
gateway. Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 step by step,
with the edge cases of the transparency-dev/merkle reference implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(Exception):
    """An inclusion or consistency proof does not verify."""


def canonical_json(obj: Any) -> bytes:
    """The one byte encoding every audit hash is computed over (leaves and the chain):
    sorted keys, no spaces, UTF-8, and no NaN or infinity, which JSON cannot carry."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over already-hashed leaves; the empty tree is SHA-256 of nothing."""
    tree = MerkleTree()
    for h in leaf_hashes:
        tree.append(h)
    return tree.root()


class MerkleTree:
    """Append-only tree that keeps only the roots of its perfect subtrees.

    `frontier` holds one hash per set bit of `size`, largest subtree first, so
    the gateway can keep (and persist) the current root in O(log n) space.
    """

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()):
        if size < 0 or len(frontier) != size.bit_count():
            raise ValueError(f"a tree of size {size} needs {max(size, 0).bit_count()} frontier hashes")
        self._size = size
        self._frontier = [bytes(h) for h in frontier]

    @property
    def size(self) -> int:
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        return tuple(self._frontier)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash; merge equal-sized subtrees like a binary carry."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash must be {HASH_SIZE} bytes")
        node, n = leaf, self._size
        while n & 1:
            node = node_hash(self._frontier.pop(), node)
            n >>= 1
        self._frontier.append(node)
        self._size += 1

    def root(self) -> bytes:
        if not self._frontier:
            return EMPTY_ROOT
        node = self._frontier[-1]
        for left in reversed(self._frontier[:-1]):
            node = node_hash(left, node)
        return node


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"leaf index {index} is outside a tree of size {len(leaf_hashes)}")
    return _path(index, leaf_hashes)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1; empty when old_size == n."""
    if not 0 < old_size <= len(leaf_hashes):
        raise ValueError(f"no consistency proof from size {old_size} to size {len(leaf_hashes)}")
    return _subproof(old_size, leaf_hashes, True)


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return _path(m, leaves[:k]) + [root_hash(leaves[k:])]
    return _path(m - k, leaves[k:]) + [root_hash(leaves[:k])]


def _subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [root_hash(leaves)]
    k = _split(n)
    if m <= k:
        return _subproof(m, leaves[:k], whole) + [root_hash(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [root_hash(leaves[:k])]


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: raise ProofError unless `leaf` is at `index` in the tree with `root`."""
    _require_ints(index, tree_size)
    if index < 0 or index >= tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    _require_proof_hashes(leaf, proof)
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if not hmac.compare_digest(r, root):
        raise ProofError("inclusion proof does not lead to the expected root hash")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raise ProofError unless the new tree extends the old one.

    As in transparency-dev/merkle, a proof from the empty tree is rejected as
    meaningless, and equal sizes need an empty proof and equal roots.
    """
    _require_ints(old_size, new_size)
    if old_size < 0 or new_size < old_size:
        raise ProofError(f"tree cannot shrink from size {old_size} to size {new_size}")
    if old_size == 0:
        raise ProofError("consistency proof from the empty tree is meaningless")
    if old_size == new_size:
        if proof:
            raise ProofError("trees of equal size need an empty consistency proof")
        if not hmac.compare_digest(old_root, new_root):
            raise ProofError("trees of equal size have different root hashes")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    _require_proof_hashes(old_root, proof)
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if not hmac.compare_digest(fr, old_root):
        raise ProofError("consistency proof does not lead to the old root hash")
    if not hmac.compare_digest(sr, new_root):
        raise ProofError("consistency proof does not lead to the new root hash")


def _require_ints(*values: object) -> None:
    if any(type(v) is not int for v in values):
        raise ProofError("leaf index and tree sizes must be integers")


def _require_hash(value: bytes, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes")


def _require_proof_hashes(first: bytes, proof: Sequence[bytes]) -> None:
    _require_hash(first, "hash")
    for i, p in enumerate(proof):
        _require_hash(p, f"proof element {i}")
