"""One person's values end to end: real traffic through the gateway to two vendors (in clear,
tokenized, encrypted, masked, blocked), then `subject report` (its proofs verify offline and
a tampered report does not) and `subject forget` (afterwards neither a JSON nor a streamed
answer restores the original; the erasure is signed, in the report and in `who-saw`)."""

from __future__ import annotations

import base64
import functools
import json
import re
import shutil
import subprocess
import textwrap

import httpx
import pytest
from aiohttp import web
from support import JANE_CARD, JANE_EMAIL, JANE_SSN, add_callers, user_env, vendorgate

from gateway.audit.checkpoint import CheckpointError
from gateway.report.subject import build, render_html, verify

NAME = "John Smith"
RAW = [NAME, JANE_EMAIL, JANE_EMAIL.lower(), JANE_CARD, JANE_CARD.replace(" ", ""), JANE_SSN]
CLEAR = """
name: clear
detect: [EMAIL_ADDRESS, CREDIT_CARD, US_SSN]
default_action: redact
actions: {EMAIL_ADDRESS: allow, CREDIT_CARD: allow, US_SSN: block}
"""
REVERSIBLE = """
name: reversible
detect: [PERSON, EMAIL_ADDRESS, CREDIT_CARD, US_SSN]
default_action: redact
actions: {PERSON: tokenize, EMAIL_ADDRESS: encrypt, CREDIT_CARD: {action: mask, keep: 4}, US_SSN: block}
"""
PERSON_TOKEN = re.compile(r"PERSON_[0-9A-Z]{10,26}")
EMAIL_TOKEN = re.compile(r"vg1k\d+_EMAIL_ADDRESS_[0-9A-Z]+")

cli = functools.partial(vendorgate, env=user_env(), timeout=180)


def subject_config(tmp_path, upstream_url: str):
    (tmp_path / "clear.yaml").write_text(textwrap.dedent(CLEAR))
    (tmp_path / "reversible.yaml").write_text(textwrap.dedent(REVERSIBLE))
    cfg = tmp_path / "vendorgate.yaml"
    cfg.write_text(f'data_dir: data\nvendors:\n  alpha:\n    upstream: "{upstream_url}"\n    policy: clear.yaml\n'
                   f'  beta:\n    upstream: "{upstream_url}"\n    policy: reversible.yaml\n')
    return cfg


def sse_reply(text: str):
    """An OpenAI-style stream that says `text`, cut in the middle of every token."""
    async def handler(request, body):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(0, len(text), 7):
            delta = {"choices": [{"index": 0, "delta": {"content": text[i:i + 7]}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(delta)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
    return handler


def json_reply(text: str):
    async def handler(request, body):
        return web.json_response({"answer": text})
    return handler


async def answers(gw, key: str, upstream, tokens: str) -> tuple[str, str]:
    """What the caller gets when beta answers with `tokens`: as JSON, and streamed."""
    headers = {"X-Vendorgate-Key": key}
    async with httpx.AsyncClient(timeout=120) as client:
        upstream.handler = json_reply(tokens)
        plain = (await client.post(f"{gw.url}/beta/v1/chat", json={"note": "and again?"}, headers=headers)).json()
        upstream.handler = sse_reply(tokens)
        async with client.stream("POST", f"{gw.url}/beta/v1/chat", json={"note": "stream it"}, headers=headers) as r:
            lines = [line async for line in r.aiter_lines()]
    upstream.handler = None
    streamed = "".join(json.loads(line[6:])["choices"][0]["delta"]["content"] for line in lines
                       if line.startswith("data: {"))
    return plain["answer"], streamed


async def test_subject_report_proves_every_exposure_and_forget_makes_tokens_unrestorable(
        tmp_path, upstream, start_gateway, caplog):
    cfg = subject_config(tmp_path, upstream.url)
    key = add_callers(cfg, ["billing-svc", "support-bot"])
    gw = await start_gateway(cfg)
    async with httpx.AsyncClient(timeout=120) as client:
        async def post(vendor, caller, body):
            return await client.post(f"{gw.url}/{vendor}/v1/chat", json=body, headers={"X-Vendorgate-Key": key[caller]})

        assert (await post("alpha", "billing-svc", {"note": f"{JANE_EMAIL} paid with {JANE_CARD}"})).status_code == 200
        r = await post("beta", "support-bot", {"note": f"Customer {NAME} ({JANE_EMAIL}) paid with {JANE_CARD}"})
        assert r.status_code == 200 and NAME in r.json()["echo"]  # restored for the caller that sent it
        assert (await post("alpha", "billing-svc", {"note": f"ssn {JANE_SSN} for {JANE_EMAIL}"})).status_code == 403
    beta_saw = upstream.received[1].text
    assert NAME not in beta_saw and JANE_EMAIL not in beta_saw and JANE_EMAIL in upstream.received[0].text
    tokens = f"{PERSON_TOKEN.search(beta_saw).group(0)} at {EMAIL_TOKEN.search(beta_saw).group(0)}"
    # control: before forget, beta answering with the tokens gives the caller the originals, both ways
    assert await answers(gw, key["support-bot"], upstream, tokens) == (f"{NAME} at {JANE_EMAIL}",) * 2

    ran: dict[str, str] = {}

    def run(*args: str, code: int = 0) -> str:
        out = cli(*args)
        ran[" ".join(args)] = out.stdout + out.stderr
        assert out.returncode == code, (args, out.stdout, out.stderr)
        return out.stdout

    values = tmp_path / "values.txt"
    values.write_text(f"{JANE_EMAIL}\n\n{NAME}\n")
    report, page, pub = tmp_path / "subject.json", tmp_path / "subject.html", tmp_path / "gateway.pub"
    summary = run("subject", "report", "--values-file", str(values), "--value", JANE_CARD, "--json", str(report),
                  "--html", str(page), "--config", str(cfg))
    assert "3 value(s)" in summary and "received by 2 vendor(s): alpha, beta; in clear to alpha" in summary
    data = json.loads(report.read_text())
    forms = {v: s["forms"] for v, s in data["vendors"].items()}
    assert forms == {"alpha": {"blocked": 1, "clear": 2}, "beta": {"encrypted": 1, "masked": 1, "tokenized": 1}}
    assert data["not_recallable"] == {"alpha": ["clear"], "beta": ["masked"]}
    assert {r["caller"] for r in data["exposures"] if r["vendor"] == "beta"} == {"support-bot"}
    assert all(len(r["policy_digest"]) == 64 for r in data["exposures"])
    assert len(data["records"]) == 3  # one proof per audit record: two to alpha (one blocked), one to beta
    pub.write_text(run("audit", "public-key", "--config", str(cfg)))
    proof = run("audit", "verify-proof", str(report), "--public-key", str(pub))
    assert "subject report valid: 3 audit record(s) proven" in proof and "6 ledger row(s) bound" in proof

    # a report edited after the fact does not verify: a form changed, a row of another vendor added
    edited = json.loads(report.read_text())
    next(r for r in edited["exposures"] if r["form"] == "clear")["form"] = "masked"
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    assert "not among record" in cli("audit", "verify-proof", str(tmp_path / "edited.json"), "--public-key",
                                     str(pub)).stderr
    edited = json.loads(report.read_text())
    rid = next(iter(edited["records"]))
    edited["records"][rid]["lineage"].pop()
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    bad = cli("audit", "verify-proof", str(tmp_path / "edited.json"), "--public-key", str(pub))
    assert bad.returncode == 2 and "PROOF INVALID" in bad.stderr

    forgot = run("subject", "forget", "--value", JANE_EMAIL, "--value", NAME, "--config", str(cfg))
    assert "2 value(s): shredded 2 vault entries (beta 2); 1 erasure record(s)" in forgot, forgot
    assert "not recallable by the gateway (sent in clear, masked or hashed): alpha" in forgot
    # the running gateway: neither answer restores the original any more; the tokens stay tokens
    assert await answers(gw, key["support-bot"], upstream, tokens) == (tokens, tokens)

    run("subject", "report", "--value", NAME, "--value", JANE_EMAIL, "--json", str(report), "--html", str(page),
        "--config", str(cfg))
    data = json.loads(report.read_text())
    assert data["erased_at"] == ["beta"] and data["vendors"]["beta"]["forms"]["erased"] == 2
    assert "erased" in page.read_text() and "crypto-shredded" in page.read_text()
    assert "subject report valid" in run("audit", "verify-proof", str(report), "--public-key", str(pub))
    who = run("audit", "who-saw", JANE_EMAIL, "--config", str(cfg))
    assert "erased ×1" in next(line for line in who.splitlines() if line.startswith("beta"))
    await gw.runner.cleanup()
    verified = run("audit", "verify", "--config", str(cfg))
    assert "exposure ledger:" in verified and "match" in verified
    listing = run("audit", "list", "--config", str(cfg))
    assert "FORGET" in listing and "erased" in listing

    outputs = {str(p): p.read_bytes().decode("utf-8", "replace") for p in sorted(gw.data_dir.rglob("*"))
               if p.is_file() and p.name != "keys.json"}
    outputs.update({str(p): p.read_text() for p in (report, page)})
    outputs.update({f"cli:{k}": v for k, v in ran.items()})
    outputs["logs"] = caplog.text
    leaks = [(name, value) for name, text in outputs.items() for value in RAW if value in text]
    assert leaks == []


def test_subject_commands_need_a_value(tmp_path):
    out = cli("subject", "forget", "--data-dir", str(tmp_path))
    assert out.returncode == 2 and "give --value VALUE" in out.stderr
    out = cli("subject", "report", "--value", "x", "--data-dir", str(tmp_path))
    assert out.returncode == 2 and "--json FILE and/or --html FILE" in out.stderr


def test_a_subject_report_signed_with_another_key_is_refused(tmp_path):
    """verify-proof with the gateway's key refuses a report whose checkpoint some other key signed."""
    report = tmp_path / "subject.json"
    report.write_text(json.dumps({"format": "vendorgate-subject-report/1", "records": {"r": {"bundle": {
        "format": "vendorgate-inclusion/1"}, "lineage": []}}, "exposures": []}))
    out = cli("audit", "verify-proof", str(report), "--public-key", base64.b64encode(b"k" * 32).decode())
    assert out.returncode == 2 and "PROOF INVALID" in out.stderr


def test_rows_of_pruned_records_are_listed_as_unproven_not_as_proven():
    row = {"ts": "2020-01-01T00:00:00.000+00:00", "request_id": "r", "record_id": "gone", "caller": "svc",
           "vendor": "alpha", "entity_type": "EMAIL_ADDRESS", "key_id": "k1", "fingerprint": "f" * 64,
           "form": "clear", "surrogate": None, "occurrences": 1, "policy_digest": ""}
    report = build(1, [row], {}, {})
    assert report["unproven"] == ["gone"] and report["records"] == {} and report["in_clear_to"] == ["alpha"]
    got = verify(report)
    assert (got.records, got.rows, got.unproven) == (0, 1, 1)
    assert "pruned: no proof" in render_html(report)
    report["unproven"] = []
    with pytest.raises(CheckpointError, match="has no proof"):
        verify(report)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium package is not installed")
def test_subject_report_prints_to_pdf_in_headless_chromium(tmp_path):
    rows = [{"ts": f"2026-01-0{i}T10:00:00.000+00:00", "request_id": f"r{i}", "record_id": f"rec{i}", "caller": "svc",
             "vendor": vendor, "entity_type": "EMAIL_ADDRESS", "key_id": "k1", "fingerprint": f"{i}" * 64,
             "form": form, "surrogate": None, "occurrences": 1, "policy_digest": "d" * 64}
            for i, (vendor, form) in enumerate((("alpha", "clear"), ("beta", "tokenized"), ("beta", "erased")), 1)]
    page, pdf = tmp_path / "subject.html", tmp_path / "subject.pdf"
    page.write_text(render_html(build(2, rows, {}, {})))
    assert "<script" not in page.read_text() and "http" not in page.read_text()
    run = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={pdf}", "--no-pdf-header-footer",
                          page.as_uri()], capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000
