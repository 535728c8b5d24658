import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointSigner,
    InclusionBundle,
    public_key_for,
    signer_from_keys,
    verify_bundle,
    verify_checkpoint,
    verify_growth,
)
from gateway.audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    canonical_json,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
)
from gateway.keys import LocalKeyProvider

LOG = "vendorgate.example/audit"
TS = "2025-03-01T12:00:00Z"
RECORDS = [
    {"id": f"r{i}", "vendor": "openai", "decision": "redact", "findings": {"EMAIL_ADDRESS": i}, "note": "café"}
    for i in range(11)
]
LEAVES = [leaf_hash(canonical_json(r)) for r in RECORDS]


@pytest.fixture
def signer():
    return CheckpointSigner(Ed25519PrivateKey.generate(), "k1")


def _bundle(signer, index=4, size=11):
    cp = signer.sign(LOG, size, root_hash(LEAVES[:size]), TS)
    return InclusionBundle(RECORDS[index], index, size, inclusion_proof(LEAVES[:size], index), cp, signer.public_key)


def test_signed_checkpoint_verifies_with_the_signers_public_key(signer):
    cp = signer.sign(LOG, 11, root_hash(LEAVES), TS)
    verify_checkpoint(cp, signer.public_key)
    assert cp.body() == f"{LOG}\n11\n{cp.to_dict()['root_hash']}\n{TS}\n".encode()


@pytest.mark.parametrize("change", [
    {"tree_size": 12}, {"root_hash": EMPTY_ROOT}, {"timestamp": "2025-03-01T12:00:01Z"}, {"log_id": "other-log"},
])
def test_checkpoint_with_any_signed_field_changed_fails(signer, change):
    forged = dataclasses.replace(signer.sign(LOG, 11, root_hash(LEAVES), TS), **change)
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(forged, signer.public_key)


def test_checkpoint_signed_by_another_key_fails(signer):
    other = CheckpointSigner(Ed25519PrivateKey.generate(), "k1")
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(other.sign(LOG, 11, root_hash(LEAVES), TS), signer.public_key)


def test_checkpoint_with_a_flipped_signature_bit_fails(signer):
    cp = signer.sign(LOG, 11, root_hash(LEAVES), TS)
    sig = bytes([cp.signature[0] ^ 1]) + cp.signature[1:]
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(dataclasses.replace(cp, signature=sig), signer.public_key)


def test_verify_rejects_a_public_key_of_the_wrong_length(signer):
    with pytest.raises(CheckpointError, match="32 raw Ed25519 bytes"):
        verify_checkpoint(signer.sign(LOG, 0, EMPTY_ROOT, TS), b"short")


@pytest.mark.parametrize("timestamp", ["2025-03-01T12:00:00", "2025-03-01T12:00:00+02:00", "yesterday", "2025-03-01\nX"])
def test_signing_refuses_a_timestamp_that_is_not_utc_iso8601(signer, timestamp):
    with pytest.raises(CheckpointError, match="timestamp"):
        signer.sign(LOG, 1, LEAVES[0], timestamp)


def test_signing_refuses_a_log_id_with_a_newline_and_a_short_root(signer):
    with pytest.raises(CheckpointError, match="log id"):
        signer.sign("log\n5", 1, LEAVES[0], TS)
    with pytest.raises(CheckpointError, match="root hash"):
        signer.sign(LOG, 1, b"\x00" * 31, TS)


def test_default_timestamp_is_current_utc(signer):
    cp = signer.sign(LOG, 0, EMPTY_ROOT)
    assert cp.timestamp.endswith("Z")
    verify_checkpoint(cp, signer.public_key)


def test_checkpoint_survives_dict_and_text_round_trips(signer):
    cp = signer.sign(LOG, 11, root_hash(LEAVES), TS)
    assert Checkpoint.from_dict(json.loads(json.dumps(cp.to_dict()))) == cp
    text = cp.to_text()
    assert text.startswith(f"{LOG}\n11\n") and "\n\n\u2014 k1 " in text
    assert Checkpoint.from_text(text) == cp
    assert Checkpoint.from_text(text).to_text() == text


@pytest.mark.parametrize("mutate", [
    lambda t: t.replace("\n11\n", "\n011\n"),
    lambda t: t.replace("\n11\n", "\n-1\n"),
    lambda t: t.replace("\n\n", "\n"),
    lambda t: t + "\u2014 k2 AAAA\n",
    lambda t: t.replace("\u2014 k1 ", "\u2014 k1  "),
    lambda t: t[:-1],
])
def test_malformed_checkpoint_text_is_rejected(signer, mutate):
    text = signer.sign(LOG, 11, root_hash(LEAVES), TS).to_text()
    with pytest.raises(CheckpointError, match="malformed"):
        Checkpoint.from_text(mutate(text))


@pytest.mark.parametrize("field, value", [
    ("tree_size", "11"), ("tree_size", True), ("root_hash", "not base64!"), ("signature", "AAAA"), ("key_id", "k 1"),
])
def test_malformed_checkpoint_dict_is_rejected(signer, field, value):
    raw = signer.sign(LOG, 11, root_hash(LEAVES), TS).to_dict()
    raw[field] = value
    with pytest.raises(CheckpointError, match="malformed"):
        Checkpoint.from_dict(raw)


def test_signing_key_is_derived_deterministically_from_the_key_provider(keys):
    again = LocalKeyProvider(keys.path, env={})
    assert signer_from_keys(keys).key_id == "k1"
    assert public_key_for(keys, "k1") == public_key_for(again, "k1") == signer_from_keys(again).public_key
    assert len(public_key_for(keys, "k1")) == 32
    cp = signer_from_keys(keys).sign(LOG, 3, root_hash(LEAVES[:3]), TS)
    verify_checkpoint(cp, public_key_for(again, "k1"))


def test_rotation_gives_a_new_signing_key_and_old_checkpoints_stay_verifiable(keys):
    old_cp = signer_from_keys(keys).sign(LOG, 3, root_hash(LEAVES[:3]), TS)
    new_id = keys.rotate()
    new_signer = signer_from_keys(keys)
    assert new_signer.key_id == new_id and new_signer.public_key != public_key_for(keys, "k1")
    verify_checkpoint(old_cp, public_key_for(keys, "k1"))
    with pytest.raises(CheckpointError):
        verify_checkpoint(old_cp, new_signer.public_key)


def test_signer_repr_shows_no_key_material(signer):
    assert repr(signer) == "CheckpointSigner(key_id='k1')"


def test_two_checkpoints_of_a_growing_tree_are_consistent(keys):
    signer = signer_from_keys(keys)
    tree = MerkleTree()
    for h in LEAVES[:4]:
        tree.append(h)
    old = signer.sign(LOG, tree.size, tree.root(), "2025-03-01T12:00:00Z")
    for h in LEAVES[4:]:
        tree.append(h)
    new = signer.sign(LOG, tree.size, tree.root(), "2025-03-01T13:00:00Z")
    trusted = {"k1": public_key_for(keys, "k1")}
    verify_growth(old, new, consistency_proof(LEAVES, 4), trusted)
    empty = signer.sign(LOG, 0, EMPTY_ROOT, "2025-03-01T11:00:00Z")
    verify_growth(empty, old, [], trusted)


def test_growth_check_catches_a_rewritten_log_and_wrong_order(signer):
    trusted = {"k1": signer.public_key}
    old = signer.sign(LOG, 4, root_hash(LEAVES[:4]), "2025-03-01T12:00:00Z")
    rewritten = [LEAVES[0], leaf_hash(b"forged")] + LEAVES[2:]
    new = signer.sign(LOG, 11, root_hash(rewritten), "2025-03-01T13:00:00Z")
    with pytest.raises(CheckpointError, match="append-only"):
        verify_growth(old, new, consistency_proof(rewritten, 4), trusted)
    honest = signer.sign(LOG, 11, root_hash(LEAVES), "2025-03-01T11:00:00Z")
    with pytest.raises(CheckpointError, match="earlier timestamp"):
        verify_growth(old, honest, consistency_proof(LEAVES, 4), trusted)
    with pytest.raises(CheckpointError, match="no trusted public key"):
        verify_growth(old, honest, consistency_proof(LEAVES, 4), {})


def test_bundle_round_trips_through_json_and_verifies(signer):
    bundle = _bundle(signer)
    restored = InclusionBundle.from_json(bundle.to_json())
    assert restored == bundle
    verify_bundle(restored, signer.public_key)
    verify_bundle(restored)


def test_bundle_verifies_for_every_record_and_a_one_record_tree(signer):
    for index in range(11):
        verify_bundle(InclusionBundle.from_json(_bundle(signer, index).to_json()), signer.public_key)
    verify_bundle(_bundle(signer, 0, 1), signer.public_key)


def test_bundle_with_an_altered_record_fails(signer):
    raw = json.loads(_bundle(signer).to_json())
    raw["record"]["decision"] = "allow"
    with pytest.raises(CheckpointError, match="record is not at index 4"):
        verify_bundle(InclusionBundle.from_json(json.dumps(raw)), signer.public_key)


def test_bundle_with_an_altered_proof_or_index_fails(signer):
    bundle = _bundle(signer)
    proof = list(bundle.proof)
    proof[1] = bytes([proof[1][0] ^ 1]) + proof[1][1:]
    for forged in (dataclasses.replace(bundle, proof=proof), dataclasses.replace(bundle, leaf_index=5),
                   dataclasses.replace(bundle, proof=bundle.proof[:-1])):
        with pytest.raises(CheckpointError, match="record is not at index"):
            verify_bundle(forged, signer.public_key)


def test_bundle_with_an_altered_checkpoint_fails(signer):
    bundle = _bundle(signer)
    raw = json.loads(bundle.to_json())
    raw["checkpoint"]["tree_size"] = 12
    raw["tree_size"] = 12
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_bundle(InclusionBundle.from_json(json.dumps(raw)), signer.public_key)
    with pytest.raises(CheckpointError, match="differs from the checkpoint"):
        verify_bundle(dataclasses.replace(bundle, tree_size=12), signer.public_key)


def test_bundle_resigned_by_an_attacker_fails_against_the_trusted_key(signer):
    attacker = CheckpointSigner(Ed25519PrivateKey.generate(), "k1")
    forged_records = [dict(RECORDS[0], decision="allow")] + RECORDS[1:]
    leaves = [leaf_hash(canonical_json(r)) for r in forged_records]
    cp = attacker.sign(LOG, 11, root_hash(leaves), TS)
    forged = InclusionBundle(forged_records[0], 0, 11, inclusion_proof(leaves, 0), cp, attacker.public_key)
    verify_bundle(forged)
    with pytest.raises(CheckpointError, match="not the trusted public key"):
        verify_bundle(forged, signer.public_key)
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_bundle(dataclasses.replace(forged, public_key=signer.public_key), signer.public_key)


@pytest.mark.parametrize("text", [
    "not json", "[]", '{"format": "other"}',
    '{"format": "vendorgate-inclusion-proof/v1", "record": {}, "leaf_index": 0, "tree_size": 1, "proof": [1]}',
])
def test_malformed_bundle_is_rejected(text):
    with pytest.raises(CheckpointError, match="malformed"):
        InclusionBundle.from_json(text)
