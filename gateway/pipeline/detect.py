"""The `detect` stage: findings for every text of a group, on the worker processes.

Texts go to the engine in chunks (never one call per field), at most one
chunk per worker at a time per group of the request (`protect` scans the next
groups while it decides one). Without NER the chunks are at most the engine's
`bounded_chars`, so a large body can use every worker. Every chunk of a request shares the
request's deadline (`DetectionRun`: it grows with the request's size, see
`DetectionEngine.deadline`) and its caller's queue; when one chunk fails the
others are cancelled, not left queued. Each distinct text is detected once:
batches repeat keys and values line after line.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from gateway.detection.engine import NER_TYPES, DetectionEngine
from gateway.detection.finding import Finding
from gateway.detection.spec import DetectionSpec
from gateway.pipeline.compiled import Specs

MACHINE = "machine"  # a machine value (a header such as User-Agent): pattern detectors only
IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.-]{0,63}")
CHUNK_CHARS = 100_000
CHUNK_TEXTS = 5_000


def chunks(texts: list[str], limit: int = CHUNK_CHARS) -> list[list[str]]:
    """Split texts into engine calls of at most `limit` characters (a long text is one chunk)."""
    out: list[list[str]] = []
    current: list[str] = []
    size = 0
    for text in texts:
        if current and (size + len(text) > limit or len(current) >= CHUNK_TEXTS):
            out.append(current)
            current, size = [], 0
        current.append(text)
        size += len(text)
    if current:
        out.append(current)
    return out


@dataclass(eq=False)  # hashable by identity: the engine counts a caller's requests by it
class DetectionRun:
    """One request's detection: who asks, and the deadline, which grows as its groups are read."""

    caller: str = ""
    started: float | None = None  # loop time of the first group
    chars: int = 0

    def deadline(self, engine: DetectionEngine, spec: DetectionSpec, texts: list[str]) -> float:
        if self.started is None:
            self.started = asyncio.get_running_loop().time()
        self.chars += sum(len(t) for t in texts)
        return engine.deadline(self.chars, spec, since=self.started)


async def detect_batched(engine: DetectionEngine, texts: list[str], spec: DetectionSpec, caller: str = "",
                         deadline: float | None = None, request: object = None) -> list[list[Finding]]:
    unique = list(dict.fromkeys(texts))
    if len(unique) < len(texts):
        found = dict(zip(unique, await detect_batched(engine, unique, spec, caller, deadline, request)))
        return [found[t] for t in texts]
    # without NER, chunks small enough to share the worker kept for small work (`BOUNDED_CHARS`)
    parts = chunks(texts, CHUNK_CHARS if spec.entities & NER_TYPES else engine.bounded_chars)
    if len(parts) == 1:
        return await engine.detect(parts[0], spec, caller=caller, deadline=deadline, request=request)
    gate = asyncio.Semaphore(max(1, engine.workers))

    async def one(chunk: list[str]) -> list[list[Finding]]:
        async with gate:
            return await engine.detect(chunk, spec, caller=caller, deadline=deadline, bulk=True, request=request)

    try:
        async with asyncio.TaskGroup() as group:  # the first failure cancels the other chunks
            tasks = [group.create_task(one(c)) for c in parts]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [findings for task in tasks for findings in task.result()]


async def detect(engine: DetectionEngine, specs: Specs, texts: list[str],
                 is_key: list[bool | str], run: DetectionRun | None = None) -> list[list[Finding]]:
    """Findings per text. A key shaped like an identifier (`sku`, `customerId`,
    `internal_notes`) is schema, not prose: spaCy's NER labels such words as
    people or places at random, and a tokenized key breaks the vendor's schema
    (a tool call's arguments). Those keys get the pattern detectors only, so an
    email address or card number used as a key is still found."""
    if not texts:
        return []
    run = run if run is not None else DetectionRun()
    spec, key_spec = specs.spec, specs.key_spec
    deadline = run.deadline(engine, spec, texts)
    if not specs.needs_ner:
        return await detect_batched(engine, texts, spec, run.caller, deadline, run)
    plain = [k for k, text in enumerate(texts)
             if is_key[k] == MACHINE or (is_key[k] and IDENTIFIER.fullmatch(text))]
    if not plain:
        return await detect_batched(engine, texts, spec, run.caller, deadline, run)
    chosen = set(plain)
    rest = [k for k in range(len(texts)) if k not in chosen]
    found_plain, found_rest = await asyncio.gather(
        detect_batched(engine, [texts[k] for k in plain], key_spec, run.caller, deadline, run),
        detect_batched(engine, [texts[k] for k in rest], spec, run.caller, deadline, run) if rest
        else asyncio.sleep(0, []))
    findings: list[list[Finding]] = [[] for _ in texts]
    for k, f in zip(plain, found_plain):
        findings[k] = f
    for k, f in zip(rest, found_rest):
        findings[k] = f
    return findings
