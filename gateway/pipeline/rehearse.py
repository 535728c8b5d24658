"""A request through the real stages without sending or storing anything.

`rehearse` runs read → walk → detect → decide → budget-free → transform exactly
as `protect` does, and stops before `store`: what the vendor would receive and
in which form each value would leave. `vendorgate policy test`, `policy diff`
and the canary use it, so what they report is what the gateway does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.audit.ledger import FORMS
from gateway.pipeline.compiled import compiled
from gateway.pipeline.flow import Outbound, Replacement
from gateway.pipeline.protect import Services, plan
from gateway.pipeline.read import read
from gateway.pipeline.transform import transform
from gateway.pipeline.walk import walk
from gateway.policy import Policy
from gateway.refusal import Refusal

MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Rehearsal:
    outcome: str                      # forwarded, blocked, rejected or error
    status: int
    message: str
    findings: dict[str, int]
    blocked_types: tuple[str, ...]
    replacements: tuple[Replacement, ...]
    body: bytes                       # what the vendor would receive; empty when refused

    def forms(self) -> dict[str, set[str]]:
        """entity type -> the forms its values would leave in (`blocked` when refused)."""
        if self.outcome != "forwarded":
            return {t: {"blocked"} for t in self.blocked_types or self.findings}
        out: dict[str, set[str]] = {}
        for r in self.replacements:
            out.setdefault(r.entity_type, set()).add(FORMS.get(r.action, r.action))
        return out


async def rehearse(out: Outbound, policy: Policy, services: Services,
                   max_body_bytes: int = MAX_BODY_BYTES) -> Rehearsal:
    """Budgets are not spent: a rehearsal sends nothing."""
    services = replace(services, budgets=None)
    try:
        body = read(out, policy.unknown_content, max_body_bytes)
        ready = compiled(policy)
        units = walk(out, body, ready.shape)
        planning = await plan(units, policy, services, out.vendor, ready.specs(services.data_dir, services.fingerprints),
                              out.caller)
        done = transform(units.again(), planning.plan, policy, out.vendor, services.keys, {})
    except Refusal as exc:
        return Rehearsal(exc.outcome, exc.status, exc.message, dict(exc.findings), tuple(exc.entity_types), (), b"")
    return Rehearsal("forwarded", 200, "", dict(planning.findings), (), done.replacements,
                     bytes(done.outputs.get("body", body.data)))
