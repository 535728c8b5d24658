"""The subject report: everything the gateway knows about one person's values, with proof.

A person is several values (name, email, phone, customer id). The report lists
every ledger row of any of them — which vendor, in which form, when, from which
caller, under which policy digest — plus the erasures (`subject forget`), and
for every audit record those rows belong to an RFC 9162 inclusion bundle
against one signed checkpoint, with all of that record's ledger rows (keyed
fingerprints) so the record's `lineage` digest can be recomputed. An auditor
checks it offline with `vendorgate audit verify-proof FILE --public-key KEY`.
It holds no value: not the ones asked about, not any other.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from gateway.audit.checkpoint import CheckpointError, InclusionBundle, verify_bundle
from gateway.audit.ledger import RequestMeta, by_vendor, lineage_digest

FORMAT = "vendorgate-subject-report/1"
# Forms the gateway cannot take back: the vendor holds the value itself, or something derived from it.
NOT_RECALLABLE = frozenset({"clear", "masked", "hashed"})
_ROW_KEYS = ("entity_type", "fingerprint", "form", "surrogate", "occurrences")


def _row_tuple(row: dict) -> tuple:
    return (row["entity_type"], row["fingerprint"], row["form"], row["surrogate"] or "", row["occurrences"])


def build(values: int, rows: list[dict], lineages: dict[str, list[dict]], bundles: dict[str, InclusionBundle],
          now: datetime | None = None) -> dict:
    """`rows`: the ledger rows of the subject's values; `lineages`: record id -> all its rows;
    `bundles`: record id -> its inclusion bundle (one checkpoint for all)."""
    rows = sorted(rows, key=lambda r: (r["ts"], r["record_id"], r["entity_type"], r["form"]))
    vendors = by_vendor(rows)
    erased = sorted({r["vendor"] for r in rows if r["form"] == "erased"})
    checkpoint = next(iter(bundles.values())).checkpoint.to_dict() if bundles else None
    public_key = base64.b64encode(next(iter(bundles.values())).public_key).decode() if bundles else None
    return {
        "format": FORMAT,
        "generated": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "values_asked": values,
        "entity_types": sorted({r["entity_type"] for r in rows}),
        "received_by": sorted(v for v, s in vendors.items() if s["received"]),
        "in_clear_to": sorted(v for v, s in vendors.items() if "clear" in s["forms"]),
        "not_recallable": {v: sorted(set(s["forms"]) & NOT_RECALLABLE) for v, s in vendors.items()
                           if set(s["forms"]) & NOT_RECALLABLE},
        "erased_at": erased,
        "vendors": vendors,
        "exposures": [{k: v for k, v in r.items()} for r in rows],
        "records": {rid: {"bundle": json.loads(bundles[rid].to_json()), "lineage": [
            {k: row[k] for k in (*_ROW_KEYS, "key_id")} for row in lineages.get(rid, [])]} for rid in sorted(bundles)},
        "checkpoint": checkpoint,
        "public_key": public_key,
        # records of some rows are gone from the log (retention): those rows are listed, not proven
        "unproven": sorted({r["record_id"] for r in rows} - set(bundles)),
    }


@dataclass(frozen=True)
class Verified:
    records: int
    rows: int
    tree_size: int
    checkpoint_time: str
    unbound: int  # rows whose record predates lineage digests: the record is proven, the row is not
    unproven: int = 0  # rows whose record the report says was pruned: neither is proven


def verify(report: dict, trusted_public_key: bytes | None = None) -> Verified:
    """Offline: every bundle against the (trusted) key; every record's rows against its lineage
    digest; every exposure row among its record's rows. Raises CheckpointError on the first fault."""
    if report.get("format") != FORMAT:
        raise CheckpointError(f"not a subject report (expected format {FORMAT!r})")
    proven: dict[str, set[tuple]] = {}
    unbound_records: set[str] = set()
    sizes = set()
    time = ""
    for rid, entry in report.get("records", {}).items():
        bundle = InclusionBundle.from_json(json.dumps(entry["bundle"]))
        verify_bundle(bundle, trusted_public_key)
        record = bundle.record
        if record.get("id") != rid:
            raise CheckpointError(f"the bundle filed under record {rid} proves record {record.get('id')}")
        sizes.add(bundle.tree_size)
        time = bundle.checkpoint.timestamp
        rows = entry.get("lineage", [])
        if not record.get("lineage"):
            unbound_records.add(rid)
            proven[rid] = set()
            continue
        key_ids = {r["key_id"] for r in rows}
        meta = RequestMeta(record["ts"], record["request_id"], rid, record["caller"], record["vendor"],
                           record.get("policy_digest", ""))
        if len(key_ids) != 1 or lineage_digest(meta, key_ids.pop(), (_row_tuple(r) for r in rows)) != record["lineage"]:
            raise CheckpointError(f"the ledger rows given for record {rid} do not match its signed lineage digest")
        proven[rid] = {_row_tuple(r) for r in rows}
    unbound = unproven = 0
    pruned = set(report.get("unproven", [])) - set(proven)
    for row in report.get("exposures", []):
        rid = row["record_id"]
        if rid in pruned:
            unproven += 1
            continue
        if rid not in proven:
            raise CheckpointError(f"exposure at {row['ts']} ({row['vendor']}) names record {rid}, which has no proof")
        if rid in unbound_records:
            unbound += 1
            continue
        if _row_tuple(row) not in proven[rid] or row["vendor"] != report["records"][rid]["bundle"]["record"]["vendor"]:
            raise CheckpointError(f"exposure at {row['ts']} ({row['vendor']}) is not among record {rid}'s signed rows")
    if len(sizes) > 1:
        raise CheckpointError("the bundles are against different checkpoints")
    return Verified(len(proven), len(report.get("exposures", [])), sizes.pop() if sizes else 0, time, unbound,
                    unproven)


CSS = """
body{font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;margin:0;background:#fff}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid #d1d5db;padding-bottom:4px}
.sub{color:#6b7280;margin:0 0 14px}
table{border-collapse:collapse;width:100%;margin-bottom:8px}th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{font-size:11px;color:#6b7280;text-transform:uppercase;letter-spacing:.03em}td.n,th.n{text-align:right}
code{font:11px ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
.clear{color:#b91c1c;font-weight:600}.erased{color:#047857;font-weight:600}.blocked{color:#92400e}
.facts li{margin:2px 0}td.t{white-space:nowrap}
@media print{main{padding:0;max-width:none}h2{break-after:avoid}tr{break-inside:avoid}body{font-size:11px}}
"""


def _form_class(form: str) -> str:
    return {"clear": "clear", "erased": "erased", "blocked": "blocked", "dropped": "blocked"}.get(form, "")


def render_html(report: dict) -> str:
    """Printable, self-contained (no script, no external asset), no values."""
    e = escape
    vendors = report["vendors"]
    facts = [f"{report['values_asked']} value(s) looked up (not shown); found as "
             f"{', '.join(report['entity_types']) or 'nothing'}",
             f"received by {len(report['received_by'])} vendor(s): {', '.join(report['received_by']) or 'none'}",
             f"in clear to: {', '.join(report['in_clear_to']) or 'no vendor'}"]
    if report["not_recallable"]:
        facts.append("the gateway cannot take back what these vendors hold (ask them to delete it): " + "; ".join(
            f"{v} ({', '.join(f)})" for v, f in report["not_recallable"].items()))
    if report["erased_at"]:
        facts.append("erased (vault entries crypto-shredded: their tokens no longer restore) for: "
                     + ", ".join(report["erased_at"]))
    stopped = sorted(v for v, s in vendors.items() if not s["received"])
    if stopped:
        facts.append("stopped (blocked or dropped), never received: " + ", ".join(stopped))
    parts = ["<!doctype html><html lang=en><head><meta charset=utf-8>",
             f"<title>vendorgate subject report {e(report['generated'])}</title><style>{CSS}</style></head><body><main>",
             "<h1>Subject report</h1>",
             f"<p class=sub>generated {e(report['generated'])} &middot; from the exposure ledger (keyed fingerprints) "
             "and the signed audit log &middot; holds no value</p>",
             "<ul class=facts>" + "".join(f"<li>{e(f)}</li>" for f in facts) + "</ul>",
             "<h2>Per vendor</h2>"]
    if vendors:
        parts.append("<table><tr><th>Vendor</th><th class=n>Requests</th><th class=n>Times</th><th>Forms</th>"
                     "<th>First seen</th><th>Last seen</th><th>Callers</th><th>Policies</th></tr>" + "".join(
                         f"<tr><td>{e(name)}</td><td class=n>{v['requests']}</td><td class=n>{v['times']}</td><td>"
                         + ", ".join(f"<span class='{_form_class(f)}'>{e(f)} ×{n}</span>" for f, n in v["forms"].items())
                         + f"</td><td class=t>{e(v['first_seen'][:19].replace('T', ' '))}</td>"
                         f"<td class=t>{e(v['last_seen'][:19].replace('T', ' '))}</td>"
                         f"<td>{e(', '.join(v['callers']))}</td><td><code>"
                         + "<br>".join(e(d[:16]) for d in v["policy_digests"]) + "</code></td></tr>"
                         for name, v in vendors.items()) + "</table>")
    else:
        parts.append("<p>No vendor received, and no request carried, any of these values.</p>")
    parts.append("<h2>Every exposure</h2>")
    if report["exposures"]:
        leaf = {rid: (r["bundle"]["leaf_index"], r["bundle"]["tree_size"]) for rid, r in report["records"].items()}
        parts.append("<table><tr><th>Time (UTC)</th><th>Vendor</th><th>Caller</th><th>Type</th><th>Form</th>"
                     "<th class=n>Times</th><th>Request</th><th>Policy</th><th>Audit record (leaf / size)</th></tr>"
                     + "".join(
                         f"<tr><td class=t>{e(r['ts'][:19].replace('T', ' '))}</td><td>{e(r['vendor'])}</td>"
                         f"<td>{e(r['caller'])}</td>"
                         f"<td>{e(r['entity_type'])}</td><td class='{_form_class(r['form'])}'>{e(r['form'])}</td>"
                         f"<td class=n>{r['occurrences']}</td><td><code>{e(r['request_id'])}</code></td>"
                         f"<td><code>{e((r['policy_digest'] or '-')[:16])}</code></td><td><code>{e(r['record_id'])}"
                         f"</code> " + (f"({leaf[r['record_id']][0]} / {leaf[r['record_id']][1]})"
                                        if r["record_id"] in leaf else "(pruned: no proof)") + "</td></tr>"
                         for r in report["exposures"]) + "</table>")
    cp = report["checkpoint"]
    parts.append("<h2>Proof</h2>")
    if report.get("unproven"):
        parts.append(f"<p>{len(report['unproven'])} audit record(s) of the rows above are no longer in the log "
                     "(pruned by retention): those rows are listed without proof.</p>")
    if cp:
        parts.append(
            f"<p>Every audit record above is a leaf of the gateway's RFC 9162 Merkle tree, proven against the signed "
            f"checkpoint below; each record's signed <code>lineage</code> digest covers its ledger rows. The JSON form "
            f"of this report carries the proofs. Verify offline:</p><p><code>vendorgate audit verify-proof "
            f"subject.json --public-key gateway.pub</code></p><table>"
            f"<tr><th>Log</th><td><code>{e(str(cp['log_id']))}</code></td></tr>"
            f"<tr><th>Tree size</th><td>{cp['tree_size']}</td></tr>"
            f"<tr><th>Root hash</th><td><code>{e(str(cp['root_hash']))}</code></td></tr>"
            f"<tr><th>Signed at</th><td>{e(str(cp['timestamp']))}</td></tr>"
            f"<tr><th>Key id</th><td><code>{e(str(cp['key_id']))}</code></td></tr>"
            f"<tr><th>Public key</th><td><code>{e(report['public_key'])}</code></td></tr></table>")
    else:
        parts.append("<p>No audit record to prove.</p>")
    parts.append("</main></body></html>")
    return "\n".join(parts)
