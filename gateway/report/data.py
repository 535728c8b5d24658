"""The figures behind `audit vendor` and `report`, from audit records and ledger rows.

Audit records give requests, bytes, blocks, actions, findings, callers and the
canary history per route; the exposure ledger gives distinct values each vendor
received, in clear or as a token, per day, and the flows (caller → vendor by
entity type and form). Neither holds a value, so neither does the report.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

_SPAN = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TOP_CALLERS = 10
SURROGATE_FORMS = frozenset({"hashed", "tokenized", "encrypted", "fpe", "synthetic", "pseudonym"})


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`30d`, `12h`, `2w`, `90m`, or an ISO date/time (UTC when no zone is given)."""
    now = now or datetime.now(UTC)
    m = _SPAN.match(text.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: expected e.g. 30d, 12h, 2w or an ISO date like 2025-01-31") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _when(ts: str) -> datetime:
    when = datetime.fromisoformat(ts)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _vendor_figures() -> dict:
    return {"requests": 0, "forwarded": 0, "blocked": 0, "rejected": 0, "errors": 0, "bytes_sent": 0,
            "bytes_received": 0, "findings": Counter(), "actions": Counter(), "blocked_types": Counter(),
            "callers": Counter(), "daily": defaultdict(Counter), "exposed": {}, "clear_daily": {}}


def collect(records: Iterable[dict], ledger_rows: Iterable[dict], since: datetime, until: datetime | None = None) -> dict:
    """Per-vendor figures for records and ledger rows in [since, until]."""
    until = until or datetime.now(UTC)
    vendors: dict[str, dict] = defaultdict(_vendor_figures)
    canaries: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if not r.get("vendor") or not since <= _when(r["ts"]) <= until:
            continue
        if r.get("decision") == "canary":  # not a request: proof that protection was live
            c = r.get("canary", {})
            canaries[r["vendor"]].append({"ts": r["ts"], "ok": not c.get("leaked") and r.get("status") == 200,
                                          **{k: c.get(k, []) for k in ("sent", "protected", "allowed", "leaked")}})
            continue
        if r.get("decision") == "erased":  # a `subject forget`, not a request
            continue
        v = vendors[r["vendor"]]
        v["requests"] += 1
        decision = r.get("decision", "error")
        v[{"forwarded": "forwarded", "blocked": "blocked", "rejected": "rejected"}.get(decision, "errors")] += 1
        v["bytes_sent"] += r.get("bytes_sent", 0)
        v["bytes_received"] += r.get("bytes_received", 0)
        v["callers"][r.get("caller", "")] += 1
        v["blocked_types"].update(r.get("blocked_types", []))
        if decision == "forwarded":
            v["findings"].update(r.get("findings", {}))
            v["actions"].update(r.get("actions", {}))
            v["daily"][_when(r["ts"]).date().isoformat()].update(r.get("findings", {}))
    distinct: dict[str, dict[str, dict[str, set]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    occurrences: dict[str, Counter] = defaultdict(Counter)
    flows: Counter = Counter()
    clear_daily: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for row in ledger_rows:
        if not since <= _when(row["ts"]) <= until:
            continue
        if row["form"] != "erased":
            flows[(row["caller"], row["vendor"], row["entity_type"], row["form"])] += row["occurrences"]
        if row["form"] == "clear":
            clear_daily[row["vendor"]][_when(row["ts"]).date().isoformat()].add(row["fingerprint"])
        if row["form"] not in SURROGATE_FORMS and row["form"] != "clear":
            continue
        kind = "clear" if row["form"] == "clear" else "token"
        distinct[row["vendor"]][row["entity_type"]][kind].add(row["fingerprint"])
        occurrences[row["vendor"]][row["entity_type"]] += row["occurrences"]
        vendors[row["vendor"]]  # a vendor known only from the ledger still gets a section
    for name, v in vendors.items():
        v["exposed"] = {t: {"clear": len(k["clear"]), "token": len(k["token"]), "occurrences": occurrences[name][t]}
                        for t, k in sorted(distinct[name].items())}
        v["clear_daily"] = {day: len(fps) for day, fps in sorted(clear_daily[name].items())}
    totals = _totals(vendors)
    totals["canary_runs"] = sum(len(runs) for runs in canaries.values())
    totals["canary_leaks"] = sum(1 for runs in canaries.values() for run in runs if not run["ok"])
    return {
        "since": since.isoformat(timespec="seconds"),
        "until": until.isoformat(timespec="seconds"),
        "days": _days(since, until),
        "totals": totals,
        "vendors": {name: _plain(v) for name, v in sorted(vendors.items())},
        # caller -> vendor by entity type and form: the values (occurrences) each path carried
        "flows": [{"caller": c, "vendor": v, "entity_type": t, "form": f, "values": n}
                  for (c, v, t, f), n in sorted(flows.items())],
        "canaries": {name: sorted(runs, key=lambda run: run["ts"]) for name, runs in sorted(canaries.items())},
    }


def _days(since: datetime, until: datetime) -> list[str]:
    day, last, out = since.date(), until.date(), []
    while day <= last:
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def _totals(vendors: dict) -> dict:
    keys = ("requests", "forwarded", "blocked", "rejected", "errors", "bytes_sent")
    totals = {k: sum(v[k] for v in vendors.values()) for k in keys}
    totals["vendors"] = len(vendors)
    totals["distinct_clear_values"] = sum(e["clear"] for v in vendors.values() for e in v["exposed"].values())
    totals["distinct_tokens"] = sum(e["token"] for v in vendors.values() for e in v["exposed"].values())
    return totals


def _plain(v: dict) -> dict:
    """JSON-ready: counters sorted by size, callers cut to the top ones."""
    return {
        **{k: v[k] for k in ("requests", "forwarded", "blocked", "rejected", "errors", "bytes_sent", "bytes_received")},
        "findings": dict(v["findings"].most_common()),
        "actions": dict(v["actions"].most_common()),
        "blocked_types": dict(v["blocked_types"].most_common()),
        "top_callers": [[c, n] for c, n in v["callers"].most_common(TOP_CALLERS)],
        "exposed": v["exposed"],
        "daily": {day: dict(c.most_common()) for day, c in sorted(v["daily"].items())},
        "clear_daily": v["clear_daily"],  # distinct values received in clear, per day
    }


def vendor_summary(records: list[dict], ledger_rows: list[dict], vendor: str, since: datetime) -> dict | None:
    return collect([r for r in records if r.get("vendor") == vendor],
                   [r for r in ledger_rows if r["vendor"] == vendor], since)["vendors"].get(vendor)
