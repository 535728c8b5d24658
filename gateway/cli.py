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
    from gateway.server import StartupError, serve

    settings = load_config(args.config, Path(args.data_dir) if args.data_dir else None)
    logging.basicConfig(level=settings.config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(serve(settings))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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

    data_dir = _data_dir(args)
    fingerprints = load_config(args.config).config.fingerprints if args.config else None
    return asyncio.run(scan_stream(sys.stdin, sys.stdout, args.policy, args.explain, args.workers, data_dir, fingerprints))


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


def _open_audit(args):
    from gateway.audit.schedule import open_audit
    from gateway.config import AuditConfig
    from gateway.keys import LocalKeyProvider

    data_dir = _data_dir(args)
    audit = load_config(args.config).config.audit if getattr(args, "config", None) else AuditConfig()
    if not audit.dsn and not (data_dir / "audit.sqlite").exists():
        print(f"no audit log in {data_dir} (use --data-dir or --config)", file=sys.stderr)
        raise SystemExit(1)
    return open_audit(data_dir, LocalKeyProvider.in_data_dir(data_dir), audit)


def cmd_audit_list(args) -> int:
    log = _open_audit(args)
    rows = log.records(vendor=args.vendor, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    from gateway.table import table

    lines = [[str(r["seq"]), _when(r["ts"]), r["vendor"] or "-", r["caller"], r["method"], str(r["status"]),
              _decision(r), _counts(r["actions"]), _counts(r["findings"])] for r in rows]
    print(table(["SEQ", "TIME (UTC)", "VENDOR", "CALLER", "METHOD", "STATUS", "DECISION", "ACTIONS", "FINDINGS"],
                lines, right=frozenset({0, 5})))
    print(f"{len(rows)} record(s)")
    return 0


def _when(ts: str) -> str:
    """ISO UTC time as `2025-01-31 14:02:07.123`: the date and time at a glance."""
    return ts[:23].replace("T", " ")


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items())) or "-"


def _decision(record: dict) -> str:
    blocked = record.get("blocked_types") or []
    return f"{record['decision']} ({', '.join(blocked)})" if blocked else record["decision"]


def cmd_audit_verify(args) -> int:
    result = _open_audit(args).verify()
    if result.ok:
        pruned = f"; seq 1..{result.pruned} pruned by retention" if result.pruned else ""
        tail = result.pruned + result.checked - result.latest_checkpoint
        print(f"audit log intact: {result.checked} record(s) verified against {result.checkpoints} signed "
              f"checkpoint(s){pruned}")
        if tail:
            print(f"{tail} record(s) after the newest checkpoint are covered by the keyed head only "
                  "(`vendorgate audit prove` signs a new checkpoint)")
        return 0
    print(f"AUDIT LOG TAMPERED: {result.problem}", file=sys.stderr)
    if result.seq is not None:
        print(f"({result.checked} record(s) before it verified)", file=sys.stderr)
    return 2


def _open_ledger(args):
    """The ledger next to the audit log: PostgreSQL when the config has `audit.dsn`."""
    from gateway.audit.ledger import DB_NAME, ExposureLedger
    from gateway.keys import LocalKeyProvider

    data_dir = _data_dir(args)
    dsn = load_config(args.config).config.audit.dsn if getattr(args, "config", None) else None
    if not dsn and not (data_dir / DB_NAME).exists():
        print(f"no exposure ledger in {data_dir} (use --data-dir or --config)", file=sys.stderr)
        raise SystemExit(1)
    return ExposureLedger.in_data_dir(data_dir, LocalKeyProvider.in_data_dir(data_dir), dsn)


def cmd_audit_who_saw(args) -> int:
    hits = _open_ledger(args).who_saw(args.value, args.type)
    if args.json:
        for h in hits:
            print(json.dumps({k: v for k, v in h.items() if k != "key_id"}, sort_keys=True))
        return 0 if hits else 1
    if not hits:
        print("no vendor received this value (in clear or as a tracked token)")
        return 1
    from gateway.table import table

    print(table(["TIME (UTC)", "VENDOR", "CALLER", "TYPE", "SENT AS", "REQUEST"],
                [[_when(h["ts"]), h["vendor"], h["caller"], h["entity_type"],
                  "in clear" if h["via"] == "clear" else f"{h['via']} {h['surrogate']}", h["request_id"]] for h in hits]))
    vendors = sorted({h["vendor"] for h in hits})
    print(f"{len(hits)} exposure(s) to {len(vendors)} vendor(s): {', '.join(vendors)}")
    return 0


def _since(args):
    from gateway.report import parse_since

    try:
        return parse_since(args.since)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)


def cmd_audit_vendor(args) -> int:
    from gateway.report import vendor_summary

    since = _since(args)
    ledger = _open_ledger(args)
    summary = vendor_summary(_open_audit(args).records(vendor=args.vendor), ledger.rows(vendor=args.vendor),
                             args.vendor, since)
    if summary is None:
        print(f"vendor {args.vendor!r}: nothing recorded since {since.isoformat(timespec='seconds')}")
        return 1
    if args.json:
        print(json.dumps(summary, sort_keys=True, indent=2))
        return 0
    print(f"vendor {args.vendor} since {since.isoformat(timespec='seconds')}")
    print(f"  requests   {summary['requests']}  (forwarded {summary['forwarded']}, blocked {summary['blocked']}, "
          f"rejected {summary['rejected']}, errors {summary['errors']})")
    print(f"  bytes sent {summary['bytes_sent']}  received {summary['bytes_received']}")
    print(f"  {'ENTITY TYPE':<20} {'FOUND':>7} {'CLEAR':>7} {'TOKENS':>7}   (distinct values from the ledger)")
    for t in sorted(set(summary["findings"]) | set(summary["exposed"])):
        e = summary["exposed"].get(t, {})
        print(f"  {t:<20} {summary['findings'].get(t, 0):>7} {e.get('clear', 0):>7} {e.get('token', 0):>7}")
    if summary["blocked_types"]:
        print("  blocked for " + ", ".join(f"{t} ×{n}" for t, n in summary["blocked_types"].items()))
    print("  actions    " + (", ".join(f"{a} ×{n}" for a, n in summary["actions"].items()) or "-"))
    print("  top callers " + ", ".join(f"{c} ({n})" for c, n in summary["top_callers"]))
    return 0


def cmd_report(args) -> int:
    from gateway.report import collect
    from gateway.report.export import write_csv, write_json
    from gateway.report.html import render_html

    if not (args.html or args.json or args.csv):
        print("error: give at least one of --html, --json, --csv", file=sys.stderr)
        return 2
    since = _since(args)
    data = collect(_open_audit(args).records(), _open_ledger(args).rows(since=since.isoformat()), since)
    for path, write in ((args.html, lambda p: Path(p).write_text(render_html(data), encoding="utf-8")),
                        (args.json, lambda p: write_json(data, p)), (args.csv, lambda p: write_csv(data, p))):
        if path:
            write(path)
            print(f"wrote {path}")
    t = data["totals"]
    print(f"{t['vendors']} vendor(s), {t['requests']} request(s), {t['blocked']} blocked, "
          f"{t['distinct_clear_values']} distinct value(s) sent in clear since {data['since']}")
    return 0


def cmd_keys_rotate(args) -> int:
    from gateway.keys import KeyProviderError, LocalKeyProvider

    data_dir = _data_dir(args)
    try:
        new_id = LocalKeyProvider.in_data_dir(data_dir).rotate()
    except KeyProviderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"new current key {new_id} in {data_dir / 'keys.json'}; older keys still decrypt. "
          "Restart the gateway (every instance) to issue tokens with it.")
    return 0


def cmd_keys_list(args) -> int:
    import os

    from gateway.keys import ENV_VAR, KEY_FILE_NAME, KeyProviderError, LocalKeyProvider

    data_dir = _data_dir(args)
    if not os.environ.get(ENV_VAR) and not (data_dir / KEY_FILE_NAME).exists():
        print(f"no key file in {data_dir} (use --data-dir or --config)", file=sys.stderr)
        return 1
    try:
        keys = LocalKeyProvider.in_data_dir(data_dir)
    except KeyProviderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    source = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else str(data_dir / KEY_FILE_NAME)
    for key_id in keys.key_ids():
        print(f"{key_id}{'  (current)' if key_id == keys.current_id() else ''}")
    print(f"{len(keys.key_ids())} key(s) from {source}")
    return 0


def cmd_audit_prove(args) -> int:
    from gateway.audit import AuditLogError
    from gateway.audit.proofs import prove

    try:
        bundle = prove(_open_audit(args), args.record_id)
    except AuditLogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(bundle.to_json())
        print(f"wrote inclusion proof for record {args.record_id} (leaf {bundle.leaf_index} of {bundle.tree_size}) "
              f"to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(bundle.to_json())
    return 0


def cmd_audit_verify_proof(args) -> int:
    """Offline: reads only the bundle file (and the public key); never the database."""
    import base64
    import binascii

    from gateway.audit.checkpoint import CheckpointError, InclusionBundle, verify_bundle

    trusted = None
    if args.public_key:
        text = Path(args.public_key).read_text().strip() if Path(args.public_key).is_file() else args.public_key
        try:
            trusted = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            print("error: --public-key must be base64 (as printed by `vendorgate audit public-key`) or a file holding it",
                  file=sys.stderr)
            return 2
    try:
        bundle = InclusionBundle.from_json(Path(args.file).read_text())
        verify_bundle(bundle, trusted)
    except (OSError, CheckpointError) as exc:
        print(f"PROOF INVALID: {exc}", file=sys.stderr)
        return 2
    cp = bundle.checkpoint
    print(f"proof valid: record {bundle.record.get('id')} is leaf {bundle.leaf_index} of {cp.log_id} at size "
          f"{cp.tree_size}, checkpoint dated {cp.timestamp}, key id {cp.key_id}")
    if trusted is None:
        print("WARNING: no --public-key given: this only shows the bundle is self-consistent; anyone can sign "
              "their own bundle. Pass the gateway's public key (vendorgate audit public-key).", file=sys.stderr)
    return 0


def cmd_audit_public_key(args) -> int:
    import base64

    from gateway.audit.checkpoint import public_key_for
    from gateway.keys import LocalKeyProvider

    keys = LocalKeyProvider.in_data_dir(_data_dir(args))
    key_id = args.key_id or keys.current_id()
    print(base64.b64encode(public_key_for(keys, key_id)).decode())
    print(f"(Ed25519 checkpoint key, key id {key_id}; give it to auditors for `vendorgate audit verify-proof "
          "--public-key`)", file=sys.stderr)
    return 0


def cmd_audit_prune(args) -> int:
    """Retention by hand: the audit log, the ledger and, with --config, spools of sinks no longer configured."""
    from gateway.audit.ledger import DB_NAME
    from gateway.audit.schedule import RetentionResult, prune_spools, retention_cutoff
    from gateway.audit.proofs import prune
    from gateway.audit.sinkconfig import sink_name

    config = load_config(args.config).config if args.config else None
    days = args.days if args.days is not None else (config.audit.retention_days if config else None)
    if not days:
        print("error: give --days N or a config with audit.retention_days", file=sys.stderr)
        return 2
    audit_result = prune(_open_audit(args), days)
    rows = 0
    if (config and config.audit.dsn) or (_data_dir(args) / DB_NAME).exists():
        rows = _open_ledger(args).prune_sync(retention_cutoff(days))
    spools = prune_spools(_data_dir(args) / "spool", days, {sink_name(s) for s in config.sinks}) if config else []
    print(RetentionResult(audit_result, rows, spools).summary(days))
    return 0


def cmd_fingerprint(args) -> int:
    from gateway import company_cli

    from gateway.fingerprint.location import IndexLocation

    where = IndexLocation.of(_data_dir(args), load_config(args.config).config.fingerprints if args.config else None)
    if args.fingerprint_command == "add":
        return company_cli.fingerprint_add(where, args.label, args.paths, args.k, args.t)
    if args.fingerprint_command == "list":
        return company_cli.fingerprint_list(where)
    if (args.label is None) == (args.id is None):
        print("error: give a LABEL or --id N", file=sys.stderr)
        return 2
    return company_cli.fingerprint_remove(where, args.label, args.id)


def cmd_exposure(args) -> int:
    from gateway.company_cli import exposure

    return exposure(load_config(args.config, Path(args.data_dir) if args.data_dir else None), args.vendor)


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
    s.add_argument("--data-dir", help=f"consult the fingerprint index in this data dir (default ./{DEFAULT_DATA_DIR}/)")
    s.add_argument("--config", help="consult the fingerprint index this config names (its data_dir or `fingerprints: {dsn}`)")
    s.set_defaults(func=cmd_scan)

    s = sub.add_parser("fingerprint", help="protected documents: index, list, remove")
    fsub = s.add_subparsers(dest="fingerprint_command", required=True, metavar="SUBCOMMAND")
    f = fsub.add_parser("add", help="index files or folders under a label", description=(
        "Fingerprint files and folders (recursively) so that outbound text carrying a passage of them yields "
        "PROTECTED_DOCUMENT. Code files (by extension) are normalised as code, others as prose."))
    f.add_argument("--label", required=True, help="name the documents are reported under (the finding's rule)")
    f.add_argument("paths", nargs="+", metavar="PATH")
    f.add_argument("-k", type=int, help="noise threshold, only when the index is created (default 32)")
    f.add_argument("-t", type=int, help="guarantee threshold, only when the index is created (default 64)")
    fsub.add_parser("list", help="list indexed documents")
    r = fsub.add_parser("remove", help="remove every document of a label, or one by --id")
    r.add_argument("label", nargs="?", metavar="LABEL")
    r.add_argument("--id", type=int, help="remove the document with this id")
    for f in fsub.choices.values():
        f.add_argument("--data-dir", help=f"data dir (default ./{DEFAULT_DATA_DIR}/)")
        f.add_argument("--config", help="take the data dir (and `fingerprints: {dsn}`, a PostgreSQL index) from this config")
        f.set_defaults(func=cmd_fingerprint)

    s = sub.add_parser("exposure", help="where each vendor stands against its exposure budgets", description=(
        "Distinct values each vendor received in clear in the current window, against the budgets in its policy."))
    s.add_argument("--vendor", help="only this vendor")
    s.add_argument("--config", help="config YAML (default: the shipped config)")
    s.add_argument("--data-dir", help="data dir (default: the config's, or ./.vendorgate/)")
    s.set_defaults(func=cmd_exposure)

    s = sub.add_parser("policy", help="work with policy files")
    psub = s.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    c = psub.add_parser("check", help="validate policy files", description="Validate policy files; errors name file, line and field.")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--strict", action="store_true", help="exit 1 when a field rule can never apply")
    c.set_defaults(func=cmd_policy_check)

    s = sub.add_parser("audit", help="read, verify and prove the audit log")
    asub = s.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    for name, func, helptext in (
            ("list", cmd_audit_list, "one line per request"),
            ("verify", cmd_audit_verify, "recompute the Merkle tree, check every signed checkpoint; name the first bad record"),
            ("prove", cmd_audit_prove, "inclusion proof bundle for one record against the newest signed checkpoint"),
            ("public-key", cmd_audit_public_key, "print the checkpoint signing public key (base64) for auditors"),
            ("prune", cmd_audit_prune, "delete records older than the retention period; the rest still verify")):
        a = asub.add_parser(name, help=helptext, description=helptext)
        a.add_argument("--data-dir", help=f"data dir (default ./{DEFAULT_DATA_DIR}/)")
        a.add_argument("--config", help="take the data dir (and audit.dsn) from this config")
        a.set_defaults(func=func)
        if name == "list":
            a.add_argument("--vendor", help="only this vendor")
            a.add_argument("--json", action="store_true", help="one JSON object per line")
            a.add_argument("--limit", type=int, help="only the newest N records")
        if name == "prove":
            a.add_argument("record_id", metavar="RECORD_ID", help="the record's id (see `audit list --json`)")
            a.add_argument("--out", metavar="FILE", help="write the bundle here instead of stdout")
        if name == "public-key":
            a.add_argument("--key-id", help="an older key id after rotation (default: the current key)")
        if name == "prune":
            a.add_argument("--days", type=int, help="keep this many days (default: the config's audit.retention_days)")
    a = asub.add_parser("verify-proof", help="check an inclusion proof bundle offline (no database)",
                        description="Check a bundle from `audit prove` with nothing but the file and the public key.")
    a.add_argument("file", metavar="FILE")
    a.add_argument("--public-key", metavar="B64|FILE", help="the gateway's public key; without it only self-consistency is shown")
    a.set_defaults(func=cmd_audit_verify_proof)

    a = asub.add_parser("who-saw", help="which vendors received a value, in clear or as a token",
                        description="Look a value up in the exposure ledger (by keyed fingerprint; the ledger holds no values). Exit 1 if no vendor received it.")
    a.add_argument("value", metavar="VALUE")
    a.add_argument("--type", help="only as this entity type, e.g. EMAIL_ADDRESS")
    a.add_argument("--json", action="store_true", help="one JSON object per exposure")
    a.set_defaults(func=cmd_audit_who_saw)
    a = asub.add_parser("vendor", help="what one vendor saw", description="Requests, bytes, distinct values per entity type, blocks and top callers for one vendor.")
    a.add_argument("vendor", metavar="VENDOR")
    a.add_argument("--since", default="30d", help="e.g. 30d, 12h, 2w or 2025-01-31 (default 30d)")
    a.add_argument("--json", action="store_true", help="the figures as JSON")
    a.set_defaults(func=cmd_audit_vendor)
    for a in (asub.choices["who-saw"], asub.choices["vendor"]):
        a.add_argument("--data-dir", help=f"data dir (default ./{DEFAULT_DATA_DIR}/)")
        a.add_argument("--config", help="take the data dir (and audit.dsn) from this config")

    s = sub.add_parser("report", help="exposure report as HTML, JSON and/or CSV",
                       description="A self-contained exposure report per vendor: exposure over time by entity type, actions, blocks, top callers.")
    s.add_argument("--since", default="30d", help="e.g. 30d, 12h, 2w or 2025-01-31 (default 30d)")
    s.add_argument("--html", metavar="FILE", help="write the HTML report here")
    s.add_argument("--json", metavar="FILE", help="write the figures as JSON here")
    s.add_argument("--csv", metavar="FILE", help="write the figures as CSV here")
    s.add_argument("--data-dir", help=f"data dir (default ./{DEFAULT_DATA_DIR}/)")
    s.add_argument("--config", help="take the data dir (and audit.dsn) from this config")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("keys", help="list and rotate master keys")
    ksub = s.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    for name, func, helptext in (("list", cmd_keys_list, "key ids (never key material); the current one is marked"),
                                 ("rotate", cmd_keys_rotate, "add a new current key; old keys stay to decrypt")):
        k = ksub.add_parser(name, help=helptext, description=helptext)
        k.add_argument("--data-dir", help=f"data dir (default ./{DEFAULT_DATA_DIR}/)")
        k.add_argument("--config", help="take the data dir from this config")
        k.set_defaults(func=func)
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
