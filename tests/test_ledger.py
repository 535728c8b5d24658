"""The exposure ledger, written by real traffic through the gateway to a real upstream."""

from __future__ import annotations

import textwrap

import httpx
import pytest
from support import add_callers

from gateway.audit.ledger import Exposure, ExposureLedger, RequestMeta, fingerprint, normalise
from gateway.cli.main import main
from gateway.keys import LocalKeyProvider

EMAIL, CARD, SSN = "Jane.Doe@Example.com", "4111 1111 1111 1111", "536-22-8841"
CLEAR = """
name: clear
detect: [EMAIL_ADDRESS, CREDIT_CARD, US_SSN]
default_action: redact
actions:
  EMAIL_ADDRESS: allow
  CREDIT_CARD: allow
  US_SSN: block
"""
TOKENS = """
name: tokens
detect: [EMAIL_ADDRESS, CREDIT_CARD, US_SSN]
default_action: redact
actions:
  EMAIL_ADDRESS: tokenize
  CREDIT_CARD: {action: mask, keep: 4}
  US_SSN: block
"""


def two_vendor_config(tmp_path, upstream_url: str, extra: str = ""):
    (tmp_path / "clear.yaml").write_text(textwrap.dedent(CLEAR))
    (tmp_path / "tokens.yaml").write_text(textwrap.dedent(TOKENS))
    cfg = tmp_path / "vendorgate.yaml"
    cfg.write_text(
        f'data_dir: data\n{extra}\nvendors:\n'
        f'  alpha:\n    upstream: "{upstream_url}"\n    policy: clear.yaml\n'
        f'  beta:\n    upstream: "{upstream_url}"\n    policy: tokens.yaml\n')
    return cfg


CALLERS = ("billing-svc", "support-bot", "crm-sync")
KEYS: dict = {}


async def send(gw, vendor: str, text: str, caller: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(f"{gw.url}/{vendor}/v1/chat", content=text,
                                 headers={"Content-Type": "text/plain", "X-Vendorgate-Key": KEYS[caller]})


@pytest.fixture
async def traffic(tmp_path, upstream, start_gateway):
    """Alpha gets the email and card in clear (twice, from two callers); beta gets the
    email as a token and the card masked; one request to alpha is blocked."""
    cfg = two_vendor_config(tmp_path, upstream.url)
    KEYS.update(add_callers(cfg, CALLERS))
    gw = await start_gateway(cfg)
    assert (await send(gw, "alpha", f"mail {EMAIL} card {CARD}", "billing-svc")).status_code == 200
    assert (await send(gw, "alpha", f"again {EMAIL.lower()}", "support-bot")).status_code == 200
    assert (await send(gw, "beta", f"mail {EMAIL}, card {CARD}", "support-bot")).status_code == 200
    assert (await send(gw, "alpha", f"ssn {SSN}", "billing-svc")).status_code == 403
    return gw


def test_normalising_ignores_formatting_that_does_not_change_the_value():
    assert normalise("EMAIL_ADDRESS", " Jane.Doe@EXAMPLE.com ") == "jane.doe@example.com"
    assert normalise("CREDIT_CARD", "4111-1111 1111.1111") == "4111111111111111"
    assert normalise("PHONE_NUMBER", "(415) 555-0142") == "4155550142"
    key = b"k" * 32
    assert fingerprint(key, "CREDIT_CARD", CARD) == fingerprint(key, "CREDIT_CARD", "4111-1111-1111-1111")
    assert fingerprint(key, "EMAIL_ADDRESS", EMAIL) != fingerprint(b"x" * 32, "EMAIL_ADDRESS", EMAIL)


async def test_real_traffic_writes_ledger_rows_without_values(traffic, upstream):
    assert EMAIL in upstream.received[0].text  # alpha really got it in clear
    token = upstream.received[2].text.split()[1].rstrip(",")
    assert token.startswith("EMAIL_ADDRESS_")
    ledger = ExposureLedger.in_data_dir(traffic.data_dir, LocalKeyProvider.in_data_dir(traffic.data_dir))
    rows = ledger.rows()
    got = sorted((r["vendor"], r["entity_type"], r["via"], r["surrogate"] or "", r["caller"]) for r in rows)
    assert got == [
        ("alpha", "CREDIT_CARD", "clear", "", "billing-svc"),
        ("alpha", "EMAIL_ADDRESS", "clear", "", "billing-svc"),
        ("alpha", "EMAIL_ADDRESS", "clear", "", "support-bot"),
        ("beta", "EMAIL_ADDRESS", "tokenize", token, "support-bot"),
    ]
    raw = (traffic.data_dir / "ledger.sqlite").read_bytes()
    for value in (EMAIL, EMAIL.lower(), CARD, "4111111111111111", SSN):
        assert value.encode() not in raw
    await ledger.close()


async def test_who_saw_finds_clear_and_token_exposures_whatever_the_formatting(traffic, capsys):
    ledger = ExposureLedger.in_data_dir(traffic.data_dir, LocalKeyProvider.in_data_dir(traffic.data_dir))
    hits = ledger.who_saw("  JANE.DOE@example.COM")
    assert [(h["vendor"], h["via"]) for h in hits] == [("alpha", "clear"), ("alpha", "clear"), ("beta", "tokenize")]
    assert [h["vendor"] for h in ledger.who_saw("4111-1111-1111-1111", "CREDIT_CARD")] == ["alpha"]
    assert ledger.who_saw("4111-1111-1111-1111", "EMAIL_ADDRESS") == []
    assert ledger.who_saw("someone.else@example.com") == []
    await ledger.close()

    assert main(["audit", "who-saw", EMAIL, "--data-dir", str(traffic.data_dir)]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "beta" in out and "billing-svc" in out and "EMAIL_ADDRESS_" in out
    assert "3 exposure(s) to 2 vendor(s)" in out
    assert main(["audit", "who-saw", "nobody@example.com", "--data-dir", str(traffic.data_dir)]) == 1


async def test_rows_survive_key_rotation_for_who_saw(traffic):
    keys = LocalKeyProvider.in_data_dir(traffic.data_dir)
    keys.rotate()
    ledger = ExposureLedger.in_data_dir(traffic.data_dir, keys)
    ledger.add_sync(RequestMeta("2030-01-01T00:00:00+00:00", "r1", "rec1", "cron", "gamma"),
                    [Exposure("EMAIL_ADDRESS", "clear", EMAIL)])
    assert [h["vendor"] for h in ledger.who_saw(EMAIL)] == ["alpha", "alpha", "beta", "gamma"]
    await ledger.close()
