import base64
import hashlib
import json
from pathlib import Path

import pytest

from gateway.audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    ProofError,
    canonical_json,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent / "data" / "rfc9162-merkle"
INCLUSION_FILES = sorted((VECTORS / "inclusion").rglob("*.json"))
CONSISTENCY_FILES = sorted((VECTORS / "consistency").rglob("*.json"))

# The leaves and roots of the RFC 6962 reference tree used by transparency-dev/merkle.
REFERENCE_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]
REFERENCE_ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
REFERENCE_HASHES = [leaf_hash(leaf) for leaf in REFERENCE_LEAVES]


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(vector: dict) -> list[bytes]:
    return [_b64(p) for p in vector["proof"] or []]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"record {i}".encode()) for i in range(n)]


def _flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]


def test_vector_folder_holds_all_copied_files():
    assert len(INCLUSION_FILES) == 98
    assert len(CONSISTENCY_FILES) == 98
    assert (VECTORS / "LICENSE").is_file() and (VECTORS / "SOURCE.md").is_file()


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=_id)
def test_inclusion_vector(path):
    v = _load(path)
    check = lambda: verify_inclusion(_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v), _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=_id)
def test_consistency_vector(path):
    v = _load(path)
    check = lambda: verify_consistency(v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), _proof(v))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


def test_prover_reproduces_every_happy_path_vector_of_the_reference_tree():
    for path in INCLUSION_FILES + CONSISTENCY_FILES:
        v = _load(path)
        if v["desc"] != "happy path":
            continue
        if "leafIdx" in v:
            leaves = REFERENCE_HASHES[: v["treeSize"]]
            assert root_hash(leaves) == _b64(v["root"])
            assert inclusion_proof(leaves, v["leafIdx"]) == _proof(v), _id(path)
        else:
            leaves = REFERENCE_HASHES[: v["size2"]]
            assert root_hash(leaves) == _b64(v["root2"])
            assert consistency_proof(leaves, v["size1"]) == _proof(v), _id(path)


def test_empty_tree_root_is_sha256_of_nothing():
    assert root_hash([]) == hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert MerkleTree().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_are_domain_separated():
    assert leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()


def test_small_tree_roots_match_hand_computed_hashes():
    a, b, c, d, e = (leaf_hash(x) for x in (b"a", b"b", b"c", b"d", b"e"))
    h = lambda data: hashlib.sha256(data).digest()
    ab, cd = h(b"\x01" + a + b), h(b"\x01" + c + d)
    assert root_hash([a]) == a
    assert root_hash([a, b]) == ab
    assert root_hash([a, b, c]) == h(b"\x01" + ab + c)
    assert root_hash([a, b, c, d]) == h(b"\x01" + ab + cd)
    assert root_hash([a, b, c, d, e]) == h(b"\x01" + h(b"\x01" + ab + cd) + e)


def test_reference_tree_roots_match_published_values():
    for size, expected in enumerate(REFERENCE_ROOTS, start=1):
        assert root_hash(REFERENCE_HASHES[:size]) == expected


def test_incremental_tree_root_equals_root_hash_for_sizes_0_to_100():
    leaves = _leaves(100)
    tree = MerkleTree()
    assert tree.root() == root_hash([])
    for n in range(1, 101):
        tree.append(leaves[n - 1])
        assert tree.size == n
        assert tree.root() == root_hash(leaves[:n]), n
        assert len(tree.frontier) == n.bit_count()


def test_tree_restored_from_its_frontier_keeps_growing_identically():
    leaves = _leaves(40)
    tree = MerkleTree()
    for h in leaves[:21]:
        tree.append(h)
    restored = MerkleTree(tree.size, tree.frontier)
    for h in leaves[21:]:
        restored.append(h)
    assert restored.root() == root_hash(leaves)


def test_tree_rejects_a_frontier_that_does_not_fit_its_size():
    with pytest.raises(ValueError):
        MerkleTree(3, [EMPTY_ROOT])


def test_tree_rejects_a_leaf_that_is_not_a_hash():
    with pytest.raises(ValueError):
        MerkleTree().append(b"raw record")


def test_every_generated_inclusion_proof_verifies():
    for size in range(1, 34):
        leaves = _leaves(size)
        root = root_hash(leaves)
        for index in range(size):
            verify_inclusion(leaves[index], index, size, inclusion_proof(leaves, index), root)


def test_inclusion_proof_fails_when_any_byte_or_number_changes():
    leaves = _leaves(13)
    root, index = root_hash(leaves), 6
    proof = inclusion_proof(leaves, index)
    assert len(proof) == 4
    for k, element in enumerate(proof):
        for i in range(len(element)):
            bad = proof[:k] + [_flip(element, i)] + proof[k + 1:]
            with pytest.raises(ProofError):
                verify_inclusion(leaves[index], index, 13, bad, root)
    for i in range(32):
        with pytest.raises(ProofError):
            verify_inclusion(_flip(leaves[index], i), index, 13, proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index, 13, proof, _flip(root, i))
    # Sizes with the same path shape (12, 14) also verify: the signed checkpoint binds size to root.
    for wrong_index, wrong_size in [(5, 13), (7, 13), (6, 7), (6, 8), (6, 17), (6, 26), (13, 13), (-1, 13)]:
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], wrong_index, wrong_size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, 13, proof[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, 13, proof + [root], root)


def test_every_generated_consistency_proof_verifies():
    leaves = _leaves(33)
    roots = [root_hash(leaves[:n]) for n in range(34)]
    for new in range(1, 34):
        for old in range(1, new + 1):
            proof = consistency_proof(leaves[:new], old)
            verify_consistency(old, new, roots[old], roots[new], proof)


def test_consistency_proof_fails_when_any_byte_or_size_changes():
    leaves = _leaves(21)
    old_root, new_root = root_hash(leaves[:6]), root_hash(leaves)
    proof = consistency_proof(leaves, 6)
    for k, element in enumerate(proof):
        for i in range(len(element)):
            bad = proof[:k] + [_flip(element, i)] + proof[k + 1:]
            with pytest.raises(ProofError):
                verify_consistency(6, 21, old_root, new_root, bad)
    for i in range(32):
        with pytest.raises(ProofError):
            verify_consistency(6, 21, _flip(old_root, i), new_root, proof)
        with pytest.raises(ProofError):
            verify_consistency(6, 21, old_root, _flip(new_root, i), proof)
    # Sizes 17..32 share the path shape of 21; the signed checkpoint binds size to root.
    for old, new in [(5, 21), (7, 21), (6, 16), (6, 33), (6, 42), (21, 6), (0, 21)]:
        with pytest.raises(ProofError):
            verify_consistency(old, new, old_root, new_root, proof)
    with pytest.raises(ProofError):
        verify_consistency(6, 21, new_root, old_root, proof)


def test_a_rewritten_history_is_not_consistent_with_the_old_root():
    leaves = _leaves(10)
    old_root = root_hash(leaves[:4])
    rewritten = leaves[:2] + [leaf_hash(b"forged")] + leaves[3:]
    with pytest.raises(ProofError):
        verify_consistency(4, 10, old_root, root_hash(rewritten), consistency_proof(rewritten, 4))


def test_provers_reject_impossible_requests():
    leaves = _leaves(4)
    with pytest.raises(ValueError):
        inclusion_proof(leaves, 4)
    with pytest.raises(ValueError):
        consistency_proof(leaves, 0)
    with pytest.raises(ValueError):
        consistency_proof(leaves, 5)


def test_canonical_json_sorts_keys_drops_spaces_and_keeps_unicode():
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()


def test_canonical_json_rejects_nan_which_is_not_json():
    with pytest.raises(ValueError):
        canonical_json({"score": float("nan")})


def test_verifiers_reject_sizes_that_are_not_integers():
    leaves = _leaves(4)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[0], 0, 4.0, inclusion_proof(leaves, 0), root_hash(leaves))
    with pytest.raises(ProofError):
        verify_consistency(True, 4, root_hash(leaves[:1]), root_hash(leaves), consistency_proof(leaves, 1))
