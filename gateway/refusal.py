"""One refusal type for everything that stops a request before the vendor.

Raised anywhere on the request path (routing, body reading, policy, detection,
stores); one handler (`gateway.app.middleware`) answers it with `status` and
a JSON body. `outcome` is what the audit records — said where the refusal is
raised, never guessed back from the status. Messages name types and rules,
never values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

OUTCOMES = ("blocked", "rejected", "error")


class Refusal(Exception):
    """Nothing is forwarded; `outcome` is blocked (policy), rejected (bad request) or error (we failed closed)."""

    default_outcome = "rejected"

    def __init__(self, status: int, message: str, *, outcome: str | None = None,
                 entity_types: Iterable[str] = (), findings: Mapping[str, int] | None = None,
                 retry_after: int | None = None):
        self.status = status
        self.retry_after = retry_after  # seconds, sent as `Retry-After` (a 429 or 503 the caller may retry)
        self.outcome = outcome or self.default_outcome
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown refusal outcome {self.outcome!r}")
        self.entity_types = list(entity_types)
        self.findings = dict(findings or {})
        # (entity type, value) of what was detected before the refusal: in memory only, for the exposure
        # ledger's `blocked` rows (keyed fingerprints); never part of the message, str() or args.
        self.withheld: tuple[tuple[str, str], ...] = ()
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self)
