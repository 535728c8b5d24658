"""`vendorgate policy check`: validate policy files."""

from __future__ import annotations

import sys

from gateway.cli import policy_review
from gateway.yamlfile import FileError


def register(sub) -> None:
    s = sub.add_parser("policy", help="work with policy files")
    psub = s.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    c = psub.add_parser("check", help="validate policy files",
                        description="Validate policy files; errors name file, line and field.")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--strict", action="store_true", help="exit 1 when a field rule can never apply")
    c.set_defaults(func=check)
    policy_review.register(psub)  # policy test, policy diff


def check(args) -> int:
    from gateway.policy import load_policy

    failed = warned = 0
    for path in args.files:
        try:
            policy = load_policy(path)
        except FileError as exc:
            failed += 1
            print(f"FAIL {exc}", file=sys.stderr)
            continue
        detect = "all default types" if policy.detect == "all" else ", ".join(policy.detect)
        print(f"ok   {path}: detects {detect}; min_score {policy.min_score}; "
              f"default action {policy.default_action.action}; {len(policy.actions)} per-type actions")
        warned += _field_rule_report(path, policy)
    return 1 if failed or (warned and args.strict) else 0


def _field_rule_report(path, policy) -> int:
    """Print the field rules and warn about rules that can never apply."""
    from gateway.policy.fields import lint

    if not policy.fields:
        return 0
    default = policy.rule_set.rules[-1].verb if policy.rule_set.default_rule is not None else "scan"
    print(f"     {len(policy.fields)} field rule(s), first match wins; unmatched fields: {default}")
    warnings = lint(policy.fields)
    for warning in warnings:
        print(f"warn {path}: {warning}")
    return len(warnings)
