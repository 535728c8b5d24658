"""Throughput of the pattern layer (normalize + PatternDetector + TermDetector),
and its recall per entity type on the hand-written corpus.

Run: .venv/bin/python bench/patterns_speed.py [--min-score 0.4] [--size 1000000]
A span counts as caught when findings at or above --min-score cover at least
half of its characters (any entity type: what matters is that it does not leak).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.detection.normalize import map_findings, normalize  # noqa: E402
from gateway.detection.patterns import PatternDetector  # noqa: E402
from gateway.detection.terms import TermDetector  # noqa: E402

CORPUS = Path(__file__).with_name("corpus") / "handwritten.jsonl"


def load() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def make_terms() -> TermDetector:
    """A deny-list the size a company might have: a few thousand code names."""
    names = [f"project-{i:04d}" for i in range(3000)] + ["Atlas", "Blue Falcon", "Harbor Logistics"]
    return TermDetector({"CODE_NAME": names})


def detect(text: str, patterns: PatternDetector, terms: TermDetector):
    normalized = normalize(text)
    found = patterns.detect(normalized.text) + terms.detect(normalized.text)
    return map_findings(found, normalized)


def throughput(records: list[dict], size: int, patterns: PatternDetector, terms: TermDetector) -> float:
    texts = [r["text"] for r in records]
    chunk = []
    total = 0
    while total < size:
        for t in texts:
            chunk.append(t)
            total += len(t) + 2
    big = "\n\n".join(chunk)
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        detect(big, patterns, terms)
        best = min(best, time.process_time() - started)
    return len(big) / best


def recall(records: list[dict], patterns: PatternDetector, terms: TermDetector, min_score: float) -> None:
    caught: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for record in records:
        text = record["text"]
        covered = [False] * len(text)
        for f in detect(text, patterns, terms):
            if f.score >= min_score:
                for i in range(f.start, f.end):
                    covered[i] = True
        for span in record["spans"]:
            seen[span["entity_type"]] += 1
            length = span["end"] - span["start"]
            if sum(covered[span["start"]:span["end"]]) * 2 >= length:
                caught[span["entity_type"]] += 1
    print(f"recall of the pattern layer alone (score >= {min_score}):")
    for entity in sorted(seen):
        print(f"  {entity:18s} {caught[entity]:3d}/{seen[entity]:3d}  {caught[entity] / seen[entity]:6.1%}")
    structured = [e for e in seen if e not in ("PERSON", "LOCATION", "SECRET")]
    s_caught = sum(caught[e] for e in structured)
    s_seen = sum(seen[e] for e in structured)
    print(f"  {'structured total':18s} {s_caught:3d}/{s_seen:3d}  {s_caught / s_seen:6.1%}  (excl. PERSON, LOCATION, SECRET)")
    print(f"  {'all spans':18s} {sum(caught.values()):3d}/{sum(seen.values()):3d}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-score", type=float, default=0.4)
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args()
    records = load()
    patterns, terms = PatternDetector(), make_terms()
    rate = throughput(records, args.size, patterns, terms)
    print(f"throughput: {rate / 1e6:.2f} M chars/s (one core, CPU time, best of 3, ~{args.size / 1e6:.1f} MB)")
    recall(records, patterns, terms, args.min_score)


if __name__ == "__main__":
    main()
