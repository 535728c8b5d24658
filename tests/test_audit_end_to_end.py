"""The user-level proof of issue 7: real traffic through a real gateway to two
vendors (values in clear, tokenized, blocked) with JSONL, syslog and Splunk HEC
sinks, then every audit command run as a user runs it (`python -m gateway ...`).
Each command must answer correctly, and no file, sink, CLI output or log line
may hold a raw value that was sent."""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import sqlite3

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from support import (
    JANE_CARD,
    JANE_EMAIL,
    JANE_SSN,
    HecReceiver,
    TcpReceiver,
    add_callers,
    as_caller,
    free_port,
    sinks_yaml,
    two_vendor_config,
    user_env,
    vendorgate,
    wait_for,
)

NAME = "Jane Doe"
RAW = [JANE_EMAIL, JANE_EMAIL.lower(), JANE_CARD, JANE_CARD.replace(" ", ""), JANE_CARD.replace(" ", "-"), JANE_SSN, JANE_SSN.replace("-", ""), NAME]
TRAFFIC = [  # (vendor, caller, JSON body, expected status)
    ("alpha", "billing-svc", {"note": f"{NAME} <{JANE_EMAIL}> paid with {JANE_CARD}"}, 200),  # email + card in clear
    ("beta", "support-bot", {"note": f"{NAME} <{JANE_EMAIL}> paid with {JANE_CARD}"}, 200),   # email tokenized, card masked
    ("alpha", "billing-svc", {"note": f"ssn {JANE_SSN} for {JANE_EMAIL}"}, 403),              # blocked: JANE_SSN
    ("alpha", "crm-sync", {"contact": {"email": JANE_EMAIL.lower()}}, 200),               # same email, another caller
]


cli = functools.partial(vendorgate, env=user_env(), timeout=120)


def files_text(folder) -> dict[str, str]:
    return {str(p): p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "keys.json"}


async def test_audit_commands_answer_from_real_traffic_and_no_output_holds_a_raw_value(
        tmp_path, upstream, start_gateway, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("VG_TEST_HEC", "hec-secret")
    syslog, hec = TcpReceiver(free_port()), HecReceiver(free_port(), "hec-secret")
    await syslog.start()
    await hec.start()
    cfg = two_vendor_config(tmp_path, upstream.url, sinks_yaml(tmp_path, syslog.port, hec.port))
    keys = add_callers(cfg, sorted({caller for _, caller, _, _ in TRAFFIC}))
    gw = await start_gateway(cfg)

    async with httpx.AsyncClient(timeout=60) as client:
        for vendor, caller, body, status in TRAFFIC:
            r = await client.post(f"{gw.url}/{vendor}/v1/chat", json=body, headers=as_caller(keys[caller]))
            assert r.status_code == status, r.text
    # what the vendors really received: the test is only meaningful if alpha got the values
    assert len(upstream.received) == 3  # the blocked request never left
    alpha, beta = upstream.received[0].text, upstream.received[1].text
    assert JANE_EMAIL in alpha and JANE_CARD in alpha
    assert JANE_EMAIL not in beta and JANE_CARD not in beta and "1111" in beta
    token = re.search(r"EMAIL_ADDRESS_\w+", beta).group(0)

    jsonl = tmp_path / "siem" / "audit.jsonl"
    assert await wait_for(lambda: len(hec.got) == 4 and len(syslog.got) >= 4
                          and jsonl.exists() and len(jsonl.read_text().splitlines()) == 4)
    outputs = {f"running:{k}": v for k, v in files_text(gw.data_dir).items()}  # WAL and spools while live
    await gw.runner.cleanup()  # shutdown: final signed checkpoint, sinks flushed

    ran = {}

    def run(*args: str, code: int = 0) -> str:
        out = cli(*args)
        ran[" ".join(args)] = out.stdout + out.stderr
        assert out.returncode == code, (args, out.stdout, out.stderr)
        return out.stdout

    listing = run("audit", "list", "--config", str(cfg))
    lines = listing.splitlines()
    assert "4 record(s)" in lines[-1] and "blocked (US_SSN)" in lines[3]
    for column, cells in (("DECISION", ("forwarded", "blocked (US_SSN)")), ("FINDINGS", ("CREDIT_CARD ×1", "EMAIL_"))):
        at = lines[0].index(column)
        assert all(line[at:].startswith(cells) for line in lines[1:5]), listing  # columns line up
    records = [json.loads(line) for line in run("audit", "list", "--json", "--config", str(cfg)).splitlines()]
    assert [(r["vendor"], r["caller"], r["decision"]) for r in records] == [
        ("alpha", "billing-svc", "forwarded"), ("beta", "support-bot", "forwarded"),
        ("alpha", "billing-svc", "blocked"), ("alpha", "crm-sync", "forwarded")]

    assert "4 record(s) verified against 1 signed checkpoint(s)" in run("audit", "verify", "--config", str(cfg))

    bundle, key = tmp_path / "record.proof.json", tmp_path / "gateway.pub"
    run("audit", "prove", records[0]["id"], "--out", str(bundle), "--config", str(cfg))
    key.write_text(run("audit", "public-key", "--config", str(cfg)))
    proof = run("audit", "verify-proof", str(bundle), "--public-key", str(key))
    assert f"proof valid: record {records[0]['id']} is leaf 0 of vendorgate-audit/" in proof and "at size 4" in proof
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert "PROOF INVALID" in cli("audit", "verify-proof", str(bundle), "--public-key",
                                  base64.b64encode(stranger).decode()).stderr

    who = run("audit", "who-saw", JANE_EMAIL.upper(), "--requests", "--config", str(cfg))
    assert "received by 2 vendor(s): alpha, beta; in clear by 1: alpha" in who
    assert token in who and "crm-sync" in who and "billing-svc" in who
    hits = json.loads(run("audit", "who-saw", JANE_CARD.replace(" ", "-"), "--json", "--config", str(cfg)))
    assert [(h["vendor"], h["form"], h["record_id"]) for h in hits["exposures"]] == [
        ("alpha", "clear", records[0]["id"]), ("beta", "masked", records[1]["id"])]
    assert "blocked ×1" in run("audit", "who-saw", JANE_SSN, "--config", str(cfg), code=1)  # no vendor received it

    vendor = run("audit", "vendor", "alpha", "--since", "30d", "--config", str(cfg))
    assert "requests   3  (forwarded 2, blocked 1" in vendor
    assert re.search(r"EMAIL_ADDRESS\s+\d+\s+1\s+0", vendor)  # one distinct email in clear, no token
    assert "blocked for US_SSN ×1" in vendor and "billing-svc (2)" in vendor

    html, data, csv = (tmp_path / f"report.{ext}" for ext in ("html", "json", "csv"))
    summary = run("report", "--since", "30d", "--html", str(html), "--json", str(data), "--csv", str(csv),
                  "--config", str(cfg))
    assert "2 vendor(s), 4 request(s), 1 blocked, 2 distinct value(s) sent in clear" in summary
    figures = json.loads(data.read_text())
    assert sorted(figures["vendors"]) == ["alpha", "beta"]
    assert figures["vendors"]["alpha"]["blocked"] == 1 and figures["totals"]["distinct_tokens"] == 1
    page = html.read_text()
    assert "<svg" in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert csv.read_text().startswith("vendor,metric,key,date,value")

    # one person: what every vendor got, with proofs an auditor checks offline; then forget them
    subject, subject_html = tmp_path / "subject.json", tmp_path / "subject.html"
    said = run("subject", "report", "--value", JANE_EMAIL, "--value", NAME, "--value", JANE_CARD, "--json",
               str(subject), "--html", str(subject_html), "--config", str(cfg))
    assert "received by 2 vendor(s): alpha, beta; in clear to alpha" in said
    assert "subject report valid: 4 audit record(s)" in run("audit", "verify-proof", str(subject), "--public-key",
                                                            str(key))
    forgot = run("subject", "forget", "--value", JANE_EMAIL, "--config", str(cfg))
    assert "shredded 1 vault entry (beta 1)" in forgot and "not recallable" in forgot
    run("subject", "report", "--value", JANE_EMAIL, "--json", str(subject), "--html", str(subject_html),
        "--config", str(cfg))
    assert json.loads(subject.read_text())["erased_at"] == ["beta"]
    assert "LEAKED" in run("canary", "--vendor", "alpha", "--config", str(cfg), code=1)  # the clear policy
    run("report", "--since", "30d", "--html", str(html), "--json", str(data), "--csv", str(csv), "--config", str(cfg))
    assert json.loads(data.read_text())["canaries"]["alpha"][0]["ok"] is False

    ids = [r["id"] for r in records]
    assert [r["id"] for r in hec.got] == ids
    assert [json.loads(line)["id"] for line in jsonl.read_text().splitlines()] == ids
    assert [r["id"] for r in syslog.got][:4] == ids
    assert any(name.endswith("vault.sqlite3") for name in files_text(gw.data_dir))

    outputs.update(files_text(gw.data_dir))
    outputs.update({str(p): p.read_text() for p in (jsonl, bundle, html, data, csv, subject, subject_html)})
    outputs.update({f"cli:{k}": v for k, v in ran.items()})
    outputs.update({"logs": caplog.text, "hec": json.dumps(hec.got), "syslog": json.dumps(syslog.got)})
    assert any(name.endswith("audit.sqlite") for name in outputs)
    assert any(name.endswith("ledger.sqlite") for name in outputs)
    assert any("/spool/" in name for name in outputs)
    assert any(name.endswith("-wal") for name in outputs)
    leaks = [(name, value) for name, text in outputs.items() for value in RAW if value in text]
    assert leaks == []

    # and the log written by that traffic is tamper-evident: edit one record, verify names it
    with sqlite3.connect(gw.data_dir / "audit.sqlite") as db:
        db.execute("UPDATE audit SET record = replace(record, 'crm-sync', 'crm-sunc') WHERE seq = 4")
    out = cli("audit", "verify", "--config", str(cfg))
    assert out.returncode == 2
    assert f"AUDIT LOG TAMPERED: record seq 4 (id {ids[3]}) was altered" in out.stderr
    await syslog.stop()
    await hec.stop()
