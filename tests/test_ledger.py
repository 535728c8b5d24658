"""The exposure ledger, written by real traffic through the gateway to a real upstream
(the `traffic` fixture in conftest.py)."""

from __future__ import annotations

from support import JANE_CARD, JANE_EMAIL, JANE_SSN

from gateway.audit.ledger import Exposure, ExposureLedger, RequestMeta, fingerprint, normalise
from gateway.cli.main import main
from gateway.keys import LocalKeyProvider


def test_normalising_ignores_formatting_that_does_not_change_the_value():
    assert normalise("EMAIL_ADDRESS", " Jane.Doe@EXAMPLE.com ") == "jane.doe@example.com"
    assert normalise("CREDIT_CARD", "4111-1111 1111.1111") == "4111111111111111"
    assert normalise("PHONE_NUMBER", "(415) 555-0142") == "4155550142"
    key = b"k" * 32
    assert fingerprint(key, "CREDIT_CARD", JANE_CARD) == fingerprint(key, "CREDIT_CARD", "4111-1111-1111-1111")
    assert fingerprint(key, "EMAIL_ADDRESS", JANE_EMAIL) != fingerprint(b"x" * 32, "EMAIL_ADDRESS", JANE_EMAIL)


async def test_real_traffic_writes_ledger_rows_without_values(traffic, upstream):
    assert JANE_EMAIL in upstream.received[0].text  # alpha really got it in clear
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
    for value in (JANE_EMAIL, JANE_EMAIL.lower(), JANE_CARD, "4111111111111111", JANE_SSN):
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

    assert main(["audit", "who-saw", JANE_EMAIL, "--data-dir", str(traffic.data_dir)]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "beta" in out and "billing-svc" in out and "EMAIL_ADDRESS_" in out
    assert "3 exposure(s) to 2 vendor(s)" in out
    assert main(["audit", "who-saw", "nobody@example.com", "--data-dir", str(traffic.data_dir)]) == 1


async def test_rows_survive_key_rotation_for_who_saw(traffic):
    keys = LocalKeyProvider.in_data_dir(traffic.data_dir)
    keys.rotate()
    ledger = ExposureLedger.in_data_dir(traffic.data_dir, keys)
    ledger.add_sync(RequestMeta("2030-01-01T00:00:00+00:00", "r1", "rec1", "cron", "gamma"),
                    [Exposure("EMAIL_ADDRESS", "clear", JANE_EMAIL)])
    assert [h["vendor"] for h in ledger.who_saw(JANE_EMAIL)] == ["alpha", "alpha", "beta", "gamma"]
    await ledger.close()
