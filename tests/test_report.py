"""The vendor summary and the exposure report, from a log written by real traffic
(the `traffic` fixture in conftest.py)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from support import JANE_CARD, JANE_EMAIL, JANE_SSN

from gateway.app.canary import run_canaries
from gateway.audit import AuditLog
from gateway.cli.main import main
from gateway.config import load_config
from gateway.keys import LocalKeyProvider
from gateway.pipeline.protect import Services
from gateway.report import collect, parse_since


def test_since_accepts_spans_and_dates():
    now = datetime(2025, 3, 31, 12, tzinfo=UTC)
    assert parse_since("30d", now) == now - timedelta(days=30)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2w", now) == now - timedelta(weeks=2)
    assert parse_since("2025-03-01", now) == datetime(2025, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="30d"):
        parse_since("last month", now)


def test_records_outside_the_window_are_not_counted():
    old = {"vendor": "alpha", "ts": "2020-01-01T00:00:00+00:00", "decision": "forwarded", "caller": "x"}
    new = dict(old, ts=datetime.now(UTC).isoformat())
    data = collect([old, new], [], parse_since("30d"))
    assert data["vendors"]["alpha"]["requests"] == 1


async def test_vendor_summary_figures(traffic, capsys):
    assert main(["audit", "vendor", "alpha", "--since", "1d", "--json", "--data-dir", str(traffic.data_dir)]) == 0
    alpha = json.loads(capsys.readouterr().out)
    assert (alpha["requests"], alpha["forwarded"], alpha["blocked"]) == (3, 2, 1)
    assert alpha["blocked_types"] == {"US_SSN": 1}
    assert alpha["exposed"] == {"CREDIT_CARD": {"clear": 1, "token": 0, "occurrences": 1},
                                "EMAIL_ADDRESS": {"clear": 1, "token": 0, "occurrences": 2}}
    assert dict(alpha["top_callers"]) == {"billing-svc": 2, "support-bot": 1}
    assert alpha["bytes_sent"] == len(f"mail {JANE_EMAIL} card {JANE_CARD}") + len(f"again {JANE_EMAIL.lower()}")
    assert alpha["actions"] == {"allow": 3}

    assert main(["audit", "vendor", "beta", "--data-dir", str(traffic.data_dir)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"EMAIL_ADDRESS\s+1\s+0\s+1", text)  # found once, 0 in clear, 1 token
    assert "requests   1  (forwarded 1, blocked 0" in text
    assert main(["audit", "vendor", "nobody", "--data-dir", str(traffic.data_dir)]) == 1


async def test_report_html_json_csv_hold_the_figures_and_no_external_asset(traffic, tmp_path, capsys):
    html, js, cs = tmp_path / "r.html", tmp_path / "r.json", tmp_path / "r.csv"
    assert main(["report", "--since", "7d", "--data-dir", str(traffic.data_dir),
                 "--html", str(html), "--json", str(js), "--csv", str(cs)]) == 0
    assert "2 vendor(s), 4 request(s), 1 blocked, 2 distinct value(s) sent in clear" in capsys.readouterr().out
    page = html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert "<svg" in page and "id='v-alpha'" in page and "id='v-beta'" in page
    assert "2 distinct value(s) received in clear" in page  # alpha: the email and the card
    assert "3 requests: 2 forwarded, 1 blocked" in page
    data = json.loads(js.read_text())
    assert data["totals"]["requests"] == 4 and data["vendors"]["beta"]["exposed"]["EMAIL_ADDRESS"]["token"] == 1
    rows = list(csv.DictReader(cs.open()))
    assert {"vendor": "alpha", "metric": "blocked", "key": "", "date": "", "value": "1"} in rows
    assert any(r["metric"] == "findings_per_day" and r["key"] == "EMAIL_ADDRESS" and r["vendor"] == "beta" for r in rows)
    for out in (page, js.read_text(), cs.read_text()):
        for value in (JANE_EMAIL, JANE_EMAIL.lower(), JANE_CARD, JANE_SSN, "4111111111111111"):
            assert value not in out


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium package is not installed")
async def test_report_renders_in_headless_chromium(traffic, tmp_path):
    html, png = tmp_path / "r.html", tmp_path / "r.png"
    assert main(["report", "--data-dir", str(traffic.data_dir), "--html", str(html)]) == 0
    profile = tmp_path / "profile"
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Vendor exposure report" in dom.stdout and dom.stdout.count("<svg") >= 5
    assert "Where values went" in dom.stdout and "Canaries: protection proven live" in dom.stdout
    shot = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1280,2000", html.as_uri()],
        capture_output=True, timeout=120)
    assert shot.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


async def test_report_shows_the_flows_the_canary_history_and_the_clear_trend(traffic, engine, tmp_path, capsys):
    """Flows come from the ledger (caller → vendor by type and form); canary runs are not requests but a
    history per route; the clear trend counts distinct values in clear per day."""
    await traffic.runner.cleanup()
    settings = load_config(traffic.config_path)
    keys = LocalKeyProvider.in_data_dir(settings.data_dir)
    audit = AuditLog.in_data_dir(settings.data_dir, keys)
    for _ in range(2):
        results = await run_canaries(settings, Services(engine, keys), audit, ["alpha"])
    await audit.close()
    assert not results[0].ok  # the clear policy detects three types only: the canary says what else gets out
    html, js, cs = tmp_path / "r.html", tmp_path / "r.json", tmp_path / "r.csv"
    assert main(["report", "--data-dir", str(traffic.data_dir), "--html", str(html), "--json", str(js),
                 "--csv", str(cs)]) == 0
    assert "2 vendor(s), 4 request(s), 1 blocked" in capsys.readouterr().out  # canary runs are not requests
    data = json.loads(js.read_text())
    flows = {(f["caller"], f["vendor"], f["entity_type"], f["form"]): f["values"] for f in data["flows"]}
    assert flows == {("billing-svc", "alpha", "CREDIT_CARD", "clear"): 1,
                     ("billing-svc", "alpha", "EMAIL_ADDRESS", "clear"): 1,
                     ("billing-svc", "alpha", "US_SSN", "blocked"): 1,
                     ("support-bot", "alpha", "EMAIL_ADDRESS", "clear"): 1,
                     ("support-bot", "beta", "CREDIT_CARD", "masked"): 1,
                     ("support-bot", "beta", "EMAIL_ADDRESS", "tokenized"): 1}
    today = datetime.now(UTC).date().isoformat()
    assert data["vendors"]["alpha"]["clear_daily"] == {today: 2} and data["vendors"]["beta"]["clear_daily"] == {}
    runs = data["canaries"]["alpha"]
    assert [r["ok"] for r in runs] == [False, False] and "PERSON" in runs[-1]["leaked"] and "beta" not in data["canaries"]
    assert data["totals"]["canary_runs"] == data["totals"]["canary_leaks"] == 2
    page = html.read_text()
    assert "Where values went" in page and page.count("<path") == 3 + 5  # caller→vendor, vendor→form by type
    assert "Canaries: protection proven live" in page and "LEAKED: " in page and page.count("fill='#b91c1c'><title>") >= 2
    assert "Distinct values received in clear, per day" in page
    rows = list(csv.DictReader(cs.open()))
    assert {"vendor": "alpha", "metric": "flow_values", "key": "billing-svc|US_SSN|blocked", "date": "",
            "value": "1"} in rows
    assert sum(r["metric"] == "canary_leaked_types" for r in rows) == 2
    for out in (page, js.read_text(), cs.read_text()):
        for value in (JANE_EMAIL, JANE_EMAIL.lower(), JANE_CARD, JANE_SSN, "4111111111111111", "@example.net"):
            assert value not in out
