"""The exposure report as one self-contained HTML page: inline CSS, charts drawn
here as inline SVG, no script, no external asset (it must open on an air-gapped
auditor's laptop and be archivable as one file)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from html import escape

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
           "#9333ea", "#ea580c", "#0d9488", "#4f46e5"]
OTHER = "#9ca3af"
MAX_BARS = 62
MAX_PATHS = 20  # rows of the flow table; the JSON and CSV hold every path

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#f3f4f6;margin:0}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:0 0 12px}h3{font-size:14px;margin:16px 0 6px;color:#374151}
.sub{color:#6b7280;margin:0 0 20px}
.tiles{display:grid;grid-template-columns:repeat(7,1fr);gap:12px;margin-bottom:20px}
.tile{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px #0001}
.tile b{display:block;font-size:24px}.tile span{color:#6b7280;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.tile.warn b{color:#b91c1c}
.card{background:#fff;border-radius:8px;padding:18px 20px;margin-bottom:20px;box-shadow:0 1px 2px #0001}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e5e7eb}td{white-space:nowrap}
th{font-size:12px;color:#6b7280;text-transform:uppercase;letter-spacing:.03em}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.clear{color:#b91c1c;font-weight:600}.blocked{color:#92400e;font-weight:600}
.grid{display:grid;grid-template-columns:2fr 1fr;gap:20px}
.legend span{display:inline-block;margin:0 12px 4px 0;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
.facts{color:#374151;margin:0 0 8px}.none{color:#6b7280;font-style:italic}
"""


def render_html(data: dict) -> str:
    colours = _colours(data)
    t = data["totals"]
    since, until = data["since"][:10], data["until"][:10]
    tiles = [("Vendors", t["vendors"], False), ("Requests", t["requests"], False),
             ("Blocked", t["blocked"], t["blocked"] > 0),
             ("Values sent in clear", t["distinct_clear_values"], t["distinct_clear_values"] > 0),
             ("Tokens issued", t["distinct_tokens"], False), ("Data sent", _bytes(t["bytes_sent"]), False),
             ("Canary runs that leaked", t.get("canary_leaks", 0), t.get("canary_leaks", 0) > 0)]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>vendorgate exposure report {since} to {until}</title><style>{CSS}</style></head><body><main>",
        "<h1>Vendor exposure report</h1>",
        f"<p class=sub>{since} to {until} ({len(data['days'])} days) &middot; generated "
        f"{datetime.now(UTC).isoformat(timespec='minutes')} &middot; counts only: the report holds no values</p>",
        "<div class=tiles>" + "".join(
            f"<div class='tile{' warn' if warn else ''}'><b>{_n(v)}</b><span>{escape(label)}</span></div>"
            for label, v, warn in tiles) + "</div>",
        _overview(data),
        _flow_card(data, colours),
        _canary_card(data),
    ]
    for name, v in data["vendors"].items():
        parts.append(_vendor_card(name, v, data["days"], colours))
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _overview(data: dict) -> str:
    if not data["vendors"]:
        return "<section class=card><h2>All vendors</h2><p class=none>No traffic in this window.</p></section>"
    rows = []
    for name, v in data["vendors"].items():
        clear = sum(e["clear"] for e in v["exposed"].values())
        tokens = sum(e["token"] for e in v["exposed"].values())
        top = next(iter(v["findings"]), "-")
        rows.append(
            f"<tr><td><a href='#v-{escape(name)}'>{escape(name)}</a></td><td class=n>{_n(v['requests'])}</td>"
            f"<td class=n>{_n(v['forwarded'])}</td><td class='n{' blocked' if v['blocked'] else ''}'>{_n(v['blocked'])}</td>"
            f"<td class='n{' clear' if clear else ''}'>{_n(clear)}</td><td class=n>{_n(tokens)}</td>"
            f"<td>{escape(top)}</td><td class=n>{_bytes(v['bytes_sent'])}</td></tr>")
    return ("<section class=card><h2>All vendors</h2><table><tr><th>Vendor</th><th class=n>Requests</th>"
            "<th class=n>Forwarded</th><th class=n>Blocked</th><th class=n>Values in clear</th><th class=n>Tokens</th>"
            "<th>Most found type</th><th class=n>Data sent</th></tr>" + "".join(rows) + "</table></section>")


def _vendor_card(name: str, v: dict, days: list[str], colours: dict) -> str:
    clear = sum(e["clear"] for e in v["exposed"].values())
    facts = (f"{_n(v['requests'])} requests: {_n(v['forwarded'])} forwarded, {_n(v['blocked'])} blocked, "
             f"{_n(v['rejected'])} rejected, {_n(v['errors'])} errors &middot; {_bytes(v['bytes_sent'])} sent")
    types = sorted(set(v["findings"]) | set(v["exposed"]) | set(v["blocked_types"]),
                   key=lambda t: -v["findings"].get(t, 0))
    type_rows = "".join(
        f"<tr><td><i style='display:inline-block;width:10px;height:10px;border-radius:2px;background:{colours.get(t, OTHER)}'></i> "
        f"{escape(t)}</td><td class=n>{_n(v['findings'].get(t, 0))}</td>"
        f"<td class='n{' clear' if v['exposed'].get(t, {}).get('clear') else ''}'>{_n(v['exposed'].get(t, {}).get('clear', 0))}</td>"
        f"<td class=n>{_n(v['exposed'].get(t, {}).get('token', 0))}</td>"
        f"<td class='n{' blocked' if v['blocked_types'].get(t) else ''}'>{_n(v['blocked_types'].get(t, 0))}</td></tr>"
        for t in types)
    types_table = ("<table><tr><th>Entity type</th><th class=n>Found in forwarded</th><th class=n>Distinct in clear</th>"
                   "<th class=n>Distinct as token</th><th class=n>Requests blocked</th></tr>" + type_rows + "</table>"
                   if types else "<p class=none>No sensitive values found.</p>")
    callers = v["top_callers"]
    top = max((n for _, n in callers), default=1)
    caller_rows = "".join(
        f"<tr><td>{escape(c)}</td><td class=n>{_n(n)}</td><td style='width:45%'>"
        f"<svg width='100%' height='10' viewBox='0 0 100 10' preserveAspectRatio='none'>"
        f"<rect width='{100 * n / top:.1f}' height='10' rx='2' fill='#64748b'/></svg></td></tr>" for c, n in callers)
    return (
        f"<section class=card id='v-{escape(name)}'><h2>{escape(name)}</h2><p class=facts>{facts}"
        + (f" &middot; <span class=clear>{_n(clear)} distinct value(s) received in clear</span>" if clear else "")
        + "</p><div class=grid><div><h3>Sensitive values in forwarded requests, per day, by entity type</h3>"
        + _stacked_bars(v["daily"], days, colours) + _legend(v["daily"], colours)
        + "</div><div><h3>Actions taken</h3>" + _hbars(v["actions"], "#334155") + "</div></div>"
        + "<div class=grid><div><h3>Distinct values received in clear, per day</h3>"
        + _clear_trend(v["clear_daily"], days) + "</div><div></div></div>"
        + "<div class=grid><div><h3>By entity type</h3>" + types_table + "</div>"
        + "<div><h3>Top callers (requests)</h3><table>" + caller_rows + "</table></div></div></section>")


# The order forms are stacked in the flow view, and their colours: in clear first and red.
FORM_ORDER = ("clear", "masked", "hashed", "redacted", "tokenized", "encrypted", "fpe", "synthetic", "pseudonym",
              "dropped", "blocked")
FORM_COLOURS = {"clear": "#b91c1c", "masked": "#0891b2", "hashed": "#0d9488", "redacted": "#16a34a",
                "tokenized": "#2563eb", "encrypted": "#4f46e5", "fpe": "#7c3aed", "synthetic": "#9333ea",
                "pseudonym": "#c026d3", "dropped": "#a16207", "blocked": "#92400e"}


def _flow_card(data: dict, colours: dict) -> str:
    """Caller → vendor → form, as an SVG Sankey; the vendor → form bands split by entity type."""
    flows = data.get("flows", [])
    head = ("<section class=card><h2>Where values went</h2><p class=facts>Every detected value, from the caller "
            "that sent it to the vendor and the form it left in (from the exposure ledger; band width = values). "
            "Blocked and dropped values never reached the vendor.</p>")
    if not flows:
        return head + "<p class=none>No detected value in this window.</p></section>"
    total: dict[tuple[int, str], int] = {}
    for f in flows:
        for col, name in ((0, f["caller"]), (1, f["vendor"]), (2, f["form"])):
            total[(col, name)] = total.get((col, name), 0) + f["values"]
    columns = [sorted((n for c, n in total if c == col), key=lambda n: (-total[(col, n)], n)) for col in (0, 1)]
    columns.append(sorted((n for c, n in total if c == 2),
                          key=lambda n: FORM_ORDER.index(n) if n in FORM_ORDER else len(FORM_ORDER)))
    width, height, left, right, node_w, gap = 1080, 380, 170, 170, 14, 10
    grand = sum(f["values"] for f in flows)
    scale = min((height - gap * (len(col) - 1)) / grand for col in columns)
    xs = [left, (left + width - right) / 2, width - right]
    top: dict[tuple[int, str], float] = {}
    labels: list[str] = []  # drawn last, over the bands
    out = [f"<svg viewBox='0 0 {width} {height}' width='100%' role='img' aria-label='flows from callers to vendors "
           f"by form'>"]
    for col, names in enumerate(columns):
        used = sum(total[(col, n)] for n in names) * scale + gap * (len(names) - 1)
        y = (height - used) / 2
        for n in names:
            h = max(1.0, total[(col, n)] * scale)
            top[(col, n)] = y
            fill = FORM_COLOURS.get(n, OTHER) if col == 2 else "#475569"
            out.append(f"<rect x='{xs[col]:.1f}' y='{y:.1f}' width='{node_w}' height='{h:.1f}' fill='{fill}'>"
                       f"<title>{escape(n)}: {total[(col, n)]:,} value(s)</title></rect>")
            anchor, tx = ("end", xs[col] - 6) if col == 0 else ("start", xs[col] + node_w + 6)
            labels.append(f"<text x='{tx:.1f}' y='{y + h / 2 + 4:.1f}' font-size='12' text-anchor='{anchor}' "
                          f"fill='#111827' stroke='#fff' stroke-width='3' paint-order='stroke'>{escape(n)} "
                          f"({total[(col, n)]:,})</text>")
            y += h + gap
    out_edge, in_edge = dict(top), dict(top)

    def band(col: int, a: str, b: str, n: int, colour: str, label: str) -> None:
        w = n * scale
        y0, y1 = out_edge[(col, a)] + w / 2, in_edge[(col + 1, b)] + w / 2
        out_edge[(col, a)] += w
        in_edge[(col + 1, b)] += w
        x0, x1 = xs[col] + node_w, xs[col + 1]
        mid = (x0 + x1) / 2
        out.append(f"<path d='M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f}' fill='none' "
                   f"stroke='{colour}' stroke-opacity='.42' stroke-width='{max(1.0, w):.1f}'><title>{escape(label)}: "
                   f"{n:,} value(s)</title></path>")

    pairs: dict[tuple[str, str], int] = {}
    for f in flows:
        pairs[(f["caller"], f["vendor"])] = pairs.get((f["caller"], f["vendor"]), 0) + f["values"]
    for (c, v), n in sorted(pairs.items(), key=lambda kv: (columns[0].index(kv[0][0]), columns[1].index(kv[0][1]))):
        band(0, c, v, n, "#64748b", f"{c} → {v}")
    by_type: dict[tuple[str, str, str], int] = {}
    for f in flows:
        k = (f["vendor"], f["form"], f["entity_type"])
        by_type[k] = by_type.get(k, 0) + f["values"]
    for (v, form, t), n in sorted(by_type.items(), key=lambda kv: (columns[1].index(kv[0][0]),
                                                                   columns[2].index(kv[0][1]), kv[0][2])):
        band(1, v, form, n, colours.get(t, OTHER), f"{v} → {form}: {t}")
    out += labels
    out.append("</svg>")
    types = sorted({f["entity_type"] for f in flows})
    table = ("<table><tr><th>Caller</th><th>Vendor</th><th>Entity type</th><th>Form</th><th class=n>Values</th></tr>"
             + "".join(f"<tr><td>{escape(f['caller'])}</td><td>{escape(f['vendor'])}</td><td>{escape(f['entity_type'])}"
                       f"</td><td class='{'clear' if f['form'] == 'clear' else 'blocked' if f['form'] in ('blocked', 'dropped') else ''}'>"
                       f"{escape(f['form'])}</td><td class=n>{f['values']:,}</td></tr>"
                       for f in sorted(flows, key=lambda f: (-f["values"], f["caller"], f["vendor"]))[:MAX_PATHS])
             + "</table>" + (f"<p class=none>{len(flows) - MAX_PATHS:,} smaller path(s) in the JSON and CSV.</p>"
                             if len(flows) > MAX_PATHS else ""))
    return (head + "".join(out) + "<div class=legend>" + "".join(
        f"<span><i style='background:{colours.get(t, OTHER)}'></i>{escape(t)}</span>" for t in types)
        + "</div><h3>Largest paths</h3>" + table + "</section>")


def _canary_card(data: dict) -> str:
    """Per route: every canary run in the window as a square (green: all protected, red: leaked)."""
    canaries = data.get("canaries", {})
    head = ("<section class=card><h2>Canaries: protection proven live</h2><p class=facts>Synthetic values of every "
            "type sent through each route's real stages (never to the vendor); each run is a signed audit record.</p>")
    if not canaries:
        return head + "<p class=none>No canary ran in this window (configure <code>canary:</code> or run "                       "<code>vendorgate canary</code>).</p></section>"
    rows = []
    for name, runs in canaries.items():
        last = runs[-1]
        shown = runs[-60:]
        strip = (f"<svg viewBox='0 0 {len(shown) * 12} 12' width='{len(shown) * 12}' height='12'>" + "".join(
            f"<rect x='{i * 12}' width='10' height='12' rx='2' fill='{'#16a34a' if r['ok'] else '#b91c1c'}'>"
            f"<title>{escape(r['ts'][:19])}: "
            + (escape('leaked ' + ', '.join(r['leaked'])) if r["leaked"] else f"{len(r['protected'])} protected")
            + "</title></rect>" for i, r in enumerate(shown)) + "</svg>")
        leaks = sum(1 for r in runs if not r["ok"])
        state = ("<span class=clear>LEAKED: " + escape(", ".join(last["leaked"])) + "</span>" if not last["ok"]
                 else f"ok: {len(last['protected'])} of {len(last['sent'])} types protected"
                 + (f", in clear by policy: {escape(', '.join(last['allowed']))}" if last["allowed"] else ""))
        rows.append(f"<tr><td>{escape(name)}</td><td class=n>{len(runs)}</td><td class='n{' clear' if leaks else ''}'>"
                    f"{leaks}</td><td>{escape(last['ts'][:19])}</td><td>{state}</td><td>{strip}</td></tr>")
    return (head + "<table><tr><th>Route</th><th class=n>Runs</th><th class=n>Leaked</th><th>Last run (UTC)</th>"
            "<th>Last result</th><th>History (oldest left)</th></tr>" + "".join(rows) + "</table></section>")


def _clear_trend(clear_daily: dict, days: list[str]) -> str:
    if not any(clear_daily.values()):
        return "<p class=none>No value received in clear in this window.</p>"
    return _stacked_bars({d: {"in clear": n} for d, n in clear_daily.items()}, days, {"in clear": "#b91c1c"})


def _buckets(days: list[str]) -> list[tuple[str, list[str]]]:
    """One bar per day, or per week when the window is long."""
    if len(days) <= MAX_BARS:
        return [(d, [d]) for d in days]
    weeks: dict[str, list[str]] = {}
    for d in days:
        y, w, _ = date.fromisoformat(d).isocalendar()
        weeks.setdefault(f"{y}-W{w:02d}", []).append(d)
    return list(weeks.items())


def _stacked_bars(daily: dict, days: list[str], colours: dict) -> str:
    width, height, left, bottom, top_pad = 720, 230, 44, 26, 10
    buckets = _buckets(days)
    totals = [{t: sum(daily.get(d, {}).get(t, 0) for d in ds) for t in colours} for _, ds in buckets]
    peak = max((sum(b.values()) for b in totals), default=0)
    if peak == 0:
        return "<p class=none>Nothing sensitive was forwarded in this window.</p>"
    scale = _nice(peak)
    plot_w, plot_h = width - left - 8, height - bottom - top_pad
    slot = plot_w / len(buckets)
    bar_w = max(1.0, slot * 0.78)
    out = [f"<svg viewBox='0 0 {width} {height}' width='100%' role='img' aria-label='values per day by entity type'>"]
    for i in range(5):
        value = scale * i / 4
        y = top_pad + plot_h - plot_h * i / 4
        out.append(f"<line x1='{left}' x2='{width - 8}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e5e7eb'/>"
                   f"<text x='{left - 6}' y='{y + 4:.1f}' font-size='11' text-anchor='end' fill='#6b7280'>{value:,g}</text>")
    label_every = max(1, len(buckets) // 8)
    for i, ((label, _), counts) in enumerate(zip(buckets, totals)):
        x = left + i * slot + (slot - bar_w) / 2
        y = top_pad + plot_h
        for t, n in counts.items():
            if not n:
                continue
            h = plot_h * n / scale
            y -= h
            out.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{bar_w:.1f}' height='{h:.1f}' fill='{colours[t]}'>"
                       f"<title>{escape(label)} {escape(t)}: {n}</title></rect>")
        if i % label_every == 0:
            out.append(f"<text x='{x + bar_w / 2:.1f}' y='{height - 8}' font-size='11' text-anchor='middle' "
                       f"fill='#6b7280'>{escape(label[5:] if len(label) == 10 else label)}</text>")
    out.append("</svg>")
    return "".join(out)


def _legend(daily: dict, colours: dict) -> str:
    present = sorted({t for counts in daily.values() for t in counts})
    return "<div class=legend>" + "".join(
        f"<span><i style='background:{colours.get(t, OTHER)}'></i>{escape(t)}</span>" for t in present) + "</div>"


def _hbars(counts: dict, colour: str) -> str:
    if not counts:
        return "<p class=none>None.</p>"
    top = max(counts.values())
    row_h, width, label_w = 24, 360, 90
    height = row_h * len(counts)
    out = [f"<svg viewBox='0 0 {width} {height}' width='100%' role='img' aria-label='actions taken'>"]
    for i, (name, n) in enumerate(counts.items()):
        y = i * row_h
        w = (width - label_w - 60) * n / top
        out.append(f"<text x='{label_w - 6}' y='{y + 16}' font-size='12' text-anchor='end' fill='#374151'>{escape(name)}</text>"
                   f"<rect x='{label_w}' y='{y + 4}' width='{w:.1f}' height='{row_h - 8}' rx='2' "
                   f"fill='{'#b91c1c' if name == 'allow' else colour}'/>"
                   f"<text x='{label_w + w + 6:.1f}' y='{y + 16}' font-size='12' fill='#111827'>{_n(n)}</text>")
    out.append("</svg>")
    return "".join(out)


def _colours(data: dict) -> dict[str, str]:
    seen: dict[str, int] = {}
    for v in data["vendors"].values():
        for t, n in v["findings"].items():
            seen[t] = seen.get(t, 0) + n
    ordered = sorted(seen, key=lambda t: (-seen[t], t))
    return {t: PALETTE[i] if i < len(PALETTE) else OTHER for i, t in enumerate(ordered)}


def _nice(peak: float) -> float:
    """The smallest 2/4/8/10 x 10^k at or above peak (at least 4), so the quarter ticks are round numbers."""
    step = 1.0
    while step * 10 <= peak:
        step *= 10
    for m in (2, 4, 8, 10):
        if step * m >= peak:
            return max(step * m, 4)
    return peak


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
