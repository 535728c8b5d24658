"""Render the exposure report for a month of synthetic traffic and screenshot it
in headless Chromium, to look at what an auditor will see.

    apt-get install -y chromium          # Debian's package
    PYTHONPATH=. python bench/report_screenshot.py /tmp/report-demo   # report.html, .png, .json, .csv

The data dir is filled through the real audit log and ledger APIs (records
dated over the last 30 days), then `vendorgate report` renders it.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.audit import AuditLog, AuditRecord
from gateway.audit.ledger import FORMS, Exposure, ExposureLedger, RequestMeta
from gateway.cli.main import main
from gateway.keys import LocalKeyProvider

VENDORS = {"openai": ["PERSON", "EMAIL_ADDRESS", "DATE_TIME", "URL", "PHONE_NUMBER"],
           "labelbox": ["PERSON", "LOCATION", "DATE_TIME"],
           "acme-experts": ["EMAIL_ADDRESS", "CREDIT_CARD", "US_SSN", "SECRET"]}
CALLERS = ["billing-svc", "support-bot", "search-indexer", "data-science", "cron-export"]
ACTION = {"PERSON": "tokenize", "EMAIL_ADDRESS": "mask", "DATE_TIME": "allow", "URL": "allow",
          "PHONE_NUMBER": "fpe", "LOCATION": "redact", "CREDIT_CARD": "mask", "US_SSN": "hash", "SECRET": "redact"}


def fill(data_dir: Path, days: int = 30, seed: int = 7) -> None:
    rnd = random.Random(seed)
    keys = LocalKeyProvider.in_data_dir(data_dir)
    audit, ledger = AuditLog.in_data_dir(data_dir, keys), ExposureLedger.in_data_dir(data_dir, keys)
    start = datetime.now(UTC) - timedelta(days=days - 1)
    for day in range(days):
        for vendor, types in VENDORS.items():
            for _ in range(rnd.randint(3, 12) if vendor != "acme-experts" else rnd.randint(0, 4)):
                ts = (start + timedelta(days=day, minutes=rnd.randint(0, 1439))).isoformat(timespec="milliseconds")
                found = {t: rnd.randint(1, 4) for t in rnd.sample(types, rnd.randint(1, len(types)))}
                blocked = vendor == "acme-experts" and "SECRET" in found
                rec = AuditRecord(id=uuid.uuid4().hex, ts=ts, request_id=uuid.uuid4().hex, caller=rnd.choice(CALLERS),
                                  vendor=vendor, method="POST", path="/v1/chat", status=403 if blocked else 200,
                                  decision="blocked" if blocked else "forwarded", findings=found,
                                  bytes_sent=0 if blocked else rnd.randint(800, 9000),
                                  blocked_types=["SECRET"] if blocked else [])
                if not blocked:
                    rec.actions = {}
                    for t, n in found.items():
                        rec.actions[ACTION[t]] = rec.actions.get(ACTION[t], 0) + n
                meta = RequestMeta(ts, rec.request_id, rec.id, rec.caller, vendor, "d" * 64)
                lineage = ledger.lineage(meta, [
                    Exposure(t, "blocked" if blocked else FORMS[ACTION[t]], f"{t}-value-{rnd.randint(1, 40)}",
                             f"{t}_SURROGATE" if ACTION[t] in ("tokenize", "fpe", "hash") else None)
                    for t in found])
                rec.lineage = lineage.digest
                audit.append_sync(rec)
                ledger.add_sync(lineage)
        for vendor in VENDORS:  # the scheduled canary, once a day per route; one leak on one day
            leaked = ["SECRET"] if vendor == "labelbox" and day == days - 9 else []
            sent = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "SECRET"]
            ts = (start + timedelta(days=day, hours=3)).isoformat(timespec="milliseconds")
            audit.append_sync(AuditRecord(
                id=uuid.uuid4().hex, ts=ts, request_id=uuid.uuid4().hex, caller="vendorgate-canary", vendor=vendor,
                method="CANARY", path="/-/canary", decision="canary", status=500 if leaked else 200,
                canary={"sent": sent, "protected": [t for t in sent if t not in leaked], "allowed": [],
                        "leaked": leaked}))


def screenshot(html: Path, png: Path, height: int = 2000) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size=1280,{height}",
                        html.resolve().as_uri()], check=True, capture_output=True, timeout=120)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="vg-report-"))
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    if not (data_dir / "audit.sqlite").exists():
        fill(data_dir)
    main(["report", "--since", "30d", "--data-dir", str(data_dir), "--html", str(out / "report.html"),
          "--json", str(out / "report.json"), "--csv", str(out / "report.csv")])
    screenshot(out / "report.html", out / "report.png", int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
    print(f"screenshot: {out / 'report.png'}")
