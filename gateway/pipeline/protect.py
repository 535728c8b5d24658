"""The outbound data path, stage by stage:

    read → walk → detect → decide → budget → transform → store

`protect` takes what the caller sent and returns what the vendor may receive
(`Protected`), or raises `Refusal` saying why nothing may be sent. Detection,
deciding and budgets run once per group of units and build the plan; each
group is transformed as soon as it is planned (one walk of the body), then
`store` writes the surrogates. Only transform and store are repeated, on the
same plan, when a surrogate collides in the vault. Forwarding, the response and the audit live
in `gateway.app`.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from gateway.detection.engine import CallerQueueFull, DetectionEngine, DetectionError
from gateway.keys import KeyProvider
from gateway.payload.units import Unit
from gateway.pipeline.budget import Budgets
from gateway.pipeline.budget_store import BudgetError
from gateway.pipeline.compiled import Specs, compiled
from gateway.pipeline.decide import Decision, Planned, decide
from gateway.pipeline.detect import MACHINE, DetectionRun, detect
from gateway.pipeline.flow import Outbound, Protected, Replacement
from gateway.pipeline.read import read
from gateway.pipeline.store import MAX_TRIES, scope_stateless, store_issued
from gateway.pipeline.timing import stage
from gateway.pipeline.transform import Plan, Transforming, transform
from gateway.pipeline.walk import Units, walk
from gateway.policy import Policy
from gateway.refusal import Refusal
from gateway.reversible.vault import SurrogateCollision, TokenVault


@dataclass(frozen=True)
class Services:
    """What the stages need besides the request: shared for the gateway's life."""

    engine: DetectionEngine
    keys: KeyProvider
    vault: TokenVault | None = None
    budgets: Budgets | None = None
    data_dir: Path | None = None
    fingerprints: object = None


# Called once per group, as soon as it is planned: (the group, the plan so far, the tasks dropped so far).
GroupPlanned = Callable[[list[Unit], Plan, set[int]], Awaitable[None]]


@dataclass(frozen=True)
class Planning:
    """What detect → decide → budget produced for the whole request."""

    plan: dict[int, dict[int, list[Planned]]]
    findings: Counter
    actions: Counter
    dropped: frozenset[int] = frozenset()  # tasks left out under `on_block: drop_task`
    withheld: tuple[Replacement, ...] = ()  # values found in those tasks (action `drop_task`)


async def protect(out: Outbound, policy: Policy, services: Services, max_body_bytes: int) -> Protected:
    with stage("read"):
        body = read(out, policy.unknown_content, max_body_bytes)
    ready = compiled(policy)
    with stage("walk"):
        units = walk(out, body, ready.shape)
    collisions = services.vault.collisions(out.vendor) if services.vault is not None else {}
    first = Transforming(policy, out.vendor, services.keys, collisions)

    async def transform_group(group: list[Unit], planned: Plan, dropped: set[int]) -> None:
        with stage("transform"):  # each group as soon as it is planned: the body is walked once
            if units.large:
                await asyncio.to_thread(first.add, group, planned, frozenset(dropped))
            else:
                first.add(group, planned, dropped)

    planning = await plan(units, policy, services, out.vendor, ready.specs(services.data_dir, services.fingerprints),
                          out.caller, each=transform_group)
    for attempt in range(MAX_TRIES):
        try:
            if attempt == 0:
                done = first.result()
            else:  # a surrogate collided: the same plan, new surrogates, over the same groups
                with stage("transform"):
                    args = (units.again(), planning.plan, policy, out.vendor, services.keys, collisions,
                            planning.dropped)
                    done = await asyncio.to_thread(transform, *args) if units.large else transform(*args)
            with stage("store") as timed:
                timed["issued"] = len(done.issued)
                await store_issued(services.vault, out.vendor, done.issued, out.scope)
                await scope_stateless(services.vault, out.vendor, out.scope, done.replacements)
        except SurrogateCollision:
            collisions = services.vault.collisions(out.vendor)
            continue
        except Refusal as exc:
            raise _with_findings(exc, planning.findings) from None
        outputs = done.outputs
        decision = Decision([], {}, planning.findings, planning.actions + done.actions)
        return Protected(
            path=outputs["path"].decode() if "path" in outputs else out.path,
            query=outputs["query"].decode() if "query" in outputs else out.query,
            body=outputs.get("body", body.data), decision=decision, issued=done.issued, scanned=body.scanned,
            unscanned_parts=done.unscanned_parts, replacements=done.replacements,
            caller_literals=done.caller_literals, withheld=planning.withheld,
            headers=_headers(outputs["headers"]) if "headers" in outputs else out.headers,
            dropped_tasks=done.dropped_tasks)
    raise Refusal(503, f"surrogates still collided after {MAX_TRIES} tries; request not forwarded", outcome="error",
                  findings=planning.findings)


async def plan(units: Units, policy: Policy, services: Services, vendor: str, specs: Specs,
               caller: str = "", each: GroupPlanned | None = None) -> Planning:
    """detect → decide → budget, group by group; a block anywhere refuses the request.
    A refusal carries the values found so far (`Refusal.withheld`) for the exposure ledger."""
    seen: list[tuple[int, str, str]] = []  # (unit number, entity type, value) of every finding
    try:
        planning = await _plan(units, policy, services, vendor, specs, seen, DetectionRun(caller), each)
    except Refusal as exc:
        exc.withheld = tuple((t, v) for _, t, v in seen)
        raise
    withheld = tuple(Replacement(t, "drop_task", v, "") for u, t, v in seen if u in planning.dropped)
    return Planning(planning.plan, planning.findings, planning.actions, planning.dropped, withheld)


@dataclass
class _Read:
    """One group as read: its texts for detection, whose detection already runs (`found`)."""

    units: list[Unit]
    first: int  # number of its first unit in the request
    where: list[tuple[int, int]]  # per text: (unit number, field number)
    texts: list[str]
    found: asyncio.Task | None = None
    blocked: str = ""  # a field rule blocked a unit (its label): refused when this group's turn comes


async def _plan(units: Units, policy: Policy, services: Services, vendor: str, specs: Specs,
                seen: list[tuple[int, str, str]], detection: DetectionRun, each: GroupPlanned | None) -> Planning:
    """Groups are decided, budgeted and transformed one at a time, in order; the detection of
    the next groups (up to one per worker) runs meanwhile, so the workers scan while this process
    parses and rewrites, and a large body's groups are scanned on several workers at once."""
    state = _Planning(policy, services, vendor, seen, each)
    ahead: deque[_Read] = deque()
    lookahead = max(1, services.engine.workers)
    number = 0
    try:
        async for group in units.each_group():
            ahead.append(state.read(group, number, specs, detection))
            number += len(group)
            while len(ahead) > lookahead:
                await state.finish(ahead.popleft())
        while ahead:
            await state.finish(ahead.popleft())
    finally:  # a refusal or error: the groups read ahead are not scanned any further
        running = [r.found for r in ahead if r.found is not None]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return Planning(state.result, state.findings, state.actions, frozenset(state.dropped))


class _Planning:
    """detect → decide → budget over the groups of one request, in order (the stage's own state)."""

    def __init__(self, policy: Policy, services: Services, vendor: str, seen: list[tuple[int, str, str]],
                 each: GroupPlanned | None) -> None:
        self.policy, self.services, self.vendor, self.seen, self.each = policy, services, vendor, seen, each
        self.budgets = services.budgets if policy.budgets else None
        self.drop_tasks = policy.on_block == "drop_task"
        self.result: dict[int, dict[int, list[Planned]]] = {}
        self.findings: Counter = Counter()
        self.actions: Counter = Counter()
        self.dropped: set[int] = set()

    def read(self, group: list[Unit], number: int, specs: Specs, detection: DetectionRun) -> _Read:
        """The group's texts, and their detection started."""
        read = _Read(group, number, [], [])
        is_key: list[bool | str] = []
        for u, unit in enumerate(group):
            if unit.blocked and self.drop_tasks and unit.drop is not None:
                self.dropped.add(number + u)
                continue
            if unit.blocked:
                read.blocked = unit.blocked
                return read
            for i, action in enumerate(unit.actions):
                if action is None:
                    read.where.append((number + u, i))
                    read.texts.append(unit.fields[i].text)
                    kind = unit.fields[i].kind
                    is_key.append(MACHINE if kind == MACHINE else kind == "key")
        read.found = asyncio.ensure_future(detect(self.services.engine, specs, read.texts, is_key, detection))
        return read

    async def finish(self, read: _Read) -> None:
        policy, findings, where, texts = self.policy, self.findings, read.where, read.texts
        if read.blocked:
            raise Refusal(403, f"blocked by field rule {read.blocked!r}: the field is present and not empty",
                          outcome="blocked", findings=findings)
        try:
            with stage("detect") as timed:
                timed["texts"] = len(texts)
                found = await read.found
        except CallerQueueFull as exc:
            raise Refusal(429, "too much detection work queued for this caller; retry later", outcome="rejected",
                          findings=findings, retry_after=exc.retry_after) from None
        except DetectionError as exc:
            raise Refusal(503, f"detection unavailable, request not forwarded: {exc}", outcome="error",
                          findings=findings) from None
        self.seen.extend((where[k][0], f.entity_type, texts[k][f.start:f.end]) for k, fs in enumerate(found) for f in fs)
        with stage("decide"):
            decision = decide(found, policy)
        findings.update(decision.findings)
        group, first, dropped = read.units, read.first, self.dropped
        as_is = _check_media(group, first, where, decision)
        if decision.blocked:
            blocking = {where[k][0] for k, fs in enumerate(found)
                        if any(policy.action_for(f.entity_type).action == "block" for f in fs)}
            if not self.drop_tasks or any(group[u - first].drop is None for u in blocking):
                raise Refusal(403, "blocked by policy", outcome="blocked", entity_types=decision.blocked_types,
                              findings=findings)
            dropped |= blocking
        if self.budgets is not None:
            kept = {k: spans for k, spans in decision.plans.items() if where[k][0] not in dropped}
            try:  # a dropped task's values never leave: they spend nothing
                spent = await self.budgets.enforce(self.vendor, policy, texts, replace(decision, plans=kept))
            except BudgetError as exc:
                raise Refusal(503, f"exposure budget store unavailable, request not forwarded: {exc}",
                              outcome="error", findings=findings) from None
            if spent.exhausted:
                raise Refusal(403, "exposure budget exhausted for this vendor", outcome="blocked",
                              entity_types=spent.exhausted, findings=findings)
            decision = spent.decision
        self.actions.update(decision.actions)
        for k, spans in decision.plans.items():
            u, i = where[k]
            if u not in dropped and k not in as_is:
                self.result.setdefault(u, {})[i] = spans
        if self.each is not None:
            try:
                await self.each(group, self.result, dropped)
            except Refusal as exc:  # an action that cannot protect a value (`ActionFailed`)
                raise _with_findings(exc, findings) from None


def _check_media(group, first: int, where: list[tuple[int, int]], decision: Decision) -> set[int]:
    """Media scanned as text (`media: scan_text_parts`) is never rewritten: a finding
    the policy would act on refuses the request; findings it allows leave it as it came
    (the texts returned: forwarded as they are)."""
    as_is = set()
    for k in decision.plans:
        u, i = where[k]
        field = group[u - first].fields[i]
        if field.kind != "media":
            continue
        acted = sorted({p.entity_type for p in decision.plans[k] if p.action.action not in ("allow", "block")})
        if acted:  # (a `block` finding is the block rules' business: refuse, or drop the task)
            raise Refusal(403, f"media field {field.path} holds sensitive text and media is never rewritten",
                          outcome="blocked", entity_types=acted, findings=decision.findings)
        as_is.add(k)
    return as_is


def _headers(rendered: bytes) -> tuple[tuple[str, str], ...]:
    """Header values after transform; a replacement never carries a line break into a header."""
    return tuple((name, " ".join(value.splitlines())) for name, value in json.loads(rendered))


def _with_findings(exc: Refusal, findings: Counter) -> Refusal:
    if not exc.findings:
        exc.findings = dict(findings)
    return exc
