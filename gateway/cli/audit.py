"""`vendorgate audit ...`: read, verify, prove and prune the audit log; ask the
exposure ledger who saw a value and what one vendor saw."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gateway.cli.common import SINCE_HELP, add_store_options, data_dir, open_audit, open_ledger, since, when
from gateway.config import load_config


def register(sub) -> None:
    s = sub.add_parser("audit", help="read, verify and prove the audit log")
    asub = s.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    _register_log(asub)
    _register_ledger(asub)


def _register_log(asub) -> None:
    """The audit log itself: list, verify, prove, public-key, prune; verify-proof offline."""
    a = _command(asub, "list", list_records, "one line per request")
    a.add_argument("--vendor", help="only this vendor")
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a.add_argument("--limit", type=int, help="only the newest N records")
    _command(asub, "verify", verify,
             "recompute the Merkle tree, check every signed checkpoint; name the first bad record")
    a = _command(asub, "prove", prove, "inclusion proof bundle for one record against the newest signed checkpoint")
    a.add_argument("record_id", metavar="RECORD_ID", help="the record's id (see `audit list --json`)")
    a.add_argument("--out", metavar="FILE", help="write the bundle here instead of stdout")
    a = _command(asub, "public-key", public_key, "print the checkpoint signing public key (base64) for auditors")
    a.add_argument("--key-id", help="an older key id after rotation (default: the current key)")
    a = _command(asub, "prune", prune, "delete records older than the retention period; the rest still verify")
    a.add_argument("--days", type=int, help="keep this many days (default: the config's audit.retention_days); "
                                             "0 prunes every record up to a new checkpoint and asks first")
    a.add_argument("--yes", action="store_true", help="do not ask before --days 0")

    a = asub.add_parser("verify-proof", help="check an inclusion proof bundle or a subject report offline (no database)",
                        description="Check a bundle from `audit prove`, or a `subject report --json` file (every "
                                    "record's proof and lineage), with nothing but the file and the public key.")
    a.add_argument("file", metavar="FILE")
    a.add_argument("--public-key", metavar="B64|FILE",
                   help="the gateway's public key; without it only self-consistency is shown")
    a.set_defaults(func=verify_proof)


def _register_ledger(asub) -> None:
    """The exposure ledger: who saw a value, what one vendor saw."""
    a = asub.add_parser("who-saw", help="which vendors received a value, how often and in which forms", description=(
        "Look a value up in the exposure ledger (by keyed fingerprint; the ledger holds no values): per vendor, "
        "how many requests and times, in which forms (clear, masked, hashed, redacted, tokenized, encrypted, fpe, "
        "synthetic; blocked, dropped), first and last seen. Exit 1 if no vendor received it in any form."))
    a.add_argument("value", metavar="VALUE")
    a.add_argument("--type", help="only as this entity type, e.g. EMAIL_ADDRESS")
    a.add_argument("--requests", action="store_true", help="also one line per request")
    a.add_argument("--json", action="store_true", help="per vendor and per request, as one JSON object")
    add_store_options(a)
    a.set_defaults(func=who_saw)

    a = asub.add_parser("vendor", help="what one vendor saw", description=(
        "Requests, bytes, distinct values per entity type, blocks and top callers for one vendor."))
    a.add_argument("vendor", metavar="VENDOR")
    a.add_argument("--since", default="30d", help=SINCE_HELP)
    a.add_argument("--json", action="store_true", help="the figures as JSON")
    add_store_options(a)
    a.set_defaults(func=vendor)


def _command(asub, name: str, func, helptext: str):
    """A subcommand on the audit log itself: `--data-dir` and `--config` first."""
    a = asub.add_parser(name, help=helptext, description=helptext)
    add_store_options(a)
    a.set_defaults(func=func)
    return a


def list_records(args) -> int:
    rows = open_audit(args, read_only=True).records(vendor=args.vendor, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    from gateway.cli.table import table

    lines = [[str(r["seq"]), when(r["ts"]), r["vendor"] or "-", r["caller"], r["method"], str(r["status"]),
              _decision(r), _counts(r["actions"]), _counts(r["findings"])] for r in rows]
    print(table(["SEQ", "TIME (UTC)", "VENDOR", "CALLER", "METHOD", "STATUS", "DECISION", "ACTIONS", "FINDINGS"],
                lines, right=frozenset({0, 5})))
    print(f"{len(rows)} record(s)")
    return 0


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items())) or "-"


def _decision(record: dict) -> str:
    blocked = record.get("blocked_types") or []
    return f"{record['decision']} ({', '.join(blocked)})" if blocked else record["decision"]


def verify(args) -> int:
    from gateway.audit.verify import verify_log

    log = open_audit(args, read_only=True)
    result = verify_log(log)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.ok:
        pruned = f"; seq 1..{result.pruned} pruned by retention" if result.pruned else ""
        tail = result.pruned + result.checked - result.latest_checkpoint
        print(f"audit log intact: {result.checked} record(s) verified against {result.checkpoints} signed "
              f"checkpoint(s){pruned}")
        if tail:
            print(f"{tail} record(s) after the newest checkpoint are covered by the keyed head only "
                  "(`vendorgate audit prove` signs a new checkpoint)")
        return verify_ledger_rows(args, log)
    print(f"AUDIT LOG TAMPERED: {result.problem}", file=sys.stderr)
    if result.seq is not None:
        print(f"({result.checked} record(s) before it verified)", file=sys.stderr)
    return 2


def verify_ledger_rows(args, log) -> int:
    """The exposure ledger against the lineage digests of the (verified) records."""
    from gateway.audit.ledger import DB_NAME, verify_ledger

    config = load_config(args.config).config if args.config else None
    if not (config and config.audit.dsn) and not (data_dir(args) / DB_NAME).exists():
        return 0
    ledger = open_ledger(args)
    check = verify_ledger(log.records(), ledger)
    if not check.ok:
        print(f"EXPOSURE LEDGER TAMPERED: {check.problem}", file=sys.stderr)
        return 2
    print(f"exposure ledger: {check.rows} row(s) of {check.checked} record(s) match the records' lineage digests")
    return 0


def prove(args) -> int:
    from gateway.audit import AuditLogError
    from gateway.audit.proofs import prove as prove_record

    try:
        bundle = prove_record(open_audit(args), args.record_id)
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


def verify_proof(args) -> int:
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
        text = Path(args.file).read_text()
        if '"vendorgate-subject-report/' in text[:200_000]:
            return _verify_subject_report(text, trusted)
        bundle = InclusionBundle.from_json(text)
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


def _verify_subject_report(text: str, trusted: bytes | None) -> int:
    """A `subject report --json` file: every bundle, every record's lineage, every exposure row."""
    from gateway.audit.checkpoint import CheckpointError
    from gateway.report.subject import verify

    try:
        got = verify(json.loads(text), trusted)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"malformed subject report ({type(exc).__name__})") from None
    print(f"subject report valid: {got.records} audit record(s) proven against the checkpoint at size {got.tree_size} "
          f"dated {got.checkpoint_time}; {got.rows - got.unbound - got.unproven} ledger row(s) bound to them by signed lineage digests"
          + (f"; {got.unbound} row(s) predate lineage digests (their records are proven, the rows are not)"
             if got.unbound else "")
          + (f"; {got.unproven} row(s) of records pruned by retention have no proof" if got.unproven else ""))
    if trusted is None:
        print("WARNING: no --public-key given: this only shows the report is self-consistent; anyone can sign "
              "their own. Pass the gateway's public key (vendorgate audit public-key).", file=sys.stderr)
    return 0


def public_key(args) -> int:
    import base64

    from gateway.audit.checkpoint import public_key_for
    from gateway.keys import LocalKeyProvider

    keys = LocalKeyProvider.existing(data_dir(args))
    key_id = args.key_id or keys.current_id()
    print(base64.b64encode(public_key_for(keys, key_id)).decode())
    print(f"(Ed25519 checkpoint key, key id {key_id}; give it to auditors for `vendorgate audit verify-proof "
          "--public-key`)", file=sys.stderr)
    return 0


def prune(args) -> int:
    """Retention by hand: the audit log, the ledger and, with --config, spools of sinks no longer configured."""
    from gateway.audit.ledger import DB_NAME
    from gateway.audit.proofs import prune as prune_log
    from gateway.audit.schedule import RetentionResult, ledger_cutoff, prune_spools
    from gateway.audit.settings import sink_name

    config = load_config(args.config).config if args.config else None
    days = args.days if args.days is not None else (config.audit.retention_days if config else None)
    if days is None:
        print("error: give --days N or a config with audit.retention_days", file=sys.stderr)
        return 2
    if days < 0:
        print(f"error: --days must be 0 or more (got {days}): it is how many days of records to keep", file=sys.stderr)
        return 2
    if days == 0 and not args.yes:
        print("--days 0 keeps nothing: every record (up to a newly signed checkpoint) is deleted from the audit "
              "log, with the exposure ledger's rows; the checkpoints are kept. Continue? [y/N] ", end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("\nnothing pruned")
            return 1
    log = open_audit(args)
    audit_result = prune_log(log, days)
    rows = 0
    if (config and config.audit.dsn) or (data_dir(args) / DB_NAME).exists():
        rows = open_ledger(args).prune_sync(ledger_cutoff(log, days))
    spools = prune_spools(data_dir(args) / "spool", days, {sink_name(s) for s in config.sinks}) if config else []
    print(RetentionResult(audit_result, rows, spools).summary(days))
    return 0


def who_saw(args) -> int:
    from gateway.audit.ledger import by_vendor

    hits = open_ledger(args).who_saw(args.value, args.type)
    vendors = by_vendor(hits)
    received = sorted(v for v, s in vendors.items() if s["received"])
    if args.json:
        print(json.dumps({"vendors": vendors, "received_by": received,
                          "exposures": [{k: v for k, v in h.items() if k != "key_id"} for h in hits]},
                         sort_keys=True, indent=2))
        return 0 if received else 1
    if not hits:
        print("no vendor received this value, and no request carrying it was blocked (no ledger row)")
        return 1
    from gateway.cli.table import table

    print(table(["VENDOR", "REQUESTS", "TIMES", "FORMS", "FIRST SEEN (UTC)", "LAST SEEN (UTC)", "CALLERS"],
                [[name, str(v["requests"]), str(v["times"]), _counts(v["forms"]), when(v["first_seen"]),
                  when(v["last_seen"]), ", ".join(v["callers"])] for name, v in vendors.items()],
                right=frozenset({1, 2})))
    if args.requests:
        print()
        print(table(["TIME (UTC)", "VENDOR", "CALLER", "TYPE", "FORM", "REQUEST", "POLICY"],
                    [[when(h["ts"]), h["vendor"], h["caller"], h["entity_type"],
                      h["form"] + (f" {h['surrogate']}" if h["surrogate"] else ""), h["request_id"],
                      (h["policy_digest"] or "-")[:12]] for h in hits]))
    clear = sorted(v for v, s in vendors.items() if "clear" in s["forms"])
    stopped = sorted(v for v, s in vendors.items() if not s["received"])
    print(f"{len(hits)} ledger row(s); received by {len(received)} vendor(s){': ' + ', '.join(received) if received else ''}"
          f"; in clear by {len(clear)}{': ' + ', '.join(clear) if clear else ''}"
          + (f"; only blocked or dropped for {', '.join(stopped)}" if stopped else ""))
    return 0 if received else 1


def vendor(args) -> int:
    from gateway.report import vendor_summary

    start = since(args)
    ledger = open_ledger(args)
    summary = vendor_summary(open_audit(args, read_only=True).records(vendor=args.vendor), ledger.rows(vendor=args.vendor),
                             args.vendor, start)
    if summary is None:
        print(f"vendor {args.vendor!r}: nothing recorded since {start.isoformat(timespec='seconds')}")
        return 1
    if args.json:
        print(json.dumps(summary, sort_keys=True, indent=2))
        return 0
    print(f"vendor {args.vendor} since {start.isoformat(timespec='seconds')}")
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
