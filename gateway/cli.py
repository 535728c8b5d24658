"""The `vendorgate` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from gateway.config import DEFAULT_DATA_DIR, SHIPPED_CONFIG, load_config, split_listen
from gateway.yamlfile import FileError

EPILOG = "Docs: README.md. Every command exits non-zero on failure."


def _data_dir(args) -> Path:
    if getattr(args, "data_dir", None):
        return Path(args.data_dir).resolve()
    if getattr(args, "config", None):
        return load_config(args.config).data_dir
    return (Path.cwd() / DEFAULT_DATA_DIR).resolve()


def cmd_serve(args) -> int:
    from gateway.server import serve

    settings = load_config(args.config, Path(args.data_dir) if args.data_dir else None)
    logging.basicConfig(level=settings.config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(serve(settings))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_demo_vendor(args) -> int:
    from aiohttp import web

    from gateway.demo_vendor import demo_vendor_app

    host, port = split_listen(args.listen)
    print(f"demo vendor listening on http://{args.listen} (it prints and returns what it receives)", flush=True)
    web.run_app(demo_vendor_app(), host=host, port=port, print=None, access_log=None)
    return 0


def cmd_scan(args) -> int:
    from gateway.scan import scan_stream

    return asyncio.run(scan_stream(sys.stdin, sys.stdout, args.policy, args.explain, args.workers))


def cmd_policy_check(args) -> int:
    from gateway.policy import load_policy

    failed = warned = 0
    for path in args.files:
        try:
            policy = load_policy(path)
        except FileError as exc:
            failed += 1
            print(f"FAIL {exc}", file=sys.stderr)
            continue
        detect = "all known types" if policy.detect == "all" else ", ".join(policy.detect)
        print(f"ok   {path}: detects {detect}; min_score {policy.min_score}; "
              f"default action {policy.default_action.action}; {len(policy.actions)} per-type actions")
        warned += _field_rule_report(path, policy)
    return 1 if failed or (warned and args.strict) else 0


def _field_rule_report(path, policy) -> int:
    """Print the field rules and warn about rules that can never apply."""
    from gateway.fieldrules import lint

    if not policy.fields:
        return 0
    default = policy.rule_set.rules[-1].verb if policy.rule_set.default_rule is not None else "scan"
    print(f"     {len(policy.fields)} field rule(s), first match wins; unmatched fields: {default}")
    warnings = lint(policy.fields)
    for warning in warnings:
        print(f"warn {path}: {warning}")
    return len(warnings)


def _open_audit(args):
    from gateway.audit import AuditLog
    from gateway.keys import LocalKeyProvider

    data_dir = _data_dir(args)
    if not (data_dir / "audit.sqlite").exists():
        print(f"no audit log in {data_dir} (use --data-dir or --config)", file=sys.stderr)
        raise SystemExit(1)
    return AuditLog.in_data_dir(data_dir, LocalKeyProvider.in_data_dir(data_dir))


def cmd_audit_list(args) -> int:
    log = _open_audit(args)
    rows = log.records(vendor=args.vendor, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    print(f"{'SEQ':>5}  {'TIME (UTC)':<23}  {'VENDOR':<10} {'CALLER':<14} {'METHOD':<6} {'STATUS':>6}  {'DECISION':<9}  FINDINGS")
    for r in rows:
        findings = ", ".join(f"{k}×{v}" for k, v in sorted(r["findings"].items())) or "-"
        if r.get("blocked_types"):
            findings += "  [blocked: " + ", ".join(r["blocked_types"]) + "]"
        print(f"{r['seq']:>5}  {r['ts'][:23]:<23}  {r['vendor'] or '-':<10} {r['caller'][:14]:<14} "
              f"{r['method']:<6} {r['status']:>6}  {r['decision']:<9}  {findings}")
    print(f"{len(rows)} record(s)")
    return 0


def cmd_audit_verify(args) -> int:
    result = _open_audit(args).verify()
    if result.ok:
        print(f"audit log intact: {result.checked} record(s) verified")
        return 0
    print(f"AUDIT LOG TAMPERED: {result.problem}", file=sys.stderr)
    print(f"({result.checked} record(s) before it verified)", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vendorgate", description="Data-leakage gateway between your services and outside vendors.", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the gateway", description=f"Run the gateway. Without --config it uses the shipped config ({SHIPPED_CONFIG}), the example policy, and the demo vendor.")
    s.add_argument("--config", help="config YAML (default: the shipped config)")
    s.add_argument("--data-dir", help=f"where keys and the audit log live (default: ./{DEFAULT_DATA_DIR}/ or the config's data_dir)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("demo-vendor", help="run the demo vendor on its own", description="A stand-in vendor that prints and returns exactly what it received.")
    s.add_argument("--listen", default="127.0.0.1:8081", help="HOST:PORT (default 127.0.0.1:8081)")
    s.set_defaults(func=cmd_demo_vendor)

    s = sub.add_parser("scan", help="scan JSON Lines from stdin", description=(
        'Read {"text": "..."} per line on stdin; write {"findings": [...], "text": "<as the vendor would receive it>"} '
        'per line, in order. Without --policy every detector runs at its default threshold with action redact. '
        'A malformed line yields {"error": "..."}.'))
    s.add_argument("--policy", help="policy YAML to apply")
    s.add_argument("--explain", action="store_true", help="add which recognizer fired and why to each finding")
    s.add_argument("--workers", type=int, default=0, help="detection worker processes (default: one per core)")
    s.set_defaults(func=cmd_scan)

    s = sub.add_parser("policy", help="work with policy files")
    psub = s.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    c = psub.add_parser("check", help="validate policy files", description="Validate policy files; errors name file, line and field.")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--strict", action="store_true", help="exit 1 when a field rule can never apply")
    c.set_defaults(func=cmd_policy_check)

    s = sub.add_parser("audit", help="read and verify the audit log")
    asub = s.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    for name, func, helptext in (("list", cmd_audit_list, "one line per request"),
                                 ("verify", cmd_audit_verify, "check the hash chain; name the first bad record")):
        a = asub.add_parser(name, help=helptext, description=helptext)
        a.add_argument("--data-dir", help=f"data dir (default ./{DEFAULT_DATA_DIR}/)")
        a.add_argument("--config", help="take the data dir from this config")
        a.set_defaults(func=func)
        if name == "list":
            a.add_argument("--vendor", help="only this vendor")
            a.add_argument("--json", action="store_true", help="one JSON object per line")
            a.add_argument("--limit", type=int, help="only the newest N records")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
