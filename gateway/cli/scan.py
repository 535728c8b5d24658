"""`vendorgate scan`: the pipeline's detect/decide/transform stages on JSON Lines.

Contract (stable; benchmarks rely on it): one `{"text": ...}` per input line,
one `{"findings": [...], "text": ...}` per output line, in order; a malformed
line (a blank one too) gives `{"error": ...}` and processing continues. A blocked text is
`"text": null` with `"blocked": [entity types]`.

The detection engine and the pipeline stages are imported when a scan runs,
not when the parser is built: every `vendorgate` command imports this module.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

from gateway.cli import common
from gateway.cli.progress import progress
from gateway.config import DEFAULT_DATA_DIR, load_config

if TYPE_CHECKING:
    from gateway.policy import Policy

BATCH = 64


def register(sub) -> None:
    s = sub.add_parser("scan", help="scan JSON Lines from stdin", description=(
        'Read {"text": "..."} per line on stdin; write {"findings": [...], "text": "<as the vendor would receive it>"} '
        'per line, in order. Without --policy every detector runs at its default threshold with action redact. '
        'A malformed line yields {"error": "..."}.'))
    s.add_argument("--policy", help="policy YAML to apply")
    s.add_argument("--explain", action="store_true", help="add which recognizer fired and why to each finding")
    s.add_argument("--workers", type=int, default=0, help="detection worker processes (default: one per core)")
    s.add_argument("--data-dir", help=f"consult the fingerprint index in this data dir (default ./{DEFAULT_DATA_DIR}/)")
    s.add_argument("--config", help="consult the fingerprint index this config names (its data_dir or "
                                    "`fingerprints: {dsn}`)")
    s.set_defaults(func=scan)


def scan(args) -> int:
    fingerprints = load_config(args.config).config.fingerprints if args.config else None
    return asyncio.run(scan_stream(sys.stdin, sys.stdout, args.policy, args.explain, args.workers, common.data_dir(args),
                                   fingerprints))


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
    from gateway.pipeline.decide import decide
    from gateway.pipeline.transform import ActionFailed, transform_text

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
    from gateway.detection.engine import DetectionEngine
    from gateway.keys import ENV_VAR, LocalKeyProvider
    from gateway.policy import default_policy, load_policy

    policy = load_policy(policy_path) if policy_path else default_policy()
    keys = LocalKeyProvider(Path("/nonexistent"), env={ENV_VAR: base64.b64encode(secrets.token_bytes(32)).decode()})
    engine = DetectionEngine(workers=workers, timeout_seconds=600)
    await engine.start()
    spec = policy.detection_spec(data_dir, fingerprints)
    try:
        batch: list[str | dict] = []
        with progress("scanning", unit="lines") as bar:
            async def flush() -> None:
                texts = [t for t in batch if isinstance(t, str)]
                results = iter(await engine.detect(texts, spec))
                for item in batch:
                    result = item if isinstance(item, dict) else render(item, next(results), policy, keys, explain)
                    out.write(json.dumps(result, ensure_ascii=False) + "\n")
                out.flush()
                bar.advance(len(batch))
                batch.clear()

            for line in inp:
                batch.append(_parse(line))
                if len(batch) >= BATCH:
                    await flush()
            await flush()
    finally:
        await engine.close()
    return 0
