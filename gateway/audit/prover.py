"""Proofs for a log whose oldest leaves may have been pruned.

After pruning the first `pruned` leaves, the log keeps only the frontier of
that prefix: the roots of the perfect subtrees that tile it (one per set bit
of `pruned`). Every node of an RFC 9162 tree of size >= `pruned` that is
needed to prove a kept leaf, or the root, is either one of those subtrees or
is computable from them and the kept leaves, so proofs for kept records and
consistency proofs from sizes >= `pruned` still work. Nodes strictly inside
the pruned prefix are gone for good.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.audit.merkle import MerkleTree, node_hash


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def frontier_blocks(size: int, frontier: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
    """(start, end) of each perfect subtree that tiles [0, size), with its hash."""
    blocks, start = {}, 0
    bits = [b for b in range(size.bit_length() - 1, -1, -1) if size >> b & 1]
    for bit, digest in zip(bits, frontier, strict=True):
        blocks[(start, start + (1 << bit))] = digest
        start += 1 << bit
    return blocks


class Prover:
    """Node hashes over `leaves` (the hashes of leaves pruned, pruned+1, ...)."""

    def __init__(self, pruned: int, pruned_frontier: Sequence[bytes], leaves: Sequence[bytes]):
        self.pruned = pruned
        self.leaves = leaves
        self._pruned_frontier = tuple(pruned_frontier)
        self._cache = frontier_blocks(pruned, pruned_frontier)

    @property
    def size(self) -> int:
        return self.pruned + len(self.leaves)

    def node(self, lo: int, hi: int) -> bytes:
        """MTH of leaves [lo, hi), memoised so many proofs cost one pass."""
        cached = self._cache.get((lo, hi))
        if cached is not None:
            return cached
        if hi <= self.pruned or hi > self.size or lo >= hi:
            raise ValueError(f"leaves {lo}..{hi - 1} are pruned or beyond the log (kept: {self.pruned}..{self.size - 1})")
        if hi - lo == 1:
            return self.leaves[lo - self.pruned]
        k = _split(hi - lo)
        digest = node_hash(self.node(lo, lo + k), self.node(lo + k, hi))
        if (hi - lo) & (hi - lo - 1) == 0:
            self._cache[(lo, hi)] = digest
        return digest

    def root(self, size: int) -> bytes:
        tree = MerkleTree(self.pruned, self._pruned_frontier)
        for leaf in self.leaves[: size - self.pruned]:
            tree.append(leaf)
        return tree.root()

    def frontier(self, size: int) -> tuple[bytes, ...]:
        """Frontier of the first `size` leaves, to keep when pruning up to `size`."""
        return tuple(self.node(lo, hi) for lo, hi in frontier_blocks(size, [b""] * size.bit_count()))

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1."""
        if not self.pruned <= index < size <= self.size:
            raise ValueError(f"leaf {index} is pruned or outside a tree of size {size}")
        return self._path(index, 0, size)

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1."""
        if not 0 < old_size <= new_size <= self.size:
            raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
        return self._subproof(old_size, 0, new_size, True)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = _split(hi - lo)
        if m < lo + k:
            return self._path(m, lo, lo + k) + [self.node(lo + k, hi)]
        return self._path(m, lo + k, hi) + [self.node(lo, lo + k)]

    def _subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        if m == hi - lo:
            return [] if whole else [self.node(lo, hi)]
        k = _split(hi - lo)
        if m <= k:
            return self._subproof(m, lo, lo + k, whole) + [self.node(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self.node(lo, lo + k)]
