"""The audit log as a Merkle tree with signed checkpoints: tampering is caught
precisely, proofs verify offline, pruning keeps the rest verifiable, several
processes share one PostgreSQL log."""

from __future__ import annotations

import base64
import functools
import json
import multiprocessing
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import make_record, user_env, vendorgate, wait_for_records, write_records

from gateway.audit import AuditLog, AuditLogError, verify_log
from gateway.audit.checkpoint import Checkpoint, CheckpointSigner, public_key_for, verify_bundle
from gateway.audit.merkle import canonical_json, consistency_proof, inclusion_proof, leaf_hash, root_hash
from gateway.audit.proofs import prove, prune
from gateway.audit.prover import Prover
from gateway.audit.record import chain_hash
from gateway.keys import LocalKeyProvider


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


def _keys(data_dir) -> LocalKeyProvider:
    return LocalKeyProvider.in_data_dir(data_dir)


def _log(data_dir, every=5) -> AuditLog:
    return AuditLog.in_data_dir(data_dir, _keys(data_dir), checkpoint_every=every)


def _filled(data_dir, n=12, every=5, **kw) -> AuditLog:
    log = _log(data_dir, every)
    for i in range(n):
        log.append_sync(make_record(f"svc-{i}", **kw))
    return log


def _sql(data_dir, sql, *args):
    db = sqlite3.connect(data_dir / "audit.sqlite")
    db.execute(sql, args)
    db.commit()
    db.close()


_cli = functools.partial(vendorgate, env=user_env())


# -- the prover agrees with the reference prover, pruned or not ---------------

def test_prover_matches_reference_proofs_with_and_without_a_pruned_prefix():
    leaves = [leaf_hash(str(i).encode()) for i in range(37)]
    for pruned in (0, 1, 5, 8, 16, 21, 36):
        prover = Prover(pruned, Prover(0, (), leaves).frontier(pruned), leaves[pruned:])
        for size in range(max(pruned, 1), 38):
            assert prover.root(size) == root_hash(leaves[:size])
            for index in range(pruned, size):
                assert prover.inclusion(index, size) == inclusion_proof(leaves[:size], index)
            for old in range(max(pruned, 1), size + 1):
                assert prover.consistency(old, size) == consistency_proof(leaves[:size], old)


def test_prover_refuses_proofs_that_need_pruned_leaves():
    leaves = [leaf_hash(str(i).encode()) for i in range(20)]
    prover = Prover(9, Prover(0, (), leaves).frontier(9), leaves[9:])
    with pytest.raises(ValueError):
        prover.inclusion(3, 20)
    with pytest.raises(ValueError):
        prover.consistency(3, 20)


# -- checkpoints ------------------------------------------------------------

def test_a_checkpoint_is_signed_every_n_records_and_the_log_verifies(data_dir):
    log = _filled(data_dir, n=12, every=5)
    stored = [Checkpoint.from_dict(raw) for raw, _ in log.checkpoints()]
    assert [cp.tree_size for cp in stored] == [5, 10]
    records = log.records()
    for r in records:
        r.pop("seq")
    leaves = [leaf_hash(canonical_json(r)) for r in records]
    assert stored[1].root_hash == root_hash(leaves[:10])
    assert log.checkpoint_sync().tree_size == 12
    assert log.checkpoint_sync() is None  # nothing new: no duplicate checkpoint
    result = verify_log(log)
    assert result.ok and result.checked == 12 and result.checkpoints == 3


def test_checkpoints_verify_with_the_printed_public_key(data_dir):
    log = _filled(data_dir, n=5, every=5)
    out = _cli("audit", "public-key", "--data-dir", str(data_dir))
    assert out.returncode == 0
    key = base64.b64decode(out.stdout.strip())
    from gateway.audit.checkpoint import verify_checkpoint
    verify_checkpoint(Checkpoint.from_dict(log.checkpoints()[0][0]), key)


# -- tampering: each fails with a precise message ---------------------------

def test_edited_record_is_named(data_dir):
    log = _filled(data_dir)
    row = log.records()[6]
    row.pop("seq")
    row["caller"] = "someone-else"
    _sql(data_dir, "UPDATE audit SET record = ? WHERE seq = 7", json.dumps(row))
    result = verify_log(log)
    assert not result.ok and result.seq == 7 and "record seq 7" in result.problem and "altered" in result.problem


def test_edit_with_the_chain_recomputed_is_caught_by_the_signed_checkpoint(data_dir):
    log = _filled(data_dir, n=12, every=5)
    db = sqlite3.connect(data_dir / "audit.sqlite")
    rows = db.execute("SELECT seq, record, prev_hash FROM audit ORDER BY seq").fetchall()
    prev = rows[6][2]
    for seq, raw, _ in rows[6:]:
        data = json.loads(raw)
        if seq == 7:
            data["vendor"] = "innocent"
            db.execute("UPDATE audit SET vendor = ? WHERE seq = 7", (data["vendor"],))  # the filter column too
        text = canonical_json(data)
        digest = chain_hash(prev, text)
        db.execute("UPDATE audit SET record = ?, prev_hash = ?, hash = ? WHERE seq = ?", (text.decode(), prev, digest, seq))
        prev = digest
    db.commit()
    result = verify_log(log)
    assert not result.ok and result.seq == 6
    assert "signed checkpoint at size 10: one of seq 6..10" in result.problem


def test_deleted_record_is_named(data_dir):
    log = _filled(data_dir)
    _sql(data_dir, "DELETE FROM audit WHERE seq = 4")
    result = verify_log(log)
    assert not result.ok and result.seq == 4 and result.problem.startswith("record seq 4 is missing")


def test_reordered_records_are_named(data_dir):
    log = _filled(data_dir)
    db = sqlite3.connect(data_dir / "audit.sqlite")
    a = db.execute("SELECT id, record, prev_hash, hash FROM audit WHERE seq = 8").fetchone()
    b = db.execute("SELECT id, record, prev_hash, hash FROM audit WHERE seq = 9").fetchone()
    db.execute("UPDATE audit SET id = ?, record = ?, prev_hash = ?, hash = ? WHERE seq = 8", (f"tmp{b[0]}", *b[1:]))
    db.execute("UPDATE audit SET id = ?, record = ?, prev_hash = ?, hash = ? WHERE seq = 9", a)
    db.execute("UPDATE audit SET id = ? WHERE seq = 8", (b[0],))
    db.commit()
    result = verify_log(log)
    assert not result.ok and result.seq == 8 and "does not follow seq 7" in result.problem


def test_truncation_covered_by_a_checkpoint_names_the_missing_range(data_dir):
    log = _filled(data_dir, n=10, every=5)
    _sql(data_dir, "DELETE FROM audit WHERE seq > 7")
    _sql(data_dir, "DELETE FROM audit_head")  # even with the keyed head gone too
    result = verify_log(log)
    assert not result.ok and "head row is missing" in result.problem
    log2 = _filled(data_dir / "b", n=10, every=5)
    _sql(data_dir / "b", "DELETE FROM audit WHERE seq > 7")
    result = verify_log(log2)
    assert not result.ok and result.seq == 8
    assert "records seq 8..10 were deleted (log truncated)" in result.problem


def test_truncation_after_the_newest_checkpoint_is_caught_by_the_keyed_head(data_dir):
    log = _filled(data_dir, n=12, every=5)
    _sql(data_dir, "DELETE FROM audit WHERE seq > 11")
    result = verify_log(log)
    assert not result.ok and "keyed head says seq 12" in result.problem


def test_checkpoint_forged_with_another_key_is_named(data_dir):
    log = _filled(data_dir, n=10, every=5)
    raw = log.checkpoints()[1][0]
    real = Checkpoint.from_dict(raw)
    forger = CheckpointSigner(Ed25519PrivateKey.generate(), real.key_id)
    forged = forger.sign(real.log_id, 10, b"\x11" * 32, real.timestamp)
    _sql(data_dir, "UPDATE audit_checkpoint SET checkpoint = ? WHERE tree_size = 10", json.dumps(forged.to_dict()))
    result = verify_log(log)
    assert not result.ok
    assert f"checkpoint at size 10 (dated {real.timestamp}, key id {real.key_id!r}) has a bad signature" in result.problem
    out = _cli("audit", "verify", "--data-dir", str(data_dir))
    assert out.returncode == 2 and "bad signature" in out.stderr


def test_checkpoint_with_an_edited_root_is_named(data_dir):
    log = _filled(data_dir, n=10, every=5)
    raw = log.checkpoints()[0][0]
    raw["root_hash"] = base64.b64encode(b"\x22" * 32).decode()
    _sql(data_dir, "UPDATE audit_checkpoint SET checkpoint = ? WHERE tree_size = 5", json.dumps(raw))
    result = verify_log(log)
    assert not result.ok and "checkpoint at size 5" in result.problem and "bad signature" in result.problem


def test_deleted_newest_checkpoint_is_caught(data_dir):
    log = _filled(data_dir, n=10, every=5)
    _sql(data_dir, "DELETE FROM audit_checkpoint WHERE tree_size = 10")
    result = verify_log(log)
    assert not result.ok and "a checkpoint was deleted" in result.problem


# -- inclusion proofs, checked offline ---------------------------------------

def test_prove_and_verify_proof_offline_with_the_public_key(data_dir, tmp_path):
    log = _filled(data_dir, n=13, every=5)
    target = log.records()[11]
    bundle_file = tmp_path / "bundle.json"
    out = _cli("audit", "prove", target["id"], "--out", str(bundle_file), "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    bundle = json.loads(bundle_file.read_text())
    assert bundle["leaf_index"] == 11 and bundle["tree_size"] == 13  # a new checkpoint was signed to cover it
    assert "seq" not in bundle["record"] and bundle["record"]["id"] == target["id"]
    key = _cli("audit", "public-key", "--data-dir", str(data_dir)).stdout.strip()
    (tmp_path / "key.txt").write_text(key + "\n")
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    for key_arg in (key, str(tmp_path / "key.txt")):
        ok = _cli("audit", "verify-proof", str(bundle_file), "--public-key", key_arg, cwd=elsewhere)
        assert ok.returncode == 0 and "proof valid" in ok.stdout and "leaf 11" in ok.stdout
        assert "WARNING" not in ok.stderr
    assert list(elsewhere.iterdir()) == []  # no data dir, no database was needed or created
    unkeyed = _cli("audit", "verify-proof", str(bundle_file), cwd=elsewhere)
    assert unkeyed.returncode == 0 and "WARNING: no --public-key" in unkeyed.stderr


def test_verify_proof_rejects_an_altered_record_and_a_foreign_key(data_dir, tmp_path):
    log = _filled(data_dir, n=6, every=5)
    bundle = prove(log, log.records()[2]["id"])
    altered = json.loads(bundle.to_json())
    altered["record"]["vendor"] = "other"
    (tmp_path / "altered.json").write_text(json.dumps(altered))
    key = _cli("audit", "public-key", "--data-dir", str(data_dir)).stdout.strip()
    out = _cli("audit", "verify-proof", str(tmp_path / "altered.json"), "--public-key", key)
    assert out.returncode == 2 and "PROOF INVALID: record is not at index 2" in out.stderr
    (tmp_path / "good.json").write_text(bundle.to_json())
    foreign = base64.b64encode(CheckpointSigner(Ed25519PrivateKey.generate(), "k1").public_key).decode()
    out = _cli("audit", "verify-proof", str(tmp_path / "good.json"), "--public-key", foreign)
    assert out.returncode == 2 and "not the trusted public key" in out.stderr


def test_prove_unknown_record_fails_clearly(data_dir):
    _filled(data_dir, n=2)
    out = _cli("audit", "prove", "nope", "--data-dir", str(data_dir))
    assert out.returncode == 2 and "no record with id 'nope'" in out.stderr


# -- retention ----------------------------------------------------------------

def test_pruning_keeps_the_rest_verifiable_and_provable(data_dir):
    log = _log(data_dir, every=4)
    old = [log.append_sync(make_record("old", age_days=500 - i)) for i in range(11)]
    early = prove(log, log.records()[9]["id"])  # an auditor kept this bundle before pruning
    for _ in range(6):
        log.append_sync(make_record("new", age_days=1))
    assert old[-1] == 11
    result = prune(log, 400)
    assert (result.pruned, result.pruned_total, result.kept) == (11, 11, 6)
    assert [r["caller"] for r in log.records()] == ["new"] * 6
    verified = verify_log(log)
    assert verified.ok and verified.checked == 6 and verified.pruned == 11 and verified.checkpoints >= 4
    kept = prove(log, log.records()[0]["id"])
    assert kept.leaf_index == 11
    verify_bundle(kept, public_key_for(_keys(data_dir)))
    verify_bundle(early, public_key_for(_keys(data_dir)))  # still valid: its checkpoint is kept and consistent
    with pytest.raises(AuditLogError, match="pruned by retention"):
        prove(log, early.record["id"])
    cli = _cli("audit", "verify", "--data-dir", str(data_dir))
    assert cli.returncode == 0 and "seq 1..11 pruned by retention" in cli.stdout


def test_pruning_twice_and_tampering_after_pruning(data_dir):
    log = _log(data_dir, every=3)
    for i in range(20):
        log.append_sync(make_record(f"r{i}", age_days=595 - 10 * i))  # ages 595, 585, ... 405
    for i in range(5):
        log.append_sync(make_record(f"n{i}", age_days=300 - 10 * i))
    assert prune(log, 500).pruned_total == 10
    assert verify_log(log).ok
    assert prune(log, 400).pruned_total == 20
    assert prune(log, 400).pruned == 0
    assert verify_log(log).ok
    _sql(data_dir, "UPDATE audit SET record = replace(record, 'n2', 'x2') WHERE seq = 23")
    result = verify_log(log)
    assert not result.ok and result.seq == 23


def test_a_lost_consistency_proof_for_pruned_checkpoints_is_caught(data_dir):
    log = _log(data_dir, every=3)
    for i in range(9):
        log.append_sync(make_record(f"r{i}", age_days=500 if i < 6 else 0))
    prune(log, 400)
    _sql(data_dir, "UPDATE audit_checkpoint SET proof = NULL WHERE tree_size = 6")
    result = verify_log(log)
    assert not result.ok and "no consistency proof to the checkpoint at size 6" in result.problem


def test_prune_cli_uses_the_config_retention(tmp_path, upstream, write_config):
    cfg = write_config(upstream.url, top_extra="audit:\n  retention_days: 30\n  checkpoint_every_records: 2\n")
    data = tmp_path / "data"
    log = _log(data, every=2)
    for age in (40, 35, 31, 5):
        log.append_sync(make_record(age_days=age))
    out = _cli("audit", "prune", "--config", str(cfg))
    assert out.returncode == 0 and "pruned 3 record(s) older than 30 days" in out.stdout, out.stderr
    assert _cli("audit", "verify", "--config", str(cfg)).returncode == 0


async def test_gateway_prunes_at_start_up(upstream, write_config, start_gateway, tmp_path):
    import asyncio

    cfg = write_config(upstream.url, top_extra="audit:\n  retention_days: 400\n  checkpoint_every_records: 2\n")
    log = _log(tmp_path / "data", every=2)
    for age in (500, 450, 10):
        log.append_sync(make_record(age_days=age))
    await start_gateway(cfg)
    for _ in range(100):
        if len(_log(tmp_path / "data").records()) == 1:
            break
        await asyncio.sleep(0.05)
    check = _log(tmp_path / "data")
    assert [r["ts"] for r in check.records()] == [log.records()[-1]["ts"]]
    assert verify_log(check).ok


# -- config ---------------------------------------------------------------------

def test_audit_config_rejects_a_non_postgres_dsn_and_unknown_keys(upstream, write_config):
    from gateway.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="postgresql://"):
        load_config(write_config(upstream.url, top_extra="audit:\n  dsn: mysql://x\n"))
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(write_config(upstream.url, top_extra="audit:\n  keep_days: 3\n"))


# -- several writers on one PostgreSQL log -------------------------------------

def test_three_processes_append_to_one_postgres_log_and_it_verifies(pg_dsn, tmp_path):
    master = base64.b64encode(b"\x07" * 32).decode()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=write_records, args=(pg_dsn, str(tmp_path / f"gw{i}"), master, f"gw{i}", 100, barrier))
             for i in range(3)]
    keys = LocalKeyProvider(tmp_path / "keys.json", env={"VENDORGATE_MASTER_KEY": master})
    log = AuditLog.in_data_dir(tmp_path, keys, pg_dsn)
    for p in procs:
        p.start()
    live_checks = []
    while any(p.is_alive() for p in procs):
        live_checks.append(verify_log(log))  # a log being written verifies at every moment
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert live_checks and all(r.ok for r in live_checks), [r.problem for r in live_checks if not r.ok][:1]
    callers = [r["caller"] for r in log.records()]
    assert sorted(callers) == sorted(f"gw{g}-{i}" for g in range(3) for i in range(100))
    writers = [c.split("-")[0] for c in callers]
    assert sum(a != b for a, b in zip(writers, writers[1:])) > 2  # the writers really interleaved
    result = verify_log(log)
    assert result.ok and result.checked == 300 and result.latest_checkpoint == 300, result.problem
    assert result.checkpoints > 3
    assert prove(log, log.records()[100]["id"]).tree_size == 300


async def test_gateway_writes_its_audit_log_to_postgres(pg_dsn, gateway_on_pg):
    import httpx

    gw, cfg = gateway_on_pg
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(3):
            r = await client.post(gw.url + "/acme/v1/x", json={"note": "hello"}, headers={"X-Vendorgate-Caller": f"c{i}"})
            assert r.status_code == 200
    await gw.runner.cleanup()  # shutdown signs the final checkpoint
    out = _cli("audit", "verify", "--config", str(cfg))
    assert out.returncode == 0 and "3 record(s) verified against 1 signed checkpoint(s)" in out.stdout, out.stderr
    assert not (gw.data_dir / "audit.sqlite").exists()


@pytest.fixture
async def gateway_on_pg(pg_dsn, upstream, write_config, start_gateway):
    cfg = write_config(upstream.url, top_extra=f"audit:\n  dsn: \"{pg_dsn}\"\n")
    return await start_gateway(cfg), cfg


# -- shutdown and raw values -----------------------------------------------------

async def test_requests_cut_off_by_shutdown_are_recorded_and_checkpointed(upstream, write_config, engine):
    import asyncio

    import httpx
    from aiohttp import web
    from support import free_port

    from gateway.app.server import build_app
    from gateway.config import load_config

    async def slow(request, body):
        await asyncio.sleep(3)
        return web.json_response({"ok": True})

    upstream.handler = slow
    settings = load_config(write_config(upstream.url))
    runner = web.AppRunner(build_app(settings, engine), access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with httpx.AsyncClient(timeout=30) as client:
        calls = [asyncio.create_task(client.post(f"http://127.0.0.1:{port}/acme/v1/x", json={"n": i})) for i in range(5)]
        while len(upstream.received) < 5:
            await asyncio.sleep(0.02)
        await runner.cleanup()
        await asyncio.gather(*calls, return_exceptions=True)
    log = _log(settings.data_dir)
    assert len(log.records()) == 5
    result = verify_log(log)
    assert result.ok and result.latest_checkpoint == 5


async def test_proof_bundles_carry_no_raw_value(gateway):
    import httpx
    from support import EMAIL, SENSITIVE, payload

    async with httpx.AsyncClient(timeout=60) as client:
        await client.post(gateway.url + f"/acme/v1/items/{EMAIL}", json=payload())
    await wait_for_records(gateway, 1)
    record_id = _log(gateway.data_dir).records()[0]["id"]
    out = _cli("audit", "prove", record_id, "--data-dir", str(gateway.data_dir))
    assert out.returncode == 0 and '"findings"' in out.stdout
    for value in SENSITIVE + ["john.smith", "8841", "IOSFODNN7"]:
        assert value not in out.stdout and value not in out.stderr
