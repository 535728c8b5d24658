"""`vendorgate scan`: the pipeline's detect/decide/transform stages on JSON Lines.

Contract (stable; benchmarks rely on it): one `{"text": ...}` per input line,
one `{"findings": [...], "text": ...}` per output line, in order; a malformed
line (a blank one too) gives `{"error": ...}` and processing continues. A blocked text is
`"text": null` with `"blocked": [entity types]`.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import IO

from gateway.detection.engine import DetectionEngine
from gateway.keys import ENV_VAR, LocalKeyProvider
from gateway.pipeline.decide import decide
from gateway.pipeline.transform import ActionFailed, transform_text
from gateway.policy import Policy, default_policy, load_policy

BATCH = 64


def _parse(line: str) -> str | dict:
    if not line.strip():  # still one output line per input line
        return {"error": "empty line: expected an object {\"text\": \"...\"}"}
    try:
        item = json.loads(line)
    except ValueError as exc:
        return {"error": f"invalid JSON: {exc.msg} at column {exc.colno}"}
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        return {"error": 'expected an object {"text": "..."}'}
    return item["text"]


def render(text: str, findings, policy: Policy, keys, explain: bool) -> dict:
    decision = decide([findings], policy)
    out_findings = []
    for f in sorted(findings, key=lambda f: (f.start, f.end)):
        item = {"entity_type": f.entity_type, "start": f.start, "end": f.end, "score": f.score,
                "action": policy.action_for(f.entity_type).action}
        if f.rule:
            item["rule"] = f.rule
        if explain:
            item["recognizer"] = f.recognizer
            if f.explanation:
                item["explanation"] = f.explanation
        out_findings.append(item)
    if decision.blocked:
        return {"findings": out_findings, "text": None, "blocked": decision.blocked_types}
    try:
        new, _, _ = transform_text(text, decision.plans.get(0, []), "scan", keys, {})
    except ActionFailed as exc:  # e.g. too few digits for fpe: the gateway would refuse this text
        return {"findings": out_findings, "text": None, "blocked": exc.entity_types}
    return {"findings": out_findings, "text": new}


async def scan_stream(inp: IO[str], out: IO[str], policy_path: str | None, explain: bool, workers: int,
                      data_dir: Path | None = None, fingerprints=None) -> int:
    """`data_dir` (or the config's `fingerprints` PostgreSQL) holds the fingerprint index to consult
    (budgets are not spent: scan sends nothing)."""
    policy = load_policy(policy_path) if policy_path else default_policy()
    keys = LocalKeyProvider(Path("/nonexistent"), env={ENV_VAR: base64.b64encode(secrets.token_bytes(32)).decode()})
    engine = DetectionEngine(workers=workers, timeout_seconds=600)
    await engine.start()
    spec = policy.detection_spec(data_dir, fingerprints)
    try:
        batch: list[str | dict] = []

        async def flush() -> None:
            texts = [t for t in batch if isinstance(t, str)]
            results = iter(await engine.detect(texts, spec))
            for item in batch:
                result = item if isinstance(item, dict) else render(item, next(results), policy, keys, explain)
                out.write(json.dumps(result, ensure_ascii=False) + "\n")
            out.flush()
            batch.clear()

        for line in inp:
            batch.append(_parse(line))
            if len(batch) >= BATCH:
                await flush()
        await flush()
    finally:
        await engine.close()
    return 0
