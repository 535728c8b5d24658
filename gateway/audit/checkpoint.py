"""Signed checkpoints of the audit log, and offline inclusion-proof bundles.

A checkpoint commits the gateway, under an Ed25519 key, to one (size, root)
of the audit Merkle tree at one time. The signed body follows the C2SP
tlog-checkpoint layout (origin, size, base64 root) with the timestamp as an
extension line; the text form appends a signed-note style line
"— <key_id> <base64 signature>" (without the note key hash prefix). A bundle
holds one audit record, its inclusion proof and the checkpoint, so an auditor
can check the record offline with nothing but the gateway's public key.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    ProofError,
    canonical_json,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from gateway.keys import KeyProvider

__all__ = [
    "BUNDLE_FORMAT", "Checkpoint", "CheckpointError", "CheckpointSigner", "InclusionBundle", "canonical_json",
    "public_key_for", "signer_from_keys", "verify_bundle", "verify_checkpoint", "verify_growth",
]

KEY_PURPOSE = "audit-signing"
BUNDLE_FORMAT = "vendorgate-inclusion-proof/v1"
SIGNATURE_SIZE = 64
_SIG_PREFIX = "\u2014 "
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)")


class CheckpointError(Exception):
    """A checkpoint or bundle is malformed, badly signed or does not prove what it claims."""


@dataclass(frozen=True)
class Checkpoint:
    log_id: str
    tree_size: int
    root_hash: bytes
    timestamp: str
    key_id: str
    signature: bytes

    def __post_init__(self) -> None:
        _check_body(self.log_id, self.tree_size, self.root_hash, self.timestamp)
        if not self.key_id or not self.key_id.isprintable() or any(c.isspace() for c in self.key_id):
            raise CheckpointError("malformed checkpoint: key id must be non-empty printable text without spaces")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise CheckpointError(f"malformed checkpoint: signature must be {SIGNATURE_SIZE} bytes")

    def body(self) -> bytes:
        """The exact bytes that are signed."""
        return checkpoint_body(self.log_id, self.tree_size, self.root_hash, self.timestamp)

    def to_dict(self) -> dict[str, Any]:
        return {"log_id": self.log_id, "tree_size": self.tree_size, "root_hash": _b64(self.root_hash),
                "timestamp": self.timestamp, "key_id": self.key_id, "signature": _b64(self.signature)}

    @classmethod
    def from_dict(cls, raw: Any) -> Checkpoint:
        if not isinstance(raw, Mapping):
            raise CheckpointError("malformed checkpoint: expected a JSON object")
        return cls(_field(raw, "log_id", str), _field(raw, "tree_size", int), _unb64(_field(raw, "root_hash", str)),
                   _field(raw, "timestamp", str), _field(raw, "key_id", str), _unb64(_field(raw, "signature", str)))

    def to_text(self) -> str:
        return f"{self.body().decode()}\n{_SIG_PREFIX}{self.key_id} {_b64(self.signature)}\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) != 7 or lines[4] != "" or lines[6] != "" or not lines[5].startswith(_SIG_PREFIX):
            raise CheckpointError("malformed checkpoint text: expected 4 body lines, a blank line, one signature line")
        origin, size, root, timestamp = lines[:4]
        if not _DECIMAL.fullmatch(size):
            raise CheckpointError("malformed checkpoint text: tree size is not a decimal number")
        key_id, _, signature = lines[5][len(_SIG_PREFIX):].partition(" ")
        return cls(origin, int(size), _unb64(root), timestamp, key_id, _unb64(signature))


def checkpoint_body(log_id: str, tree_size: int, root_hash: bytes, timestamp: str) -> bytes:
    _check_body(log_id, tree_size, root_hash, timestamp)
    return f"{log_id}\n{tree_size}\n{_b64(root_hash)}\n{timestamp}\n".encode()


class CheckpointSigner:
    """Signs checkpoints with one Ed25519 key, named by `key_id`."""

    def __init__(self, private_key: Ed25519PrivateKey, key_id: str):
        self._private_key = private_key
        self.key_id = key_id

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id!r})"

    @property
    def public_key(self) -> bytes:
        return self._private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, log_id: str, tree_size: int, root_hash: bytes, timestamp: str | None = None) -> Checkpoint:
        timestamp = timestamp or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        body = checkpoint_body(log_id, tree_size, root_hash, timestamp)
        return Checkpoint(log_id, tree_size, root_hash, timestamp, self.key_id, self._private_key.sign(body))


def signer_from_keys(keys: KeyProvider, key_id: str | None = None) -> CheckpointSigner:
    """The same master key always gives the same signing key; rotation gives a new one."""
    key_id = key_id or keys.current_id()
    seed = keys.derive(KEY_PURPOSE, "", key_id)
    return CheckpointSigner(Ed25519PrivateKey.from_private_bytes(seed), key_id)


def public_key_for(keys: KeyProvider, key_id: str | None = None) -> bytes:
    """Raw 32-byte Ed25519 public key to hand to auditors."""
    return signer_from_keys(keys, key_id).public_key


def verify_checkpoint(cp: Checkpoint, public_key: bytes) -> None:
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key)
    except (ValueError, TypeError):
        raise CheckpointError("public key must be 32 raw Ed25519 bytes") from None
    try:
        key.verify(cp.signature, cp.body())
    except InvalidSignature:
        raise CheckpointError(
            f"bad signature: checkpoint of {cp.log_id!r} at size {cp.tree_size} (key id {cp.key_id!r}) "
            "was not signed by this public key or was altered") from None


def verify_growth(old: Checkpoint, new: Checkpoint, proof: list[bytes], public_keys: Mapping[str, bytes]) -> None:
    """Both checkpoints are signed by trusted keys and `new` only appends to `old`."""
    for cp in (old, new):
        if cp.key_id not in public_keys:
            raise CheckpointError(f"no trusted public key for key id {cp.key_id!r}")
        verify_checkpoint(cp, public_keys[cp.key_id])
    if old.log_id != new.log_id:
        raise CheckpointError(f"checkpoints are of different logs: {old.log_id!r} and {new.log_id!r}")
    if _parse_time(new.timestamp) < _parse_time(old.timestamp):
        raise CheckpointError("the later checkpoint has an earlier timestamp")
    if old.tree_size == 0:
        if old.root_hash != EMPTY_ROOT or proof:
            raise CheckpointError("a checkpoint of the empty tree must have the empty root and an empty proof")
        return
    try:
        verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
    except ProofError as exc:
        raise CheckpointError(
            f"log was not append-only between sizes {old.tree_size} and {new.tree_size}: {exc}") from None


@dataclass(frozen=True)
class InclusionBundle:
    record: dict
    leaf_index: int
    tree_size: int
    proof: list[bytes]
    checkpoint: Checkpoint
    public_key: bytes

    def to_json(self) -> str:
        return json.dumps({
            "format": BUNDLE_FORMAT, "record": self.record, "leaf_index": self.leaf_index, "tree_size": self.tree_size,
            "proof": [_b64(p) for p in self.proof], "checkpoint": self.checkpoint.to_dict(),
            "public_key": _b64(self.public_key)}, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> InclusionBundle:
        try:
            raw = json.loads(text)
        except ValueError:
            raise CheckpointError("malformed bundle: not JSON") from None
        if not isinstance(raw, dict) or raw.get("format") != BUNDLE_FORMAT:
            raise CheckpointError(f"malformed bundle: expected a JSON object with format {BUNDLE_FORMAT!r}")
        proof = _field(raw, "proof", list)
        if not all(isinstance(p, str) for p in proof):
            raise CheckpointError("malformed bundle: proof must be a list of base64 strings")
        return cls(_field(raw, "record", dict), _field(raw, "leaf_index", int), _field(raw, "tree_size", int),
                   [_unb64(p) for p in proof], Checkpoint.from_dict(raw.get("checkpoint")),
                   _unb64(_field(raw, "public_key", str)))


def verify_bundle(bundle: InclusionBundle, trusted_public_key: bytes | None = None) -> None:
    """Check the record is in the signed tree. Without a trusted key this only
    shows the bundle is self-consistent, since anyone can sign with their own key."""
    key = bundle.public_key if trusted_public_key is None else trusted_public_key
    if key != bundle.public_key:
        raise CheckpointError("the bundle's public key is not the trusted public key")
    verify_checkpoint(bundle.checkpoint, key)
    if bundle.tree_size != bundle.checkpoint.tree_size:
        raise CheckpointError(
            f"bundle tree size {bundle.tree_size} differs from the checkpoint's {bundle.checkpoint.tree_size}")
    try:
        leaf = leaf_hash(canonical_json(bundle.record))
        verify_inclusion(leaf, bundle.leaf_index, bundle.tree_size, bundle.proof, bundle.checkpoint.root_hash)
    except (ProofError, ValueError, TypeError) as exc:
        raise CheckpointError(f"record is not at index {bundle.leaf_index} of the checkpointed tree: {exc}") from None


def _check_body(log_id: Any, tree_size: Any, root_hash: Any, timestamp: Any) -> None:
    if not isinstance(log_id, str) or not log_id or not log_id.isprintable() or log_id != log_id.strip():
        raise CheckpointError("malformed checkpoint: log id must be non-empty printable text on one line")
    if type(tree_size) is not int or tree_size < 0:
        raise CheckpointError("malformed checkpoint: tree size must be a non-negative integer")
    if not isinstance(root_hash, bytes) or len(root_hash) != HASH_SIZE:
        raise CheckpointError(f"malformed checkpoint: root hash must be {HASH_SIZE} bytes")
    _parse_time(timestamp)


def _parse_time(timestamp: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(timestamp) if isinstance(timestamp, str) and timestamp.isprintable() else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() != timedelta(0):
        raise CheckpointError("malformed checkpoint: timestamp must be ISO-8601 in UTC")
    return parsed


def _field(raw: Mapping, name: str, kind: type) -> Any:
    value = raw.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointError(f"malformed: field {name!r} must be a {kind.__name__}")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError("malformed: a field is not valid base64") from None
