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
import base64
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURES = Path(__file__).with_name("secrets_fixtures")
POLICIES = {"scan (default)": None, "patterns-only": ROOT / "policies" / "patterns-only.yaml"}

# Cases whose label the suites disagree on, set aside by one rule for every source and
# both labels (scores are printed with and without them, never only without):
# - "placeholder": what gitleaks' suite labels a placeholder and detect-secrets' a secret:
#   fillers (`AKIAXXXX…` vs `AKIAZZZZ…`, `SKxxxx…`), alphabet/digit runs
#   (`AIzaSyabcdefghijklmnopqrstuvwxyz1234567` vs `sq0csp-ABCDEFGHIJK_LMNOPQRSTUVWXYZ-0123456789`),
#   and AWS's published example credentials (gitleaks allowlists `.+EXAMPLE$`).
# - "format": a token that breaks its service's published layout. Discord bot tokens start
#   with the bot's numeric user id in base64; detect-secrets' suite has tokens whose first
#   part decodes to bytes that are not digits (real tokens with characters edited).
FILLER = re.compile(r"([xXZ])\1{7,}")
DOC_EXAMPLE = re.compile(r"[A-Za-z0-9/+]EXAMPLE(?:KEY)?(?![A-Za-z0-9])")
DISCORD_SHAPE = re.compile(r"(?<![A-Za-z0-9_\-])([A-Za-z0-9_\-]{23,28})\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}")
REASONS = ("placeholder", "format")


def _has_run(text: str, length: int = 8) -> bool:
    """A run of `length` characters each one code point after the last (`abcdefgh`, `12345678`)."""
    run = 1
    for a, b in zip(text, text[1:]):
        run = run + 1 if a.isalnum() and ord(b) - ord(a) == 1 else 1
        if run >= length:
            return True
    return False


def _discord_id_not_digits(text: str) -> bool:
    for match in DISCORD_SHAPE.finditer(text):
        head = match.group(1)
        if head[0] not in "MNO":
            head = head[1:] if len(head) > 24 and head[1] in "MNO" else head
        try:
            raw = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        except ValueError:
            return True
        if not raw.isdigit():
            return True
    return False


def contested(text: str) -> str | None:
    """Why the suites' labels for `text` disagree, or None."""
    if FILLER.search(text) or _has_run(text) or DOC_EXAMPLE.search(text):
        return "placeholder"
    if _discord_id_not_digits(text):
        return "format"
    return None

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


def score(all_cases: list[dict], hits: list[bool], show_misses: str | None = None) -> dict[str, dict]:
    """Per source and per set-aside level: [true positives, positives, flagged negatives, negatives].

    Level 0 counts every case; level 1 sets aside "placeholder" cases; level 2 also "format" ones.
    """
    tally: dict[str, list[list[int]]] = defaultdict(lambda: [[0, 0, 0, 0] for _ in range(3)])
    for case, hit in zip(all_cases, hits):
        reason = contested(case["text"])
        levels = range(1 if reason == "placeholder" else 2 if reason == "format" else 3)
        for level in levels:
            row = tally[case["source"]][level]
            if case["secret"]:
                row[0] += hit
                row[1] += 1
            else:
                row[2] += hit
                row[3] += 1
        if show_misses and hit != case["secret"]:
            kind = "missed" if case["secret"] else "flagged"
            note = f" [{reason}]" if reason else ""
            print(f"  [{show_misses}] {kind} {case['source']}:{case['file'].rsplit('/', 1)[-1]}{note}: "
                  f"{case['text'][:110]!r}")
    return tally


def report(label: str, tally: dict[str, list[list[int]]]) -> None:
    print(f"{label}:")
    print(f"  {'':16s} {'all cases':>31s}   {'without placeholders':>31s}   {'and without format breaks':>31s}")
    total = [[0] * 4 for _ in range(3)]
    for source, levels in sorted(tally.items()):
        total = [[a + b for a, b in zip(t, r)] for t, r in zip(total, levels)]
        _line(source, levels)
    _line("all", total)


def _pct(a: int, b: int) -> str:
    return f"{a:3d}/{b:3d} {a / b:6.1%}" if b else f"{'-':>14s}"


def _line(source: str, levels: list[list[int]]) -> None:
    cells = [f"R {_pct(tp, pos)} FP {_pct(fp, neg)}" for tp, pos, fp, neg in levels]
    print(f"  {source:16s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
