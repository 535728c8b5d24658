"""The report's figures as JSON and as one long CSV table (easy to pivot in a spreadsheet)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

CSV_COLUMNS = ("vendor", "metric", "key", "date", "value")


def write_json(data: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def csv_rows(data: dict):
    """(vendor, metric, key, date, value): one figure per row."""
    for name, v in data["vendors"].items():
        for metric in ("requests", "forwarded", "blocked", "rejected", "errors", "bytes_sent", "bytes_received"):
            yield name, metric, "", "", v[metric]
        for metric in ("findings", "actions", "blocked_types"):
            for key, n in v[metric].items():
                yield name, metric, key, "", n
        for caller, n in v["top_callers"]:
            yield name, "caller_requests", caller, "", n
        for etype, e in v["exposed"].items():
            yield name, "distinct_clear_values", etype, "", e["clear"]
            yield name, "distinct_tokens", etype, "", e["token"]
        for day, counts in v["daily"].items():
            for etype, n in counts.items():
                yield name, "findings_per_day", etype, day, n
        for day, n in v["clear_daily"].items():
            yield name, "distinct_clear_values_per_day", "", day, n
    for f in data.get("flows", []):
        yield f["vendor"], "flow_values", f"{f['caller']}|{f['entity_type']}|{f['form']}", "", f["values"]
    for name, runs in data.get("canaries", {}).items():
        for run in runs:
            yield name, "canary_leaked_types", "", run["ts"], len(run["leaked"])


def _cell(value):
    """Callers come from a request header: keep a spreadsheet from reading one as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def write_csv(data: dict, path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        w.writerows([_cell(c) for c in row] for row in csv_rows(data))
