"""The audit record: what one request did, without any value it carried."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from gateway.audit.merkle import canonical_json


@dataclass
class AuditRecord:
    """Counts and types only. `path` is the route as the vendor received it,
    without the query string and with detected segments replaced by their type."""

    id: str
    ts: str
    request_id: str
    caller: str
    vendor: str
    method: str
    path: str
    decision: str
    status: int
    upstream_status: int | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    blocked_types: list[str] = field(default_factory=list)
    error: str = ""
    policy_digest: str = ""
    duration_ms: float = 0.0
    restored: int = 0
    foreign_tokens: int = 0
    # multipart parts forwarded unscanned (unknown_content: pass): part number, type, bytes, sha256
    unscanned_parts: list[dict] = field(default_factory=list)
    # canary records only: which types were sent, protected, sent in clear by the policy, leaked
    canary: dict[str, list[str]] = field(default_factory=dict)
    # SHA-256 of the request's exposure ledger rows (`gateway.audit.ledger.lineage_digest`), when it has any
    lineage: str = ""
    # "inbound": a webhook the vendor posted, restored and delivered inside the company; "" a request to the vendor
    direction: str = ""

    def to_dict(self) -> dict:
        """The fields as hashed into the log; `canary`, `lineage` and `direction` only when set, so
        the bytes of every other record are what they always were."""
        return {k: v.copy() if isinstance(v, (dict, list)) else v for k, v in vars(self).items()
                if k not in ("canary", "lineage", "direction") or v}


def chain_hash(prev_hash: str, record: dict | bytes) -> str:
    """Chain link over the record's canonical JSON (pass the bytes if you have them)."""
    text = record if isinstance(record, bytes) else canonical_json(record)
    return hashlib.sha256(bytes.fromhex(prev_hash) + text).hexdigest()


GENESIS = "00" * 32
