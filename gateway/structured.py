"""Run a body's units through detection and the policy, in bounded groups.

Units arrive lazily (a JSON Lines batch is parsed line by line). They are
gathered into groups of at most `GROUP_CHARS` characters of field text; each
group's scan texts go to the detection engine in chunks (never one call per
field), run on all workers at once; then each unit is written out and the group
is let go. So memory holds the body, what will be forwarded, and one group —
never a parsed copy of the whole batch. Whole-value rule actions use the same
action classes as findings (`gateway.transform`) and the same `issued` list.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Iterable

from typing import Any, Mapping

from gateway.actions import Issued
from gateway.budgets import Budgets
from gateway.decide import Decision, Planned, decide
from gateway.detection.analyzer import DetectionSpec
from gateway.detection.engine import DetectionEngine
from gateway.detection.entities import NER_ALSO, NER_ENTITIES
from gateway.detection.finding import Finding
from gateway.reversible.issuing import caller_literals
from gateway.keys import KeyProvider
from gateway.policy import Policy
from gateway.reversible.tokens import find_tokens
from gateway.transform import ActionFailed, transform
from gateway.payload.units import Unit

IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.-]{0,63}")
GROUP_CHARS = 500_000
GROUP_UNITS = 500
CHUNK_CHARS = 100_000
CHUNK_TEXTS = 5_000


class RuleRefusal(Exception):
    """The policy refuses the request because of a field rule (or its action failed)."""

    def __init__(self, status: int, message: str, entity_types: list[str] | None = None, decision=None):
        self.status = status
        self.entity_types = entity_types or []
        self.decision = decision
        super().__init__(message)


def chunks(texts: list[str]) -> list[list[str]]:
    """Split texts into engine calls of bounded size (a long text is one chunk)."""
    out: list[list[str]] = []
    current: list[str] = []
    size = 0
    for text in texts:
        if current and (size + len(text) > CHUNK_CHARS or len(current) >= CHUNK_TEXTS):
            out.append(current)
            current, size = [], 0
        current.append(text)
        size += len(text)
    if current:
        out.append(current)
    return out


async def detect_batched(engine: DetectionEngine, texts: list[str], spec: DetectionSpec) -> list[list[Finding]]:
    """All texts, in chunks, at most one chunk per worker at a time (so a
    chunk's timeout measures its own work, not its wait in the queue). Each
    distinct text is detected once: batches repeat keys and values line after line."""
    unique = list(dict.fromkeys(texts))
    if len(unique) < len(texts):
        found = dict(zip(unique, await detect_batched(engine, unique, spec)))
        return [found[t] for t in texts]
    gate = asyncio.Semaphore(max(1, engine.workers))

    async def one(chunk: list[str]) -> list[list[Finding]]:
        async with gate:
            return await engine.detect(chunk, spec)

    results = await asyncio.gather(*(one(c) for c in chunks(texts)))
    return [findings for result in results for findings in result]


class FieldRun:
    """One request's pass over its units; outputs per sink (path, query, body)."""

    def __init__(self, policy: Policy, engine: DetectionEngine, vendor: str, keys: KeyProvider,
                 spec: DetectionSpec, budgets: Budgets | None = None, extra_options: Mapping[str, Any] | None = None):
        self.policy = policy
        self.engine = engine
        self.vendor = vendor
        self.keys = keys
        self.spec = spec
        self.key_spec = replace(spec, entities=spec.entities - NER_ENTITIES - NER_ALSO)
        self.budgets = budgets if policy.budgets else None
        self.extra_options = extra_options or {}
        self.decision = Decision()
        self.issued: list[Issued] = []
        self.seen: list = []  # (Planned, original, sent) for the exposure ledger
        self.caller_literals: set[str] = set()
        self.passed: list[dict] = []
        self.outputs: dict[str, bytearray] = {}
        self._not_tokens: list[Issued] = []
        self._sorted = 0
        self.changed: dict[str, bool] = {}

    async def run(self, units: Iterable[Unit]) -> None:
        group: list[Unit] = []
        size = 0
        for unit in units:
            if unit.blocked:
                raise RuleRefusal(403, f"blocked by field rule {unit.blocked!r}: the field is present and not empty",
                                  decision=self.decision)
            group.append(unit)
            size += sum(len(f.text) for f in unit.fields)
            if size >= GROUP_CHARS or len(group) >= GROUP_UNITS:
                await self._flush(group)
                group, size = [], 0
        await self._flush(group)

    def output(self, sink: str, original: bytes) -> bytes | bytearray:
        """What to forward: the original when nothing changed, byte for byte."""
        if not self.changed.get(sink):
            return original
        return self.outputs[sink]

    async def _flush(self, group: list[Unit]) -> None:
        scan_texts: list[str] = []
        where: list[tuple[int, int]] = []
        for u, unit in enumerate(group):
            for i, action in enumerate(unit.actions):
                if action is None:
                    scan_texts.append(unit.fields[i].text)
                    where.append((u, i))
        findings = await self._detect(scan_texts, [group[u].fields[i].kind == "key" for u, i in where])
        decision = decide(findings, self.policy)
        self.decision.findings.update(decision.findings)
        if decision.blocked:
            raise RuleRefusal(403, "blocked by policy", decision.blocked_types, self.decision)
        if self.budgets is not None:
            exhausted = await self.budgets.enforce(self.vendor, self.policy, scan_texts, decision)
            if exhausted:
                raise RuleRefusal(403, "exposure budget exhausted for this vendor", exhausted, self.decision)
        self.decision.actions.update(decision.actions)
        planned: dict[tuple[int, int], list[Planned]] = {where[k]: p for k, p in decision.plans.items()}
        for u, unit in enumerate(group):
            repl: dict[int, str] = {}
            for i, action in enumerate(unit.actions):
                text = unit.fields[i].text
                if action is not None:
                    new = self._whole(text, action)
                elif (u, i) in planned:
                    try:
                        new = transform(text, planned[(u, i)], self.vendor, self.keys, self.issued,
                                        self.extra_options, self.seen)
                    except ActionFailed as exc:
                        raise RuleRefusal(403, str(exc), [exc.entity_type], self.decision) from None
                else:
                    continue
                if new != text:
                    repl[i] = new
            self.decision.actions.update(unit.counts)
            if unit.passed:
                self.passed.append(unit.passed)
            sink = self.outputs.setdefault(unit.sink, bytearray())
            sink += unit.emit(repl)
            if repl or unit.altered:
                self.changed[unit.sink] = True
        self.caller_literals |= caller_literals((f.text for unit in group for f in unit.fields),
                                                self.policy.reversible_types, self._fakes())
        group.clear()

    async def _detect(self, texts: list[str], keys: list[bool]) -> list[list[Finding]]:
        """Findings per text. A key shaped like an identifier (`sku`, `customerId`,
        `internal_notes`) is schema, not prose: spaCy's NER labels such words as
        people or places at random, and a tokenized key breaks the vendor's schema
        (a tool call's arguments). Those keys get the pattern detectors only, so an
        email address or card number used as a key is still found."""
        if not texts:
            return []
        plain = [k for k, text in enumerate(texts) if keys[k] and IDENTIFIER.fullmatch(text)]
        if not plain or self.key_spec == self.spec:
            return await detect_batched(self.engine, texts, self.spec)
        chosen = set(plain)
        rest = [k for k in range(len(texts)) if k not in chosen]
        found_plain, found_rest = await asyncio.gather(
            detect_batched(self.engine, [texts[k] for k in plain], self.key_spec),
            detect_batched(self.engine, [texts[k] for k in rest], self.spec) if rest else asyncio.sleep(0, []))
        findings: list[list[Finding]] = [[] for _ in texts]
        for k, f in zip(plain, found_plain):
            findings[k] = f
        for k, f in zip(rest, found_rest):
            findings[k] = f
        return findings

    def _fakes(self) -> list[Issued]:
        """Issued surrogates that are not token-shaped (synthetic values, fpe digits).
        A token the caller wrote is already found by its shape in the texts, so only
        these need a substring search; searching every token of a large batch
        against every group's text would grow with the square of the batch."""
        types = self.policy.reversible_types
        for item in self.issued[self._sorted:]:
            if find_tokens(item.surrogate, types) != {item.surrogate}:
                self._not_tokens.append(item)
        self._sorted = len(self.issued)
        return self._not_tokens

    def _whole(self, text: str, action) -> str:
        planned = [Planned(0, len(text), action.entity_type, action.spec)]
        try:
            out = transform(text, planned, self.vendor, self.keys, self.issued, self.extra_options, self.seen)
        except Exception as exc:
            raise RuleRefusal(422, f"field rule {action.label!r}: {action.spec.action} cannot be applied to this value "
                                   f"({type(exc).__name__})") from None
        self.decision.actions[action.spec.action] += 1
        return out
