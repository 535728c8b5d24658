"""The audit log: one record per request, a verifiable chain, no raw values."""

from __future__ import annotations

import json
import logging
import sqlite3

import httpx
from support import EMAIL, SENSITIVE, audit_log, payload, vendorgate, wait_for_records

from gateway.audit import verify_log


async def _traffic(gw, n=4):
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(n):
            await client.post(gw.url + f"/acme/v1/items/{EMAIL}", json=payload(), headers={"X-Vendorgate-Caller": f"svc-{i}"})
    await wait_for_records(gw, n)


async def test_every_request_gets_one_record_and_the_chain_verifies(gateway, upstream):
    await _traffic(gateway)
    async with httpx.AsyncClient() as client:
        await client.post(gateway.url + "/unknown/x", content="x")
    await wait_for_records(gateway, 5)
    log = audit_log(gateway.data_dir)
    records = log.records()
    assert [r["decision"] for r in records] == ["forwarded"] * 4 + ["rejected"]
    first = records[0]
    assert first["vendor"] == "acme" and first["caller"] == "anonymous"  # X-Vendorgate-Caller is never trusted and first["upstream_status"] == 200
    assert first["findings"]["EMAIL_ADDRESS"] >= 1 and first["actions"]["mask"] >= 1
    assert first["bytes_sent"] == len(upstream.received[0].body)
    assert first["policy_digest"]
    assert verify_log(log).ok
    out = vendorgate("audit", "verify", "--data-dir", str(gateway.data_dir))
    assert out.returncode == 0 and "5 record(s) verified" in out.stdout
    listing = vendorgate("audit", "list", "--data-dir", str(gateway.data_dir), "--vendor", "acme")
    assert listing.returncode == 0 and listing.stdout.count("forwarded") == 4


async def test_no_raw_value_in_audit_store_or_logs(gateway, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    await _traffic(gateway, n=2)
    raw = b"".join(p.read_bytes() for p in gateway.data_dir.glob("audit.sqlite*"))
    listing = vendorgate("audit", "list", "--json", "--data-dir", str(gateway.data_dir)).stdout
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("vendorgate", "gateway", "aiohttp"))
    assert "decision=forwarded" in ours
    for value in SENSITIVE + ["john.smith", "8841", "IOSFODNN7"]:
        assert value.encode() not in raw
        assert value not in ours
        assert value not in listing
    assert "<hidden>" in listing


def _tamper(gw, sql, *args):
    db = sqlite3.connect(gw.data_dir / "audit.sqlite")
    db.execute(sql, args)
    db.commit()
    db.close()


async def test_edited_record_fails_verification_naming_it(gateway):
    await _traffic(gateway)
    row = audit_log(gateway.data_dir).records()[1]
    row["caller"] = "someone-else"
    row.pop("seq")
    _tamper(gateway, "UPDATE audit SET record = ? WHERE seq = 2", json.dumps(row, sort_keys=True))
    result = verify_log(audit_log(gateway.data_dir))
    assert not result.ok and result.seq == 2 and "altered" in result.problem
    out = vendorgate("audit", "verify", "--data-dir", str(gateway.data_dir))
    assert out.returncode != 0 and "seq 2" in out.stderr


async def test_deleted_record_fails_verification(gateway):
    await _traffic(gateway)
    _tamper(gateway, "DELETE FROM audit WHERE seq = 2")
    result = verify_log(audit_log(gateway.data_dir))
    assert not result.ok and result.seq == 2 and "missing" in result.problem


async def test_reordered_records_fail_verification(gateway):
    await _traffic(gateway)
    db = sqlite3.connect(gateway.data_dir / "audit.sqlite")
    a = db.execute("SELECT id, record, prev_hash, hash FROM audit WHERE seq = 2").fetchone()
    b = db.execute("SELECT id, record, prev_hash, hash FROM audit WHERE seq = 3").fetchone()
    db.execute("UPDATE audit SET id = ?, record = ?, prev_hash = ?, hash = ? WHERE seq = 2", (f"tmp{b[0]}", *b[1:]))
    db.execute("UPDATE audit SET id = ?, record = ?, prev_hash = ?, hash = ? WHERE seq = 3", a)
    db.execute("UPDATE audit SET id = ? WHERE seq = 2", (b[0],))
    db.commit()
    result = verify_log(audit_log(gateway.data_dir))
    assert not result.ok and result.seq == 2


async def test_truncated_log_fails_verification(gateway):
    await _traffic(gateway)
    _tamper(gateway, "DELETE FROM audit WHERE seq = 4")
    result = verify_log(audit_log(gateway.data_dir))
    assert not result.ok and "deleted" in result.problem


async def test_rewritten_chain_without_the_key_fails_verification(gateway):
    """An attacker who recomputes every hash still cannot forge the keyed head."""
    from gateway.audit.record import GENESIS, chain_hash

    await _traffic(gateway, n=3)
    db = sqlite3.connect(gateway.data_dir / "audit.sqlite")
    rows = db.execute("SELECT seq, record FROM audit ORDER BY seq").fetchall()
    prev = GENESIS
    for seq, raw in rows[:2]:
        data = json.loads(raw)
        digest = chain_hash(prev, data)
        db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
        prev = digest
    db.execute("DELETE FROM audit WHERE seq = 3")
    db.execute("UPDATE audit_head SET seq = 2, hash = ?", (prev,))
    db.commit()
    result = verify_log(audit_log(gateway.data_dir))
    assert not result.ok and "head" in result.problem
