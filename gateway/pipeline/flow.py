"""The values one request's stages hand each other, and the `Flow` that holds them.

Each stage takes a typed value and returns a new one; nothing is filled in
behind another stage's back. The `Flow` is the one per-request object: who
called, which vendor and policy snapshot, and what each stage produced. The
audit middleware turns it into the audit record once, at the end.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.pipeline.decide import Decision
from gateway.reversible.tokens import Issued


@dataclass(frozen=True)
class Outbound:
    """What the caller asked us to send, before any protection."""

    vendor: str
    path: str
    query: str
    body: bytes
    content_type: str = ""
    content_encoding: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # the allow-listed request headers, scanned like the query
    scope: str = ""  # whose tokens the answer may restore (vault scope key); "" = the vendor's
    caller: str = ""  # who is asking: detection queues each caller's work separately


@dataclass(frozen=True)
class Body:
    """The `read` stage: the body decoded from its Content-Encoding, and whether its type can be scanned."""

    data: bytes
    content_type: str
    scanned: bool


@dataclass(frozen=True)
class Replacement:
    """One value the vendor gets in another form (or in clear, for `allow`): for the exposure ledger,
    and where it was (`path` of the field, `start` in its original text) for a preset's offset map."""

    entity_type: str
    action: str
    original: str = field(repr=False)
    sent: str = field(repr=False)
    path: str = ""
    start: int = 0


@dataclass(frozen=True)
class Transformed:
    """The `transform` stage: what to forward per sink (path, query, body) and what it issued."""

    outputs: dict[str, bytes | bytearray]  # only the sinks that changed; the rest go out byte for byte
    issued: tuple[Issued, ...]
    replacements: tuple[Replacement, ...]
    actions: Counter
    caller_literals: frozenset[str]
    unscanned_parts: tuple[dict, ...]
    dropped_tasks: tuple[int, ...] = ()  # positions in the batch of the tasks `on_block: drop_task` left out


@dataclass(frozen=True)
class Protected:
    """What the vendor may receive, and the record of how it was made."""

    path: str
    query: str
    body: bytes
    decision: Decision
    issued: tuple[Issued, ...] = ()
    scanned: bool = True
    unscanned_parts: tuple[dict, ...] = ()
    replacements: tuple[Replacement, ...] = ()
    caller_literals: frozenset[str] = frozenset()
    headers: tuple[tuple[str, str], ...] = ()
    dropped_tasks: tuple[int, ...] = ()
    withheld: tuple[Replacement, ...] = ()  # values in tasks left out (`on_block: drop_task`): for the ledger


@dataclass(frozen=True)
class Upstream:
    """The `forward` stage: what the vendor answered (or that it could not be reached)."""

    status: int | None
    bytes_sent: int
    reached: bool          # the vendor answered
    maybe_received: bool   # the body may have arrived (answered, timed out, or cut off after connecting)


@dataclass(frozen=True)
class Relayed:
    """The `relay` stage: what went back to the caller."""

    bytes_received: int = 0
    restored: int = 0
    foreign_tokens: int = 0
    error: str = ""


@dataclass
class Flow:
    """One request through the gateway. Stages set their own field once; the
    audit middleware reads them all in `finally`."""

    method: str
    request_id: str
    caller: str = "anonymous"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    started: float = field(default_factory=time.perf_counter)
    vendor: str = ""
    path: str = ""
    policy: Any = None
    protected: Protected | None = None
    upstream: Upstream | None = None
    relayed: Relayed | None = None
    refusal: Any = None  # gateway.refusal.Refusal, when the request was refused
    lineage: Any = None  # the exposure ledger's rows (gateway.audit.ledger.Lineage), set just before the audit append
    status: int = 500
    error: str = ""
    forwarded_at: float | None = None   # perf_counter when the request left for the vendor (metrics)
    upstream_seconds: float = 0.0       # until the vendor's response headers arrived (metrics)
    audit_append_seconds: float = 0.0   # set by the audit middleware before the hooks run (metrics)
    direction: str = ""                 # "inbound" for a webhook the vendor posted (gateway.app.webhooks)

    @property
    def decision(self) -> str:
        """forwarded, blocked, rejected or error: from what happened, not from the status."""
        if self.refusal is not None:
            return self.refusal.outcome
        if self.upstream is not None and self.upstream.reached:
            return "forwarded"
        return "error"

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 2)
