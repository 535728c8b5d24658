"""`vendorgate report`: the exposure report as HTML, JSON and/or CSV."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.cli.common import SINCE_HELP, add_store_options, open_audit, open_ledger, since
from gateway.cli.progress import progress


def register(sub) -> None:
    s = sub.add_parser("report", help="exposure report as HTML, JSON and/or CSV", description=(
        "A self-contained exposure report per vendor: exposure over time by entity type, actions, blocks, "
        "top callers."))
    s.add_argument("--since", default="30d", help=SINCE_HELP)
    s.add_argument("--html", metavar="FILE", help="write the HTML report here")
    s.add_argument("--json", metavar="FILE", help="write the figures as JSON here")
    s.add_argument("--csv", metavar="FILE", help="write the figures as CSV here")
    add_store_options(s)
    s.set_defaults(func=report)


def report(args) -> int:
    from gateway.report import collect
    from gateway.report.export import write_csv, write_json
    from gateway.report.html import render_html

    if not (args.html or args.json or args.csv):
        print("error: give at least one of --html, --json, --csv", file=sys.stderr)
        return 2
    start = since(args)
    with progress("reading the audit log and the ledger"):
        records = open_audit(args, read_only=True).records()
        rows = open_ledger(args).rows(since=start.isoformat())
    with progress("counting records and ledger rows", total=len(records) + len(rows)) as bar:
        data = collect(bar.track(records), bar.track(rows), start)
    outputs = [(path, write) for path, write in (
        (args.html, lambda p: Path(p).write_text(render_html(data), encoding="utf-8")),
        (args.json, lambda p: write_json(data, p)), (args.csv, lambda p: write_csv(data, p))) if path]
    with progress("writing", total=len(outputs)) as bar:
        for path, write in outputs:
            write(path)
            bar.advance()
            print(f"wrote {path}")
    t = data["totals"]
    print(f"{t['vendors']} vendor(s), {t['requests']} request(s), {t['blocked']} blocked, "
          f"{t['distinct_clear_values']} distinct value(s) sent in clear since {data['since']}")
    return 0
