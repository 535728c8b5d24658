"""What a small request's scan costs in-process: the figure to weigh against the detection hop.

Run: .venv/bin/python bench/hop_cost.py [--calls 300] [--policy policies/patterns-only.yaml]

Scans the texts of bench/proxy.py's 1 KB chat request (plus a path and machine headers, as the
gateway sends them) with the policy's detection spec, in this process, and prints the CPU time per
request. The hop to a worker costs the event loop ~0.1 ms (docs/performance.md); scanning on the
loop pays only when this figure is below that.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from proxy import body_1kb  # noqa: E402

from gateway.detection.analyzer import Analyzer  # noqa: E402
from gateway.detection.patterns.detector import built_in_prefilter  # noqa: E402
from gateway.detection.secrets.detector import compiled_catalogue  # noqa: E402
from gateway.pipeline.compiled import compiled  # noqa: E402
from gateway.policy.model import load_policy  # noqa: E402


def strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--policy", default=str(REPO / "policies" / "patterns-only.yaml"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as data:
        policy = load_policy(args.policy)  # held: the compiled cache keeps only a weak reference
        spec = compiled(policy).specs(data).spec
        texts = strings(json.loads(body_1kb())) + ["v1", "chat", "completions", "application/json",
                                                   "python-httpx/0.28.1", "*/*"]
        analyzer = Analyzer()
        for prefilter in (built_in_prefilter(), compiled_catalogue().prefilter):
            if prefilter is not None:
                prefilter.compile()
        analyzer.analyze_batch([(texts, spec)])
        started = time.process_time()
        for _ in range(args.calls):
            analyzer.analyze_batch([(texts, spec)])
        per = 1000 * (time.process_time() - started) / args.calls
    print(f"{len(texts)} texts, {sum(map(len, texts))} characters: {per:.3f} ms CPU per request in-process "
          f"({args.calls} calls, {Path(args.policy).name})")


if __name__ == "__main__":
    main()
