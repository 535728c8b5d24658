"""Detection benchmark: vendorgate's engine vs plain Presidio, side by side in one run.

Run:  .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/detection.py
      [--sentences 3000] [--seed 42] [--workers 1] [--skip-presidio]

Corpora: (1) presidio-evaluator's `PresidioSentenceFaker` (en_US, fixed seed,
lower_case_ratio 0.05), (2) `bench/corpus/handwritten.jsonl` (59 hand-written
support tickets, CRM/HR notes and logs; not template-generated).

vendorgate runs through `DetectionEngine` (worker processes and micro-batching,
as in the gateway) with every known entity type and min_score 0.4; the texts are
sent as concurrent requests of `--per-request` fields. Presidio is
`AnalyzerEngine` with its default recognizers, the same spaCy model
(`en_core_web_sm` 3.8.0), score >= 0.4, called once per text in this process.

Metrics (both systems, same labels):
- leak rate: labelled PII spans NOT caught; a span is caught when findings (of
  any entity type: what matters is that the value does not reach the vendor)
  cover at least half of its characters;
- over-redaction: characters outside every labelled span (of any label,
  counted or not) that a finding covers, over all such characters;
- recall per labelled type; characters/second (wall clock) and the ratio.
Per core: compare with --workers 1 (Presidio runs on one core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.detection.engine import DetectionEngine  # noqa: E402
from gateway.detection.entities import KNOWN_ENTITIES, NER_ALSO, NER_ENTITIES  # noqa: E402
from gateway.detection.spec import DetectionSpec  # noqa: E402

HANDWRITTEN = Path(__file__).with_name("corpus") / "handwritten.jsonl"
MIN_SCORE = 0.4

# presidio-evaluator label -> the vendorgate type that corresponds to it. Labels
# mapped to None are not counted as PII (neither as leaks nor as over-redaction):
# ORGANIZATION (company names; Presidio ignores spaCy ORG too) and TITLE (job titles).
EVALUATOR_LABELS: dict[str, str | None] = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "STREET_ADDRESS": "STREET_ADDRESS",
    "ZIP_CODE": "ZIP_CODE",
    "CREDIT_CARD": "CREDIT_CARD",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "DOMAIN_NAME": "URL",
    "IP_ADDRESS": "IP_ADDRESS",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
    "DATE_TIME": "DATE_TIME",
    "AGE": "AGE",
    "NRP": "NRP",
    "ORGANIZATION": None,
    "TITLE": None,
}


@dataclass
class Sample:
    text: str
    spans: list[tuple[int, int, str | None]]  # start, end, our type (None: labelled but not counted)


def evaluator_corpus(n: int, seed: int) -> list[Sample]:
    try:
        from presidio_evaluator.data_generator import PresidioSentenceFaker
    except ImportError:
        sys.exit("presidio-evaluator is not installed: pip install -e '.[bench]'")
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=seed)
    sentences = faker.generate_new_fake_sentences(num_samples=n)
    logging.disable(logging.NOTSET)
    samples = []
    for s in sentences:
        spans = []
        for sp in s.spans:
            if sp.entity_type not in EVALUATOR_LABELS:
                raise SystemExit(f"unmapped presidio-evaluator label {sp.entity_type}: add it to EVALUATOR_LABELS")
            spans.append((sp.start_position, sp.end_position, EVALUATOR_LABELS[sp.entity_type]))
        samples.append(Sample(s.full_text, spans))
    return samples


def handwritten_corpus() -> list[Sample]:
    samples = []
    for line in HANDWRITTEN.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            samples.append(Sample(item["text"], [(s["start"], s["end"], s["entity_type"]) for s in item["spans"]]))
    return samples


@dataclass
class Score:
    caught: Counter
    total: Counter
    over_chars: int
    clean_chars: int
    chars: int
    seconds: float

    @property
    def leak(self) -> float:
        return 1 - sum(self.caught.values()) / max(1, sum(self.total.values()))

    @property
    def over(self) -> float:
        return self.over_chars / max(1, self.clean_chars)

    @property
    def speed(self) -> float:
        return self.chars / self.seconds


def score(samples: list[Sample], found: list[list[tuple[int, int]]], seconds: float) -> Score:
    caught, total = Counter(), Counter()
    over = clean = 0
    for sample, spans in zip(samples, found):
        flagged = bytearray(len(sample.text))
        for start, end in spans:
            flagged[start:end] = b"\x01" * (end - start)
        labelled = bytearray(len(sample.text))
        for start, end, kind in sample.spans:
            labelled[start:end] = b"\x01" * (end - start)
            if kind is None:
                continue
            total[kind] += 1
            if 2 * sum(flagged[start:end]) >= end - start:
                caught[kind] += 1
        clean += labelled.count(0)
        over += sum(1 for f, l in zip(flagged, labelled) if f and not l)
    return Score(caught, total, over, clean, sum(len(s.text) for s in samples), seconds)


async def run_vendorgate(texts: list[str], workers: int, per_request: int) -> tuple[list, float]:
    engine = DetectionEngine(workers=workers, timeout_seconds=600)
    await engine.start()
    spec = DetectionSpec(entities=KNOWN_ENTITIES, min_score=MIN_SCORE)
    try:
        await engine.detect(["warm-up: John Smith lives at 12 Baker Street"], spec)
        groups = [texts[i:i + per_request] for i in range(0, len(texts), per_request)]
        started = time.perf_counter()
        results = await asyncio.gather(*(engine.detect(g, spec) for g in groups))
        seconds = time.perf_counter() - started
    finally:
        await engine.close()
    flat = [[(f.start, f.end) for f in findings] for group in results for findings in group]
    return flat, seconds


def run_presidio(texts: list[str]) -> tuple[list, float]:
    from gateway.detection.analyzer import build_presidio

    presidio = build_presidio()
    presidio.analyze(text="warm-up: John Smith", language="en")
    started = time.perf_counter()
    found = [[(r.start, r.end) for r in presidio.analyze(text=t, language="en") if r.score >= MIN_SCORE]
             for t in texts]
    return found, time.perf_counter() - started


def report(name: str, samples: list[Sample], vg: Score, pr: Score | None) -> None:
    print(f"\n== {name}: {len(samples)} texts, {vg.chars:,} chars, {sum(vg.total.values())} labelled PII spans ==")
    print(f"{'type':<20}{'spans':>7}{'vendorgate':>12}{'presidio':>10}")
    for kind in sorted(vg.total, key=lambda k: -vg.total[k]):
        line = f"{kind:<20}{vg.total[kind]:>7}{vg.caught[kind] / vg.total[kind]:>12.1%}"
        if pr is not None:
            line += f"{pr.caught[kind] / pr.total[kind]:>10.1%}"
        print(line)
    print(f"{'leak rate':<27}{vg.leak:>12.1%}" + (f"{pr.leak:>10.1%}" if pr else ""))
    print(f"{'over-redaction':<27}{vg.over:>12.2%}" + (f"{pr.over:>10.2%}" if pr else ""))
    print(f"{'chars/second':<27}{vg.speed:>12,.0f}" + (f"{pr.speed:>10,.0f}" if pr else ""))
    if pr is not None:
        print(f"speed ratio vendorgate/presidio: {vg.speed / pr.speed:.1f}x")


def patterns_only_speed(samples: list[Sample], runs: int = 3) -> tuple[float, float]:
    """Chars/second of one process without NER (normalise, patterns, secrets; no NER or date types):
    (wall clock, process CPU time), each the best of `runs`. On a loaded machine the wall
    figure includes time other processes held the core; the CPU figure does not."""
    from gateway.detection.analyzer import Analyzer

    analyzer = Analyzer()
    spec = DetectionSpec(entities=KNOWN_ENTITIES - NER_ENTITIES - NER_ALSO, min_score=MIN_SCORE)
    text = "\n".join(s.text for s in samples)
    repeats = max(1, 1_000_000 // len(text))
    texts = [text] * repeats
    analyzer.analyze(texts[:1], spec)
    wall = cpu = float("inf")
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        analyzer.analyze(texts, spec)
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    chars = len(text) * repeats
    return chars / wall, chars / cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--per-request", type=int, default=8)
    parser.add_argument("--skip-presidio", action="store_true")
    args = parser.parse_args()
    corpora = [(f"presidio-evaluator PresidioSentenceFaker (seed {args.seed})",
                evaluator_corpus(args.sentences, args.seed)),
               ("hand-written corpus (bench/corpus/handwritten.jsonl)", handwritten_corpus())]
    for name, samples in corpora:
        texts = [s.text for s in samples]
        found, seconds = asyncio.run(run_vendorgate(texts, args.workers, args.per_request))
        vg = score(samples, found, seconds)
        pr = None
        if not args.skip_presidio:
            found, seconds = run_presidio(texts)
            pr = score(samples, found, seconds)
        report(name, samples, vg, pr)
    wall, cpu = patterns_only_speed(corpora[0][1])
    print(f"\npatterns + secrets, no NER, one process: {wall / 1e6:.2f} MB/s wall clock, "
          f"{cpu / 1e6:.2f} MB/s process CPU time (chars/second / 1e6, best of 3)")
    print(f"vendorgate workers: {args.workers}; machine: see `nproc` and /proc/cpuinfo")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
