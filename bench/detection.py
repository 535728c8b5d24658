"""Detection benchmark: what users run (scan's default and every shipped policy) vs plain Presidio, one run.

Run:  pip install -e '.[bench]' && python bench/detection.py
      [--sentences 3000] [--seeds 42 7] [--workers 1] [--names-n 1000] [--skip-presidio]

Corpora:
- presidio-evaluator's `PresidioSentenceFaker` (en_US, lower_case_ratio 0.05),
  one corpus per seed (default two seeds), every label scored, ORGANIZATION
  and TITLE included in the headline;
- "payloads": the same sentences of the second seed joined five to a text,
  as multi-sentence request bodies are;
- `bench/corpus/names.jsonl` texts naming people from 19 locales (our own
  templates, `bench/corpus/make_names.py`);
- `bench/corpus/handwritten.jsonl` (hand-written tickets, notes and logs).

Configurations: `scan` with no policy (`default_policy()`), then each
`policies/*.yaml`, detected by `DetectionEngine` (worker processes, as in the
gateway) with the policy's own `detection_spec()`, and decided by
`gateway.pipeline.decide.decide` as the gateway does: a span is protected when a
planned span whose action is not `allow` covers at least half of its
characters, or when the text is blocked (a `block` action refuses it: nothing
leaks; blocked texts are counted). A span labelled TITLE, say, that only an
`allow`ed DATE_TIME finding covers has leaked. Presidio is `AnalyzerEngine`
with its default recognizers and the same spaCy model (`en_core_web_sm` 3.8.0),
every result with score >= 0.4 redacted (as its anonymizer would), one text per call.

Metrics, per configuration, side by side:
- leak: labelled spans not protected, per label and over all labels;
- over-redaction: characters outside every labelled span that a protecting
  planned span covers (in a blocked text, the blocking finding's span), over
  all such characters;
- chars/second (wall clock) of detection; compare with --workers 1 (Presidio runs on one core);
- chars per CPU-second: the CPU time the detection took in this process and its
  children (the engine's worker processes), Presidio's in this process. Other
  jobs on a shared machine stretch the wall clock of whichever runs while they
  do; they stretch CPU time far less, so that ratio is the comparable one.
Timings on a shared 2-core machine are noisy: run twice before comparing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.detection.engine import DetectionEngine  # noqa: E402
from gateway.detection.entities import KNOWN_ENTITIES, NER_ALSO, NER_ENTITIES  # noqa: E402
from gateway.detection.spec import DetectionSpec  # noqa: E402
from gateway.pipeline.decide import decide  # noqa: E402
from gateway.policy import default_policy, load_policy  # noqa: E402

CORPUS = Path(__file__).with_name("corpus")
HANDWRITTEN = CORPUS / "handwritten.jsonl"
NAMES = CORPUS / "names.jsonl"
PRESIDIO_MIN_SCORE = 0.4


@dataclass
class Sample:
    text: str
    spans: list[tuple[int, int, str]]  # start, end, label


def evaluator_corpus(n: int, seed: int) -> list[Sample]:
    try:
        from presidio_evaluator.data_generator import PresidioSentenceFaker
    except ImportError:
        sys.exit("presidio-evaluator is not installed: pip install -e '.[bench]'")
    import logging
    import os
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")
    faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=seed)
    sentences = faker.generate_new_fake_sentences(num_samples=n)
    logging.disable(logging.NOTSET)
    return [Sample(s.full_text, [(sp.start_position, sp.end_position, sp.entity_type) for sp in s.spans])
            for s in sentences]


def joined(samples: list[Sample], per_text: int = 5) -> list[Sample]:
    """Sentences joined into multi-sentence payloads, labels shifted."""
    out = []
    for i in range(0, len(samples), per_text):
        text, spans = "", []
        for s in samples[i:i + per_text]:
            if text:
                text += " "
            spans.extend((a + len(text), b + len(text), k) for a, b, k in s.spans)
            text += s.text
        out.append(Sample(text, spans))
    return out


def jsonl_corpus(path: Path) -> list[Sample]:
    samples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            samples.append(Sample(item["text"], [(s["start"], s["end"], s["entity_type"]) for s in item["spans"]]))
    return samples


@dataclass
class Score:
    caught: Counter = field(default_factory=Counter)
    total: Counter = field(default_factory=Counter)
    over_chars: int = 0
    clean_chars: int = 0
    chars: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    blocked: int = 0

    @property
    def leak(self) -> float:
        return 1 - sum(self.caught.values()) / max(1, sum(self.total.values()))

    def leak_of(self, label: str) -> float:
        return 1 - self.caught[label] / max(1, self.total[label])

    @property
    def over(self) -> float:
        return self.over_chars / max(1, self.clean_chars)

    @property
    def speed(self) -> float:
        return self.chars / max(1e-9, self.seconds)

    @property
    def cpu_speed(self) -> float:
        return self.chars / max(1e-9, self.cpu_seconds)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its live children (the engine's workers)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def covered(length: int, spans) -> bytearray:
    """One byte per character of the text: 1 where a span covers it."""
    marks = bytearray(length)
    for start, end in spans:
        marks[start:end] = b"\x01" * (end - start)
    return marks


def score(samples: list[Sample], protected: list[tuple[list[tuple[int, int]], bool]],
          seconds: tuple[float, float]) -> Score:
    """`protected`: per text, the spans that do not reach the vendor and whether the text was blocked;
    `seconds`: (wall clock, CPU) of the detection."""
    result = Score(chars=sum(len(s.text) for s in samples), seconds=seconds[0], cpu_seconds=seconds[1])
    for sample, (spans, blocked) in zip(samples, protected):
        flagged = covered(len(sample.text), spans)
        labelled = covered(len(sample.text), [(start, end) for start, end, _ in sample.spans])
        for start, end, label in sample.spans:
            result.total[label] += 1
            if blocked or 2 * sum(flagged[start:end]) >= end - start:
                result.caught[label] += 1
        result.blocked += blocked
        result.clean_chars += labelled.count(0)
        result.over_chars += sum(1 for f, lab in zip(flagged, labelled) if f and not lab)
    return result


def applied(findings_per_text, policy) -> list[tuple[list[tuple[int, int]], bool]]:
    """What the gateway does with the findings: protecting spans, and whether the text is refused."""
    out = []
    for findings in findings_per_text:
        decision = decide([findings], policy)
        spans = [(p.start, p.end) for p in decision.plans.get(0, []) if p.action.action != "allow"]
        out.append((spans, decision.blocked))
    return out


def configurations() -> list[tuple[str, object]]:
    configs = [("scan", default_policy())]
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        configs.append((path.stem, load_policy(path)))
    return configs


async def run_engine(engine: DetectionEngine, texts: list[str], spec: DetectionSpec, per_request: int):
    await engine.detect(["warm-up: John Smith lives at 12 Baker Street"], spec)
    groups = [texts[i:i + per_request] for i in range(0, len(texts), per_request)]
    started, started_cpu = time.perf_counter(), cpu_seconds()
    results = await asyncio.gather(*(engine.detect(g, spec) for g in groups))
    seconds = (time.perf_counter() - started, cpu_seconds() - started_cpu)
    return [findings for group in results for findings in group], seconds


def run_presidio(presidio, texts: list[str]) -> tuple[list, tuple[float, float]]:
    started, started_cpu = time.perf_counter(), time.process_time()
    found = [[(r.start, r.end) for r in presidio.analyze(text=t, language="en") if r.score >= PRESIDIO_MIN_SCORE]
             for t in texts]
    return [(spans, False) for spans in found], (time.perf_counter() - started, time.process_time() - started_cpu)


def report(name: str, samples: list[Sample], scores: dict[str, Score]) -> None:
    first = next(iter(scores.values()))
    print(f"\n== {name}: {len(samples)} texts, {first.chars:,} chars, {sum(first.total.values())} labelled spans ==")
    names = list(scores)
    width = max(10, max(len(n) for n in names) + 2)
    print("leak per label (lower is better)")
    print(f"{'label':<20}{'spans':>7}" + "".join(f"{n:>{width}}" for n in names))
    for label in sorted(first.total, key=lambda k: -first.total[k]):
        print(f"{label:<20}{first.total[label]:>7}" + "".join(f"{s.leak_of(label):>{width}.1%}" for s in scores.values()))
    print(f"{'LEAK, all labels':<27}" + "".join(f"{s.leak:>{width}.1%}" for s in scores.values()))
    print(f"{'over-redaction':<27}" + "".join(f"{s.over:>{width}.2%}" for s in scores.values()))
    print(f"{'texts blocked':<27}" + "".join(f"{s.blocked:>{width}}" for s in scores.values()))
    print(f"{'chars/second':<27}" + "".join(f"{s.speed:>{width},.0f}" for s in scores.values()))
    print(f"{'chars per CPU-second':<27}" + "".join(f"{s.cpu_speed:>{width},.0f}" for s in scores.values()))
    if "presidio" in scores and "scan" in scores:
        print(f"speed ratio scan/presidio: {scores['scan'].speed / scores['presidio'].speed:.1f}x wall clock, "
              f"{scores['scan'].cpu_speed / scores['presidio'].cpu_speed:.2f}x CPU time")


def explain(samples: list[Sample], protected: list[tuple[list[tuple[int, int]], bool]], label: str) -> None:
    """Each leaked labelled span and each over-redacted stretch, with its line (to read what to fix)."""
    print(f"-- {label}: leaked spans (label: text) and over-redacted stretches [text]")
    for sample, (spans, blocked) in zip(samples, protected):
        if blocked:
            continue
        flagged = covered(len(sample.text), spans)
        labelled = covered(len(sample.text), [(start, end) for start, end, _ in sample.spans])
        for start, end, kind in sample.spans:
            if 2 * sum(flagged[start:end]) < end - start:
                print(f"  leak {kind}: {sample.text[start:end]!r}")
        for start, end in spans:
            over = "".join(ch if not labelled[i] else "_" for i, ch in enumerate(sample.text[start:end], start))
            if over.strip("_ ,.\n"):
                print(f"  over [{sample.text[start:end]!r}]")


def patterns_only_speed(samples: list[Sample], runs: int = 3) -> tuple[float, float]:
    """Chars/second of one process without NER (normalise, patterns, secrets; no NER or date types):
    (wall clock, process CPU time), each the best of `runs`. On a loaded machine the wall
    figure includes time other processes held the core; the CPU figure does not."""
    from gateway.detection.analyzer import Analyzer

    analyzer = Analyzer()
    spec = DetectionSpec(entities=KNOWN_ENTITIES - NER_ENTITIES - NER_ALSO, min_score=0.4)
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--per-request", type=int, default=8)
    parser.add_argument("--skip-presidio", action="store_true")
    parser.add_argument("--only", nargs="*", help="configurations to run (default: scan and every policy)")
    parser.add_argument("--corpora", nargs="*", help="corpora to run: evaluator payloads names handwritten")
    parser.add_argument("--no-speed", action="store_true", help="skip the patterns-only speed figure")
    parser.add_argument("--explain", action="store_true",
                        help="print every leaked span and over-redacted stretch of the first configuration")
    args = parser.parse_args()
    wanted = set(args.corpora or ("evaluator", "payloads", "names", "handwritten"))
    corpora = []
    evaluator = {seed: evaluator_corpus(args.sentences, seed) for seed in args.seeds} \
        if wanted & {"evaluator", "payloads"} else {}
    if "evaluator" in wanted:
        corpora += [(f"presidio-evaluator PresidioSentenceFaker (seed {seed})", s) for seed, s in evaluator.items()]
    if "payloads" in wanted:
        seed = args.seeds[-1]
        corpora.append((f"payloads: seed {seed} sentences joined 5 to a text", joined(evaluator[seed])))
    if "names" in wanted:
        corpora.append(("multi-locale names (bench/corpus/names.jsonl, 19 locales)", jsonl_corpus(NAMES)))
    if "handwritten" in wanted:
        corpora.append(("hand-written corpus (bench/corpus/handwritten.jsonl)", jsonl_corpus(HANDWRITTEN)))
    configs = [(n, p) for n, p in configurations() if not args.only or n in args.only]
    presidio = None
    if not args.skip_presidio:
        from gateway.detection.analyzer import build_presidio

        presidio = build_presidio()
        presidio.analyze(text="warm-up: John Smith", language="en")

    async def engine_runs():
        # One caller sends every text at once: throughput, not the per-caller admission cap, is measured.
        engine = DetectionEngine(workers=args.workers, timeout_seconds=600, caller_queue=1_000_000)
        await engine.start()
        out = []
        try:
            for _, samples in corpora:
                texts = [s.text for s in samples]
                per_config = {}
                for name, policy in configs:
                    findings, seconds = await run_engine(engine, texts, policy.detection_spec(), args.per_request)
                    protected = applied(findings, policy)
                    per_config[name] = score(samples, protected, seconds)
                    if args.explain and name == configs[0][0]:
                        explain(samples, protected, name)
                out.append(per_config)
        finally:
            await engine.close()
        return out

    results = asyncio.run(engine_runs())
    for (name, samples), scores in zip(corpora, results):
        if presidio is not None:
            found, seconds = run_presidio(presidio, [s.text for s in samples])
            scores["presidio"] = score(samples, found, seconds)
        report(name, samples, scores)
    if not args.no_speed and evaluator:
        wall, cpu = patterns_only_speed(next(iter(evaluator.values())))
        print(f"\npatterns + secrets, no NER, one process: {wall / 1e6:.2f} MB/s wall clock, "
              f"{cpu / 1e6:.2f} MB/s process CPU time (chars/second / 1e6, best of 3)")
    print(f"vendorgate workers: {args.workers}; machine: see `nproc` and /proc/cpuinfo; timings are noisy "
          f"(shared machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
