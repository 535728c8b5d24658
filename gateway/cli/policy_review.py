"""`vendorgate policy test` and `policy diff`: a policy change reviewed before it ships.

Both run the real stages (`gateway.pipeline.rehearse`) with detection on local
worker processes and a throwaway key, and never send or store anything.

Cases file (YAML):

    policy: ../llm-api.yaml          # optional, relative to the cases file
    cases:
      - name: an email address is tokenized
        text: "Write to jane.doe@example.com"       # or body: {...} + content_type
        expect:
          outcome: forwarded                        # forwarded | blocked | rejected
          actions: {EMAIL_ADDRESS: tokenize}        # type -> action its values get
          blocked: [SECRET]                         # types that refuse the request
          absent: [PERSON]                          # types that must not be found
          not_sent: ["jane.doe@example.com"]        # strings the vendor must not receive

`policy diff OLD NEW --sample FILE` (JSON Lines: `{"text": ...}` or
`{"body": ..., "content_type": ..., "path": ...}` per line) compares the
rules, then runs both policies over the sample and counts, per type, the values
that would newly reach the vendor in clear, newly be blocked, or change form.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gateway.detection.engine import DetectionEngine
from gateway.keys import ENV_VAR, LocalKeyProvider
from gateway.pipeline.flow import Outbound
from gateway.pipeline.protect import Services
from gateway.pipeline.rehearse import Rehearsal, rehearse
from gateway.policy import Policy, load_policy
from gateway.yamlfile import FileError, load_yaml

EXPECT_KEYS = {"outcome", "actions", "blocked", "absent", "not_sent"}
CASE_KEYS = {"name", "text", "body", "content_type", "path", "expect"}


@dataclass(frozen=True)
class Case:
    name: str
    outbound: Outbound
    expect: dict[str, Any]
    line: int = 0


@dataclass
class Result:
    case: Case
    problems: list[str] = field(default_factory=list)


def outbound_of(item: dict, vendor: str = "review") -> Outbound:
    """A case or sample line as the request the gateway would read."""
    if "text" in item:
        return Outbound(vendor, item.get("path", "v1/review"), "", str(item["text"]).encode(),
                        item.get("content_type", "text/plain; charset=utf-8"))
    body = item.get("body")
    data = body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
    return Outbound(vendor, item.get("path", "v1/review"), "", data, item.get("content_type", "application/json"))


def load_cases(path: Path) -> tuple[Path | None, list[Case]]:
    loaded = load_yaml(path)
    data = loaded.data
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise FileError(path, ["1: a cases file is a mapping with a `cases:` list"])
    policy = (path.parent / data["policy"]).resolve() if data.get("policy") else None
    cases, errors = [], []
    for i, item in enumerate(data["cases"], 1):
        where = f"{loaded.line_of(('cases', i - 1)) or 0}: cases[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: a case is a mapping")
            continue
        unknown = set(item) - CASE_KEYS
        expect = item.get("expect") or {}
        unknown_expect = set(expect) - EXPECT_KEYS if isinstance(expect, dict) else {"(not a mapping)"}
        if unknown or unknown_expect or not item.get("name") or ("text" in item) == ("body" in item):
            errors.append(f"{where}: needs a name, exactly one of text/body, and expect with "
                          f"{', '.join(sorted(EXPECT_KEYS))}"
                          + (f"; unknown: {', '.join(sorted(unknown | unknown_expect))}" if unknown | unknown_expect
                             else ""))
            continue
        cases.append(Case(str(item["name"]), outbound_of(item), expect, loaded.line_of(("cases", i - 1)) or 0))
    if errors:
        raise FileError(path, errors)
    return policy, cases


def check(case: Case, got: Rehearsal) -> list[str]:
    """What differs from the case's expectations (empty: the case passes)."""
    expect, problems = case.expect, []
    want = expect.get("outcome")
    if want and want != got.outcome:
        problems.append(f"outcome: expected {want}, got {got.outcome}" + (f" ({got.message})" if got.message else ""))
    for entity, action in (expect.get("actions") or {}).items():
        actions = {r.action for r in got.replacements if r.entity_type == entity}
        if action not in actions:
            problems.append(f"{entity}: expected {action}, got {', '.join(sorted(actions)) or 'not found'}")
    for entity in expect.get("blocked") or []:
        if entity not in got.blocked_types:
            problems.append(f"{entity}: expected to block the request; blocked: "
                            f"{', '.join(got.blocked_types) or 'nothing'}")
    for entity in expect.get("absent") or []:
        if got.findings.get(entity):
            problems.append(f"{entity}: expected no finding, found {got.findings[entity]}")
    for i, text in enumerate(expect.get("not_sent") or [], 1):
        if text.encode() in got.body:
            problems.append(f"not_sent[{i}]: the vendor would receive it")  # never echo the value itself
    return problems


def throwaway_keys() -> LocalKeyProvider:
    """A key that exists only for this run: nothing a review issues can be restored later."""
    return LocalKeyProvider(Path("/nonexistent"), env={ENV_VAR: base64.b64encode(secrets.token_bytes(32)).decode()})


class _Engine:
    """The given engine, or local workers started and stopped around the run."""

    def __init__(self, engine: DetectionEngine | None, workers: int):
        self.given = engine
        self.engine = engine or DetectionEngine(workers=workers, timeout_seconds=600)

    async def __aenter__(self) -> Services:
        if self.given is None:
            await self.engine.start()
        return Services(self.engine, throwaway_keys())

    async def __aexit__(self, *exc) -> None:
        if self.given is None:
            await self.engine.close()


async def run_tests(policy_path: str | None, cases_path: str, out: IO[str], workers: int = 1,
                    engine: DetectionEngine | None = None) -> int:
    path = Path(cases_path)
    named, cases = load_cases(path)
    policy_file = Path(policy_path) if policy_path else named
    if policy_file is None:
        raise FileError(path, ["1: no policy: give one on the command line or as `policy:` in the cases file"])
    policy = load_policy(policy_file)
    async with _Engine(engine, workers) as svc:
        results = [Result(c, check(c, await rehearse(c.outbound, policy, svc))) for c in cases]
    print(f"{policy_file}  ({len(cases)} cases from {path})", file=out)
    for r in results:
        print(f"{'PASSED' if not r.problems else 'FAILED'}  {r.case.name}", file=out)
        for problem in r.problems:
            print(f"        {problem}", file=out)
    failed = sum(1 for r in results if r.problems)
    print(f"{len(results) - failed} passed, {failed} failed", file=out)
    return 1 if failed else 0


def rule_changes(old: Policy, new: Policy) -> list[tuple[str, str, str, bool]]:
    """(what, before, after, weakens): a change weakens protection when a type now goes out in clear."""
    rows = []
    for entity in sorted(old.entities | new.entities | set(old.actions) | set(new.actions)):
        a = old.action_for(entity).action if entity in old.entities else "not detected"
        b = new.action_for(entity).action if entity in new.entities else "not detected"
        if a != b:
            rows.append((f"actions.{entity}", a, b, b in ("allow", "not detected") and a not in ("allow",)))
    for attr in ("min_score", "unknown_content", "field_default", "nested_json", "bad_lines"):
        a, b = getattr(old, attr), getattr(new, attr)
        if a != b:
            weakens = (attr == "min_score" and b > a) or (attr == "unknown_content" and b == "pass")
            rows.append((attr, str(a), str(b), weakens))
    old_rules = {json.dumps(r.model_dump(mode="json"), sort_keys=True) for r in old.fields}
    new_rules = {json.dumps(r.model_dump(mode="json"), sort_keys=True) for r in new.fields}
    for rule in sorted(old_rules - new_rules):
        rows.append(("fields", _rule_text(rule), "(removed)", False))
    for rule in sorted(new_rules - old_rules):
        weakens = json.loads(rule).get("action") == "allow"
        rows.append(("fields", "(added)", _rule_text(rule), weakens))
    return rows


def _rule_text(rule: str) -> str:
    data = json.loads(rule)
    where = ", ".join(data.get("select") or []) or ", ".join(f"column {c}" for c in data.get("column") or []) \
        or ", ".join(f"form {f}" for f in data.get("form") or [])
    action = data.get("action")
    return f"{where}: {action if isinstance(action, str) else action.get('action')}"


def load_sample(path: Path) -> list[Outbound]:
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise FileError(path, [f"{n}: invalid JSON ({exc.msg})"]) from None
        if not isinstance(item, dict) or ("text" not in item and "body" not in item):
            raise FileError(path, [f'{n}: expected {{"text": ...}} or {{"body": ..., "content_type": ...}}'])
        items.append(outbound_of(item))
    return items


def compare(before: Rehearsal, after: Rehearsal, counts: dict[str, dict[str, int]]) -> None:
    """Add one sample body's differences to `counts` (kind -> "TYPE" or "TYPE a → b" -> values)."""
    old_forms, new_forms = before.forms(), after.forms()
    old_clear = _clear_values(before)
    for entity, n in _clear_values(after).items():
        gained = n - old_clear.get(entity, 0)
        if gained > 0:
            counts["newly in clear"][entity] = counts["newly in clear"].get(entity, 0) + gained
    if after.outcome == "blocked" and before.outcome != "blocked":
        for entity in after.blocked_types or ["(field rule)"]:
            counts["newly blocked"][entity] = counts["newly blocked"].get(entity, 0) + 1
    for entity in sorted(set(old_forms) & set(new_forms)):
        a, b = old_forms[entity] - {"clear"}, new_forms[entity] - {"clear"}
        if a and b and a != b:
            key = f"{entity} {'/'.join(sorted(a))} → {'/'.join(sorted(b))}"
            counts["changed form"][key] = counts["changed form"].get(key, 0) + 1


def _clear_values(r: Rehearsal) -> dict[str, int]:
    if r.outcome != "forwarded":
        return {}
    out: dict[str, int] = {}
    for rep in r.replacements:
        if rep.action == "allow":
            out[rep.entity_type] = out.get(rep.entity_type, 0) + 1
    return out


async def run_diff(old_path: str, new_path: str, sample_path: str | None, out: IO[str], workers: int = 1,
                   engine: DetectionEngine | None = None) -> int:
    old, new = load_policy(old_path), load_policy(new_path)
    rows = rule_changes(old, new)
    print(f"policy diff  {old_path} → {new_path}", file=out)
    print("rules" if rows else "rules: no change", file=out)
    width = max((len(r[0]) for r in rows), default=0)
    for what, a, b, weakens in rows:
        print(f"  {what:<{width}}  {a} → {b}" + ("   ⚠ weaker" if weakens else ""), file=out)
    counts: dict[str, dict[str, int]] = {"newly in clear": {}, "newly blocked": {}, "changed form": {}}
    if sample_path:
        sample = load_sample(Path(sample_path))
        async with _Engine(engine, workers) as svc:
            for item in sample:
                compare(await rehearse(item, old, svc), await rehearse(item, new, svc), counts)
        print(f"sample: {len(sample)} bodies from {sample_path}", file=out)
        for kind, found in counts.items():
            shown = ", ".join(f"{k} ×{v}" for k, v in sorted(found.items())) or "-"
            print(f"  {kind + ':':<16}{shown}", file=out)
    weaker = any(r[3] for r in rows) or bool(counts["newly in clear"])
    if weaker:
        print("the new policy lets more reach the vendor in clear", file=out)
    return 1 if weaker else 0


def policy_test(args) -> int:
    return asyncio.run(run_tests(args.policy, args.cases, sys.stdout, args.workers))


def policy_diff(args) -> int:
    return asyncio.run(run_diff(args.old, args.new, args.sample, sys.stdout, args.workers))


def register(policy_sub) -> None:
    """Adds `test` and `diff` under `vendorgate policy`."""
    p = policy_sub.add_parser("test", help="run a policy against expected outcomes (YAML cases); exit 1 on a mismatch")
    p.add_argument("policy", nargs="?", help="the policy file (default: the cases file's `policy:`)")
    p.add_argument("--cases", required=True, help="YAML cases file")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=policy_test)
    p = policy_sub.add_parser("diff", help="what changes between two policies, and on a sample what newly reaches "
                                           "the vendor in clear; exit 1 when protection gets weaker")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--sample", help="JSON Lines of bodies to compare the two policies on")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=policy_diff)
