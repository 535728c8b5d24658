"""The `detect` stage: findings for every text of a group, on the worker processes.

Texts go to the engine in chunks (never one call per field), at most one
chunk per worker at a time, so a chunk's timeout measures its own work and not
its wait in the queue. Each distinct text is detected once: batches repeat
keys and values line after line.
"""

from __future__ import annotations

import asyncio
import re

from gateway.detection.engine import DetectionEngine
from gateway.detection.finding import Finding
from gateway.detection.spec import DetectionSpec
from gateway.pipeline.compiled import Specs

MACHINE = "machine"  # a machine value (a header such as User-Agent): pattern detectors only
IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.-]{0,63}")
CHUNK_CHARS = 100_000
CHUNK_TEXTS = 5_000


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


async def detect(engine: DetectionEngine, specs: Specs, texts: list[str],
                 is_key: list[bool | str]) -> list[list[Finding]]:
    """Findings per text. A key shaped like an identifier (`sku`, `customerId`,
    `internal_notes`) is schema, not prose: spaCy's NER labels such words as
    people or places at random, and a tokenized key breaks the vendor's schema
    (a tool call's arguments). Those keys get the pattern detectors only, so an
    email address or card number used as a key is still found."""
    if not texts:
        return []
    spec, key_spec = specs.spec, specs.key_spec
    if not specs.needs_ner:
        return await detect_batched(engine, texts, spec)
    plain = [k for k, text in enumerate(texts)
             if is_key[k] == MACHINE or (is_key[k] and IDENTIFIER.fullmatch(text))]
    if not plain:
        return await detect_batched(engine, texts, spec)
    chosen = set(plain)
    rest = [k for k in range(len(texts)) if k not in chosen]
    found_plain, found_rest = await asyncio.gather(
        detect_batched(engine, [texts[k] for k in plain], key_spec),
        detect_batched(engine, [texts[k] for k in rest], spec) if rest else asyncio.sleep(0, []))
    findings: list[list[Finding]] = [[] for _ in texts]
    for k, f in zip(plain, found_plain):
        findings[k] = f
    for k, f in zip(rest, found_rest):
        findings[k] = f
    return findings
