"""`vendorgate subject ...`: one person's values — what every vendor received, with proof
(`report`), and the right to be forgotten (`forget`). Values are read from the command
line or a file and never printed, stored or logged: the ledger is searched by keyed
fingerprint and the vault by opening its rows."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from gateway.cli.common import add_store_options, data_dir, open_audit, open_ledger
from gateway.config import load_config

CALLER = "vendorgate-subject-forget"
TOKEN_FORMS = ("tokenized", "encrypted", "fpe", "synthetic", "pseudonym")  # forms the vault can give back


def register(sub) -> None:
    s = sub.add_parser("subject", help="one person's values: who received them (with proofs), and forget them")
    ssub = s.add_subparsers(dest="subject_command", required=True, metavar="SUBCOMMAND")
    a = ssub.add_parser("report", help="every vendor that received any of these values, with inclusion proofs",
                        description=(
                            "Every ledger row of any of the values (vendor, form, time, caller, policy), erasures, and "
                            "per audit record an RFC 9162 inclusion proof against one signed checkpoint. Check the JSON "
                            "offline with `vendorgate audit verify-proof FILE --public-key KEY`. No value is written."))
    _values(a)
    a.add_argument("--json", metavar="FILE", help="write the report with its proofs as JSON here")
    a.add_argument("--html", metavar="FILE", help="write the printable HTML report here")
    add_store_options(a)
    a.set_defaults(func=report)
    a = ssub.add_parser("forget", help="crypto-shred the vault entries of these values; record the erasure",
                        description=(
                            "Overwrite the vault's originals for every token issued for any of the values (restore "
                            "then returns the token, not the original), and write one signed audit record per vendor "
                            "affected. Values a vendor received in clear, masked or hashed cannot be recalled: the "
                            "command lists those vendors."))
    _values(a)
    add_store_options(a)
    a.set_defaults(func=forget)


def _values(parser) -> None:
    parser.add_argument("--value", action="append", default=[], metavar="VALUE",
                        help="a value of the person (repeatable): an email, a phone number, a name, an id")
    parser.add_argument("--values-file", metavar="FILE", help="one value per line (blank lines ignored)")


def read_values(args) -> list[str]:
    values = [v for v in args.value if v.strip()]
    if args.values_file:
        values += [line.strip() for line in Path(args.values_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not values:
        print("error: give --value VALUE (repeatable) or --values-file FILE", file=sys.stderr)
        raise SystemExit(2)
    return list(dict.fromkeys(values))


def _rows(ledger, values: list[str]) -> list[dict]:
    seen, out = set(), []
    for value in values:
        for row in ledger.who_saw(value):
            key = (row["record_id"], row["entity_type"], row["fingerprint"], row["form"])
            if key not in seen:
                seen.add(key)
                out.append(row)
    return out


def report(args) -> int:
    from gateway.audit import AuditLogError
    from gateway.audit.proofs import prove_many
    from gateway.report.subject import build, render_html

    if not (args.json or args.html):
        print("error: give --json FILE and/or --html FILE", file=sys.stderr)
        return 2
    values = read_values(args)
    ledger = open_ledger(args)
    rows = _rows(ledger, values)
    try:
        bundles = prove_many(open_audit(args), [r["record_id"] for r in rows], missing_ok=True)
    except AuditLogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = build(len(values), rows, ledger.for_records(bundles), bundles)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    if args.html:
        Path(args.html).write_text(render_html(data), encoding="utf-8")
        print(f"wrote {args.html}")
    print(f"{len(values)} value(s): {len(rows)} ledger row(s) in {len(bundles)} audit record(s); received by "
          f"{len(data['received_by'])} vendor(s){': ' + ', '.join(data['received_by']) if data['received_by'] else ''}"
          f"; in clear to {', '.join(data['in_clear_to']) or 'none'}"
          + (f"; erased at {', '.join(data['erased_at'])}" if data["erased_at"] else "")
          + (f"; {len(data['unproven'])} record(s) no longer in the log (pruned): their rows have no proof"
             if data["unproven"] else ""))
    return 0


def forget(args) -> int:
    return asyncio.run(_forget(args, read_values(args)))


async def _forget(args, values: list[str]) -> int:
    from gateway.audit.ledger import Exposure, RequestMeta, normalise
    from gateway.keys import LocalKeyProvider
    from gateway.reversible.vault import open_vault

    where = data_dir(args)
    config = load_config(args.config).config if args.config else None
    keys = LocalKeyProvider.existing(where)
    ledger = open_ledger(args)
    rows = _rows(ledger, values)
    wanted: dict[str, dict[str, int]] = {}  # entity type -> normalised value -> index of the value

    def matches(entity_type: str, original: str) -> int | None:
        table = wanted.get(entity_type)
        if table is None:
            table = wanted[entity_type] = {normalise(entity_type, v): i for i, v in enumerate(values)}
        return table.get(normalise(entity_type, original))

    vault_cfg = config.vault if config is not None else None
    vault = await open_vault(where, vault_cfg.dsn if vault_cfg else None, keys,
                             vault_cfg.table if vault_cfg else "vendorgate_tokens")
    try:
        entries = await vault.entries_matching(matches)  # (vendor, surrogate, entity type, value index)
        # encrypt tokens have no vault row: the ledger names them
        index = {row["fingerprint"]: i for i, v in enumerate(values) for row in ledger.who_saw(v)}
        entries += [(r["vendor"], r["surrogate"], r["entity_type"], index[r["fingerprint"]]) for r in rows
                    if r["form"] in TOKEN_FORMS and r["surrogate"]]
        entries = sorted({(v, s.lower(), t, i) for v, s, t, i in entries})
        shredded = await vault.shred((v, s, t) for v, s, t, _ in entries)
    finally:
        await vault.close()
    log = open_audit(args)
    records = []
    for vendor in sorted({e[0] for e in entries}):
        mine = [e for e in entries if e[0] == vendor]
        record = _erasure_record(vendor, mine)
        meta = RequestMeta(record.ts, record.request_id, record.id, CALLER, vendor)
        lineage = ledger.lineage(meta, [Exposure(t, "erased", values[i]) for t, i in sorted({(t, i) for _, _, t, i in mine})])
        record.lineage = lineage.digest
        await log.append(record)
        ledger.add_sync(lineage)
        records.append(record)
    await log.close()
    kept = sorted({r["vendor"] for r in rows if r["form"] in ("clear", "masked", "hashed")})
    print(f"{len(values)} value(s): shredded {shredded} vault entr{'y' if shredded == 1 else 'ies'}"
          + (" (" + ", ".join(f"{r.vendor} {sum(r.findings.values())}" for r in records) + ")" if records else "")
          + f"; {len(records)} erasure record(s) in the audit log"
          + (f": {', '.join(r.id for r in records)}" if records else ""))
    if kept:
        print(f"not recallable by the gateway (sent in clear, masked or hashed): {', '.join(kept)}; ask those "
              "vendors to delete what they hold")
    return 0


def _erasure_record(vendor: str, entries: list[tuple]):
    from gateway.audit import AuditRecord

    started = time.perf_counter()
    findings: dict[str, int] = {}
    for _, _, entity_type, _ in entries:
        findings[entity_type] = findings.get(entity_type, 0) + 1
    return AuditRecord(
        id=uuid.uuid4().hex, ts=datetime.now(UTC).isoformat(timespec="milliseconds"), request_id=uuid.uuid4().hex,
        caller=CALLER, vendor=vendor, method="FORGET", path="/-/subject/forget", decision="erased", status=200,
        findings=findings, actions={"shred": len(entries)},
        duration_ms=round((time.perf_counter() - started) * 1000, 2))
