"""The exposure ledger, written by real traffic through the gateway to a real upstream
(the `traffic` fixture in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3

from support import JANE_CARD, JANE_EMAIL, JANE_SSN, add_callers, send

from gateway.app.server import RUNTIME_KEY
from gateway.audit.ledger import SCHEMA, Exposure, ExposureLedger, RequestMeta, fingerprint, normalise
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
    got = sorted((r["vendor"], r["entity_type"], r["form"], r["surrogate"] or "", r["caller"]) for r in rows)
    assert got == [
        ("alpha", "CREDIT_CARD", "clear", "", "billing-svc"),
        ("alpha", "EMAIL_ADDRESS", "clear", "", "billing-svc"),
        ("alpha", "EMAIL_ADDRESS", "clear", "", "support-bot"),
        ("alpha", "US_SSN", "blocked", "", "billing-svc"),     # the request was refused: recorded, not sent
        ("beta", "CREDIT_CARD", "masked", "", "support-bot"),  # a masked value keeps part of it: no surrogate
        ("beta", "EMAIL_ADDRESS", "tokenized", token, "support-bot"),
    ]
    digests = {r["vendor"]: r["policy_digest"] for r in rows}
    assert len(digests["alpha"]) == len(digests["beta"]) == 64 and digests["alpha"] != digests["beta"]
    raw = (traffic.data_dir / "ledger.sqlite").read_bytes()
    for value in (JANE_EMAIL, JANE_EMAIL.lower(), JANE_CARD, "4111111111111111", JANE_SSN):
        assert value.encode() not in raw
    await ledger.close()


async def test_who_saw_finds_clear_and_token_exposures_whatever_the_formatting(traffic, capsys):
    ledger = ExposureLedger.in_data_dir(traffic.data_dir, LocalKeyProvider.in_data_dir(traffic.data_dir))
    hits = ledger.who_saw("  JANE.DOE@example.COM")
    assert [(h["vendor"], h["form"]) for h in hits] == [("alpha", "clear"), ("alpha", "clear"), ("beta", "tokenized")]
    assert [h["vendor"] for h in ledger.who_saw("4111-1111-1111-1111", "CREDIT_CARD")] == ["alpha", "beta"]
    assert ledger.who_saw("4111-1111-1111-1111", "EMAIL_ADDRESS") == []
    assert ledger.who_saw("someone.else@example.com") == []
    await ledger.close()

    assert main(["audit", "who-saw", JANE_EMAIL, "--data-dir", str(traffic.data_dir)]) == 0
    out = capsys.readouterr().out
    alpha = next(line for line in out.splitlines() if line.startswith("alpha"))
    assert "clear ×2" in alpha and "billing-svc, support-bot" in alpha and alpha.split()[1:3] == ["2", "2"]
    assert "tokenized ×1" in next(line for line in out.splitlines() if line.startswith("beta"))
    assert "3 ledger row(s); received by 2 vendor(s): alpha, beta; in clear by 1: alpha" in out
    assert main(["audit", "who-saw", JANE_EMAIL, "--requests", "--data-dir", str(traffic.data_dir)]) == 0
    assert "EMAIL_ADDRESS_" in capsys.readouterr().out  # the token beta got, with its request id
    assert main(["audit", "who-saw", "nobody@example.com", "--data-dir", str(traffic.data_dir)]) == 1


async def test_who_saw_tells_a_blocked_value_apart_from_one_never_seen(traffic, capsys):
    """Every form: the SSN reached no vendor, but the ledger knows it was stopped, when and for whom."""
    assert main(["audit", "who-saw", JANE_SSN, "--json", "--data-dir", str(traffic.data_dir)]) == 1
    got = json.loads(capsys.readouterr().out)
    assert got["received_by"] == [] and got["vendors"]["alpha"]["forms"] == {"blocked": 1}
    assert got["vendors"]["alpha"]["callers"] == ["billing-svc"] and len(got["vendors"]["alpha"]["policy_digests"]) == 1
    assert main(["audit", "who-saw", JANE_CARD, "--json", "--data-dir", str(traffic.data_dir)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert {v: s["forms"] for v, s in got["vendors"].items()} == {"alpha": {"clear": 1}, "beta": {"masked": 1}}
    assert got["vendors"]["beta"]["first_seen"] == got["vendors"]["beta"]["last_seen"]
    assert main(["audit", "who-saw", JANE_SSN, "--data-dir", str(traffic.data_dir)]) == 1
    out = capsys.readouterr().out
    assert "blocked ×1" in out and "received by 0 vendor(s); in clear by 0; only blocked or dropped for alpha" in out
    assert JANE_SSN not in out and "536" not in out


async def test_verify_covers_the_ledger_rows_of_every_record(traffic, capsys):
    """The record carries the digest of its ledger rows: deleting, adding or re-attributing a row fails verify."""
    keys = add_callers(traffic.config_path, ["bulk-job"])
    assert traffic.runner.app[RUNTIME_KEY].reload()  # the new caller key, as on SIGHUP
    many = " ".join(f"user{i}@example.org" for i in range(300))  # fingerprinted off the event loop
    assert (await send(traffic, "alpha", many, keys["bulk-job"])).status_code == 200
    await traffic.runner.cleanup()
    assert main(["audit", "verify", "--data-dir", str(traffic.data_dir)]) == 0
    assert "exposure ledger: 306 row(s) of 5 record(s) match" in capsys.readouterr().out
    for n, (tamper, expected) in enumerate((
            ("UPDATE exposure SET vendor = 'gamma' WHERE vendor = 'beta' AND entity_type = 'EMAIL_ADDRESS'",
             "re-attributed or altered"),
            ("DELETE FROM exposure WHERE caller = 'support-bot' AND vendor = 'alpha'", "deleted"),
            ("INSERT INTO exposure (ts, request_id, record_id, caller, vendor, entity_type, key_id, fingerprint, via,"
             " occurrences) SELECT '2999-01-01', 'x', 'nope', caller, vendor, entity_type, key_id, fingerprint, via, 1"
             " FROM exposure LIMIT 1", "not in the audit log"),
            ("UPDATE exposure SET via = 'masked' WHERE via = 'clear' AND entity_type = 'CREDIT_CARD'", "altered"))):
        copy = traffic.data_dir.parent / f"tampered-{n}"
        shutil.copytree(traffic.data_dir, copy)
        with sqlite3.connect(copy / "ledger.sqlite") as conn:
            assert conn.execute(tamper).rowcount == 1, tamper
        args = ["audit", "verify", "--data-dir", str(copy)]
        assert main(args) == 2, tamper
        err = capsys.readouterr().err
        assert "EXPOSURE LEDGER TAMPERED" in err and expected in err, err


async def test_rows_survive_key_rotation_for_who_saw(traffic):
    keys = LocalKeyProvider.in_data_dir(traffic.data_dir)
    keys.rotate()
    ledger = ExposureLedger.in_data_dir(traffic.data_dir, keys)
    ledger.add_sync(RequestMeta("2030-01-01T00:00:00+00:00", "r1", "rec1", "cron", "gamma"),
                    [Exposure("EMAIL_ADDRESS", "clear", JANE_EMAIL)])
    assert [h["vendor"] for h in ledger.who_saw(JANE_EMAIL)] == ["alpha", "alpha", "beta", "gamma"]
    await ledger.close()


def test_a_ledger_written_before_every_form_was_recorded_still_answers(tmp_path, keys):
    """An older `ledger.sqlite` (no policy digest column, action names in `via`) gains the column on open."""
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        db.executescript(SCHEMA.replace(",\n    policy_digest TEXT NOT NULL DEFAULT ''", ""))
        key = keys.derive("ledger", "", keys.current_id())
        db.execute("INSERT INTO exposure (ts, request_id, record_id, caller, vendor, entity_type, key_id, fingerprint, "
                   "via, surrogate, occurrences) VALUES ('2025-01-01T00:00:00+00:00', 'r', 'rec', 'svc', 'beta', "
                   "'EMAIL_ADDRESS', ?, ?, 'tokenize', 'EMAIL_ADDRESS_X', 1)",
                   (keys.current_id(), fingerprint(key, "EMAIL_ADDRESS", JANE_EMAIL)))
        assert "policy_digest" not in {r[1] for r in db.execute("PRAGMA table_info(exposure)")}
    ledger = ExposureLedger.in_data_dir(tmp_path, keys)
    [hit] = ledger.who_saw(JANE_EMAIL)
    assert (hit["form"], hit["policy_digest"], hit["vendor"]) == ("tokenized", "", "beta")
    ledger.db.close()


async def test_rows_of_concurrent_requests_are_committed_together_and_each_add_waits_for_its_own(tmp_path, keys):
    ledger = ExposureLedger.in_data_dir(tmp_path, keys)
    inserts: list[int] = []  # rows per INSERT statement: one per group commit
    run_many = ledger.db.run_many

    def counting(sql, rows):
        inserts.append(len(rows))
        return run_many(sql, rows)

    ledger.db.run_many = counting
    lineages = [ledger.lineage(RequestMeta("2030-01-01T00:00:00+00:00", f"r{i}", f"rec{i}", "svc", "alpha"),
                               [Exposure("EMAIL_ADDRESS", "clear", f"user{i}@example.org"),
                                Exposure("PHONE_NUMBER", "masked", f"+1 415 555 {i:04d}")]) for i in range(200)]
    try:
        written = await asyncio.gather(*(ledger.add(lineage) for lineage in lineages))
        assert written == [2] * 200
        assert len(ledger.rows()) == 400 == sum(inserts)
        assert len(inserts) < 200  # grouped: requests that waited went in together
        assert {r["record_id"] for r in ledger.rows()} == {f"rec{i}" for i in range(200)}
        assert all("example.org" not in str(r) for r in ledger.rows())
    finally:
        await ledger.close()


async def test_a_failed_group_commit_fails_every_request_of_the_group_and_writes_none(tmp_path, keys):
    ledger = ExposureLedger.in_data_dir(tmp_path, keys)

    def broken(sql, rows):
        raise sqlite3.OperationalError("disk I/O error")

    lineage = ledger.lineage(RequestMeta("2030-01-01T00:00:00+00:00", "r", "rec", "svc", "alpha"),
                             [Exposure("EMAIL_ADDRESS", "clear", JANE_EMAIL)])
    ledger.db.run_many = broken
    try:
        results = await asyncio.gather(ledger.add(lineage), ledger.add(lineage), return_exceptions=True)
        assert all(isinstance(r, sqlite3.OperationalError) for r in results)
        assert ledger.rows() == []
    finally:
        await ledger.close()
