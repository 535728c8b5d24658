"""Recall and false positives of the secrets layer on other scanners' own test cases.

Run: .venv/bin/python bench/secrets_recall.py [--misses]

The fixtures (`bench/secrets_fixtures/*.jsonl`, sources in its SOURCE.md) are the
literal positive and negative strings of gitleaks' rule tests and detect-secrets'
plugin tests, labelled as those projects label them. Each text goes through the
worker's detector stack (`Analyzer`, what the detection processes run) with the
`DetectionSpec` of the default `scan` (no policy) and of `policies/patterns-only.yaml`;
a text counts as flagged when a SECRET finding survives the policy's threshold and
allow-lists and its action is not `allow`. Recall is over positives, "flagged" over
negatives, per source.

A gitleaks case written `GenerateSampleSecrets(identifier, secret)` in Go is
expanded here into the assignment shapes below (our wording, one secret each).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURES = Path(__file__).with_name("secrets_fixtures")
POLICIES = {"scan (default)": None, "patterns-only": ROOT / "policies" / "patterns-only.yaml"}

# detect-secrets' format tests use fillers as positives (`AKIAZZZZ…`, `SKxxxx…`); gitleaks'
# suite labels the same kind of value a negative. Reported separately, never dropped.
FILLER = re.compile(r"([xXZ])\1{7,}")

SHAPES = (
    '{id}_api_token = "{secret}"',
    "{ID}_TOKEN={secret}",
    '{{"{id}_token": "{secret}"}}',
    "{id}_token: {secret}",
)


def cases() -> list[dict]:
    out = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            case["source"] = path.stem
            sample = case.pop("sample", None)
            if sample is None:
                out.append(case)
                continue
            ident, secret = sample["identifier"], sample["secret"]
            for shape in SHAPES:
                out.append({**case, "text": shape.format(id=ident.lower(), ID=ident.upper(), secret=secret)})
    return out


def flagged(analyzer, policy, texts: list[str]) -> list[bool]:
    spec = policy.detection_spec()
    results = analyzer.analyze(texts, spec)
    return [any(f.entity_type == "SECRET" and policy.action_for("SECRET").action != "allow" for f in found)
            for found in results]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--misses", action="store_true", help="print the cases each configuration gets wrong")
    parser.add_argument("--ablation", action="store_true",
                        help="also: the secrets layer alone with only gitleaks' catalogue, only our rules, both; "
                             "and which of our rules change the result when removed")
    args = parser.parse_args()
    from gateway.detection.analyzer import Analyzer
    from gateway.policy import default_policy, load_policy

    all_cases = cases()
    analyzer = Analyzer()
    for label, path in POLICIES.items():
        policy = load_policy(path) if path else default_policy()
        hits = flagged(analyzer, policy, [c["text"] for c in all_cases])
        report(label, score(all_cases, hits, label if args.misses else None))
    if args.ablation:
        ablation(all_cases)


def ablation(all_cases: list[dict]) -> None:
    from gateway.detection.secrets import RULES, SecretDetector

    texts = [c["text"] for c in all_cases]

    def run(detector) -> list[bool]:
        return [bool(detector.detect(t)) for t in texts]

    for label, kw in (("layer alone: gitleaks catalogue only", {"own_rules": False}),
                      ("layer alone: our rules only", {"catalogue": False}),
                      ("layer alone: both (shipped)", {})):
        report(label, score(all_cases, run(SecretDetector(**kw))))
    both = run(SecretDetector())
    print("our rules whose removal changes the result (+ = they add, - = they cost):")
    for rule in RULES:
        # not `disabled=` (a bare id there disables the catalogue rule of the same name too)
        without = run(SecretDetector(own_rules=False, extra_rules=[r for r in RULES if r.id != rule.id]))
        gained = sum(1 for c, a, b in zip(all_cases, both, without) if c["secret"] and a and not b)
        false = sum(1 for c, a, b in zip(all_cases, both, without) if not c["secret"] and a and not b)
        if gained or false:
            print(f"  {rule.id:34s} +{gained} positives  -{false} negatives flagged")


def score(all_cases: list[dict], hits: list[bool], show_misses: str | None = None) -> dict[str, list[int]]:
    """Per source: [true positives, positives, flagged negatives, negatives, filler hits, fillers]."""
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for case, hit in zip(all_cases, hits):
        row = tally[case["source"]]
        if case["secret"]:
            row[0] += hit
            row[1] += 1
            if FILLER.search(case["text"]):
                row[4] += hit
                row[5] += 1
        else:
            row[2] += hit
            row[3] += 1
        if show_misses and hit != case["secret"]:
            kind = "missed" if case["secret"] else "flagged"
            print(f"  [{show_misses}] {kind} {case['source']}:{case['file'].rsplit('/', 1)[-1]}: {case['text'][:110]!r}")
    return tally


def report(label: str, tally: dict[str, list[int]]) -> None:
    print(f"{label}:")
    total = [0] * 6
    for source, row in sorted(tally.items()):
        total = [a + b for a, b in zip(total, row)]
        _line(source, row)
    _line("all", total)


def _line(source: str, row: list[int]) -> None:
    tp, pos, fp, neg, filler_tp, filler = row
    real_tp, real = tp - filler_tp, pos - filler
    print(f"  {source:16s} recall {tp:3d}/{pos:3d} {tp / pos:6.1%}   negatives flagged {fp:3d}/{neg:3d} {fp / neg:6.1%}"
          f"   recall without {filler:2d} filler positives {real_tp:3d}/{real:3d} {real_tp / real:6.1%}")


if __name__ == "__main__":
    main()
