"""The audit log at rest (issue 14): the columns commands filter on are covered by verify, a deleted row
does not stop proofs of the rest, prune refuses nonsense, and checkpoints are anchored outside the database."""

from __future__ import annotations

import functools
import json
import shutil
import sqlite3

import pytest
from support import make_record, user_env, vendorgate

from gateway.audit import AuditLog, AuditLogError, verify_log
from gateway.audit.checkpoint import public_key_for, verify_bundle
from gateway.audit.proofs import prove, prune
from gateway.audit.schedule import open_audit
from gateway.audit.settings import AuditConfig
from gateway.keys import LocalKeyProvider

_cli = functools.partial(vendorgate, env=user_env())


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


def _log(data_dir, every=5, read_only=False, **audit) -> AuditLog:
    """The log as the gateway and the CLI open it: anchored in <data_dir>/anchor unless configured."""
    return open_audit(data_dir, LocalKeyProvider.in_data_dir(data_dir),
                      AuditConfig(checkpoint_every_records=every, **audit), read_only)


def _roll_back(data_dir, backup) -> None:
    """Put an older copy of the database (taken with `_backup`) in place, as an insider restoring a backup would."""
    for suffix in ("-wal", "-shm"):
        (data_dir / f"audit.sqlite{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, data_dir / "audit.sqlite")


def _backup(data_dir, backup) -> None:
    src, dst = sqlite3.connect(data_dir / "audit.sqlite"), sqlite3.connect(backup)
    src.backup(dst)
    src.close()
    dst.close()


def _filled(data_dir, n=12, every=5) -> AuditLog:
    log = _log(data_dir, every)
    for i in range(n):
        log.append_sync(make_record(f"svc-{i}", vendor="llm" if i % 2 else "acme"))
    return log


def _sql(data_dir, sql, *args):
    db = sqlite3.connect(data_dir / "audit.sqlite")
    db.execute(sql, args)
    db.commit()
    db.close()


# -- the filter columns are covered by verify -----------------------------------------

@pytest.mark.parametrize("column, value", [("vendor", "acme"), ("ts", "1999-01-01T00:00:00.000+00:00")])
def test_editing_a_filter_column_fails_verify_naming_the_record(data_dir, column, value):
    log = _filled(data_dir)
    rid = log.records()[3]["id"]
    assert log.records()[3]["vendor"] == "llm"
    _sql(data_dir, f"UPDATE audit SET {column} = ? WHERE seq = 4", value)
    result = verify_log(log)
    assert not result.ok and result.seq == 4 and result.record_id == rid
    assert f"{column} column" in result.problem
    out = _cli("audit", "verify", "--data-dir", str(data_dir))
    assert out.returncode == 2 and "seq 4" in out.stderr and rid in out.stderr


def test_vendor_filter_edit_that_hides_requests_is_caught(data_dir):
    log = _filled(data_dir)
    assert len(log.records(vendor="llm")) == 6
    _sql(data_dir, "UPDATE audit SET vendor = 'other' WHERE vendor = 'llm'")
    assert log.records(vendor="llm") == []  # what `audit vendor llm` and reports would then see
    result = verify_log(log)
    assert not result.ok and result.seq == 2


# -- prove after a deleted row -----------------------------------------------------------

def test_prove_after_a_deleted_row_still_proves_the_records_before_it(data_dir):
    log = _filled(data_dir, n=12, every=5)  # checkpoints at 5 and 10
    records = log.records()
    _sql(data_dir, "DELETE FROM audit WHERE seq = 8")
    key = public_key_for(LocalKeyProvider.in_data_dir(data_dir))
    for r in records[:5]:
        bundle = prove(log, r["id"])
        assert bundle.tree_size == 5
        verify_bundle(bundle, key)


def test_prove_after_a_deleted_row_names_the_broken_range(data_dir):
    log = _filled(data_dir, n=12, every=5)
    records = log.records()
    _sql(data_dir, "DELETE FROM audit WHERE seq = 8")
    for r in records[5:7] + records[8:]:  # seq 6, 7 (no checkpoint between 5 and the gap), 9..12
        with pytest.raises(AuditLogError) as info:
            prove(log, r["id"])
        assert "seq 8 is missing" in str(info.value)
        assert "seq 1..5 can still be proven" in str(info.value)
    out = _cli("audit", "prove", records[10]["id"], "--data-dir", str(data_dir))
    assert out.returncode == 2 and "seq 8 is missing" in out.stderr
    ok = _cli("audit", "prove", records[1]["id"], "--data-dir", str(data_dir))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["leaf_index"] == 1


# -- prune's argument ----------------------------------------------------------------------

def test_prune_with_negative_days_is_an_error_and_prunes_nothing(data_dir):
    _filled(data_dir, n=6)
    out = _cli("audit", "prune", "--days", "-5", "--data-dir", str(data_dir))
    assert out.returncode == 2 and "--days" in out.stderr
    assert len(_log(data_dir).records()) == 6
    with pytest.raises(ValueError):
        prune(_log(data_dir), -5)


def test_prune_days_zero_says_it_prunes_everything_and_asks(data_dir):
    _filled(data_dir, n=6)
    out = _cli("audit", "prune", "--days", "0", "--data-dir", str(data_dir), stdin="n\n")
    assert out.returncode == 1, out.stderr
    assert "every record" in out.stdout + out.stderr
    assert len(_log(data_dir).records()) == 6
    out = _cli("audit", "prune", "--days", "0", "--data-dir", str(data_dir), stdin="")  # no answer: no
    assert out.returncode == 1 and len(_log(data_dir).records()) == 6
    out = _cli("audit", "prune", "--days", "0", "--data-dir", str(data_dir), stdin="yes\n")
    assert out.returncode == 0, out.stderr
    assert _log(data_dir).records() == []
    assert verify_log(_log(data_dir)).ok


def test_prune_days_zero_with_yes_does_not_ask(data_dir):
    _filled(data_dir, n=6)
    out = _cli("audit", "prune", "--days", "0", "--yes", "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    assert "pruned 6 record(s)" in out.stdout
    assert _log(data_dir).records() == []


# -- checkpoints anchored outside the database -------------------------------------------------

def _anchor_lines(anchor_dir):
    files = sorted(anchor_dir.glob("*.jsonl"))
    assert len(files) == 1
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def test_every_signed_checkpoint_is_appended_to_the_anchor_file(data_dir):
    log = _filled(data_dir, n=12, every=5)
    log.checkpoint_sync()
    sizes = [raw["tree_size"] for raw, _ in log.checkpoints()]
    assert sizes == [5, 10, 12]
    lines = _anchor_lines(data_dir / "anchor")
    assert [line["tree_size"] for line in lines] == sizes
    assert [line for line in lines] == [raw for raw, _ in log.checkpoints()]


def test_rolled_back_database_fails_verify_against_the_anchor(data_dir, tmp_path):
    log = _filled(data_dir, n=12, every=5)
    backup = tmp_path / "backup.sqlite"
    _backup(data_dir, backup)  # an old backup: 12 records, checkpoints 5, 10
    for i in range(5):
        log.append_sync(make_record(f"later-{i}"))  # checkpoint at 15, anchored
    log.db.close()
    _roll_back(data_dir, backup)
    assert verify_log(AuditLog.in_data_dir(data_dir, LocalKeyProvider.in_data_dir(data_dir), read_only=True)).ok
    result = verify_log(_log(data_dir, read_only=True))
    assert not result.ok and "anchored checkpoint at size 15" in result.problem
    out = _cli("audit", "verify", "--data-dir", str(data_dir))
    assert out.returncode == 2 and "anchored checkpoint at size 15" in out.stderr


def test_deleted_checkpoints_fail_verify_against_the_anchor(data_dir):
    log = _filled(data_dir, n=12, every=5)
    _sql(data_dir, "DELETE FROM audit_checkpoint")
    _sql(data_dir, "UPDATE audit_head SET checkpoint_size = 0")  # head MAC now fails too, but the anchor says why
    result = verify_log(log)
    assert not result.ok and "anchored checkpoint at size 5" in result.problem


def test_deleted_middle_checkpoint_fails_verify_against_the_anchor(data_dir):
    log = _filled(data_dir, n=12, every=5)
    _sql(data_dir, "DELETE FROM audit_checkpoint WHERE tree_size = 5")
    result = verify_log(log)
    assert not result.ok and "anchored checkpoint at size 5" in result.problem and "missing" in result.problem


def test_checkpoints_missing_from_an_emptied_anchor_are_reported(data_dir):
    """The anchor is only as good as where it lives: an emptied anchor is a warning, not a silent pass
    (a gateway sharing a PostgreSQL log anchors other gateways' checkpoints only at its next one)."""
    log = _filled(data_dir, n=12, every=5)
    for f in (data_dir / "anchor").glob("*.jsonl"):
        f.write_text("")
    result = verify_log(log)
    assert result.ok and len(result.warnings) == 1 and "(sizes 5..10) are not in the anchor file" in result.warnings[0]
    out = _cli("audit", "verify", "--data-dir", str(data_dir))
    assert out.returncode == 0 and "warning: 2 checkpoint(s)" in out.stderr


def test_a_replaced_database_is_refused_at_open(data_dir):
    _filled(data_dir, n=6, every=5)
    for name in ("audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm"):
        (data_dir / name).unlink(missing_ok=True)
    with pytest.raises(AuditLogError, match="the audit database was replaced"):
        _log(data_dir)


def test_an_anchor_that_cannot_be_written_fails_the_append_closed(data_dir):
    log = _filled(data_dir, n=4, every=5)
    blocker = data_dir / "anchor" / "checkpoints.jsonl"
    blocker.mkdir(parents=True)  # unwritable even for root
    with pytest.raises(AuditLogError, match="cannot append the signed checkpoint to the anchor"):
        log.append_sync(make_record("fifth"))
    with pytest.raises(AuditLogError):
        log.append_sync(make_record("sixth"))  # every append fails closed until the anchor takes the checkpoint
    blocker.rmdir()
    log.append_sync(make_record("seventh"))  # writable again: the pending checkpoint is anchored now
    assert [line["tree_size"] for line in _anchor_lines(data_dir / "anchor")] == [5]
    assert verify_log(_log(data_dir, read_only=True)).ok


def test_a_witness_token_variable_that_is_not_set_is_refused(data_dir, monkeypatch):
    monkeypatch.delenv("VG_TEST_WITNESS_TOKEN", raising=False)
    with pytest.raises(AuditLogError, match="VG_TEST_WITNESS_TOKEN is not set"):
        _log(data_dir, witness_url="http://127.0.0.1:9/w", witness_token_env="VG_TEST_WITNESS_TOKEN")


async def test_a_configured_witness_receives_every_signed_checkpoint(data_dir, upstream, monkeypatch):
    monkeypatch.setenv("VG_TEST_WITNESS_TOKEN", "witness-secret-1")
    log = _log(data_dir, every=3, witness_url=upstream.url + "/witness", witness_token_env="VG_TEST_WITNESS_TOKEN")
    for i in range(7):
        await log.append(make_record(f"w{i}"))  # on the writer thread: the witness answers on this loop
    await log.close()
    got = [json.loads(r.body) for r in upstream.received if r.path == "/witness"]
    assert [g["checkpoint"]["tree_size"] for g in got] == [3, 6, 7]
    assert got[0]["text"].startswith("vendorgate-audit/")
    assert {r.headers.get("Authorization") for r in upstream.received} == {"Bearer witness-secret-1"}


def _rolled_back_gateway_config(write_config, upstream, tmp_path):
    """A gateway config whose data dir holds a log rolled back from 15 records to its copy at 10."""
    cfg = write_config(upstream.url, top_extra="audit:\n  checkpoint_every_records: 5\n")
    data = tmp_path / "data"
    log = _filled(data, n=10, every=5)
    backup = tmp_path / "backup.sqlite"
    _backup(data, backup)
    for i in range(5):
        log.append_sync(make_record(f"later-{i}"))
    log.db.close()
    _roll_back(data, backup)
    return cfg


@pytest.mark.slow  # ~25 s: `vendorgate serve` loads the NER model before it opens the audit log
async def test_gateway_refuses_to_start_on_a_rolled_back_log(upstream, write_config, tmp_path):
    cfg = _rolled_back_gateway_config(write_config, upstream, tmp_path)
    out = _cli("serve", "--config", str(cfg), timeout=180)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "anchored checkpoint at size 15" in errors[0], out.stderr
    assert "Traceback" not in out.stderr


async def test_a_refused_start_stops_the_detection_workers_it_had_started(upstream, write_config, tmp_path):
    import multiprocessing

    from aiohttp import web

    from gateway.app.server import RUNTIME_KEY, build_app
    from gateway.config import load_config

    def detection_workers() -> set[int]:  # other tests' engines may be running in this process
        return {p.pid for p in multiprocessing.active_children() if p.name == "vendorgate-detection"}

    before = detection_workers()
    app = build_app(load_config(_rolled_back_gateway_config(write_config, upstream, tmp_path)), detection_workers=1)
    engine = app[RUNTIME_KEY].engine
    runner = web.AppRunner(app, access_log=None)
    with pytest.raises(AuditLogError, match="anchored checkpoint at size 15"):
        await runner.setup()
    assert engine.alive_count() == 0
    assert detection_workers() <= before


async def test_checkpoints_deleted_under_a_running_gateway_turn_readyz_red(upstream, write_config, start_gateway):
    import asyncio

    import httpx

    from gateway.app.server import RUNTIME_KEY

    cfg = write_config(upstream.url, top_extra="audit:\n  checkpoint_every_records: 2\n  checkpoint_every_seconds: 0.2\n")
    gw = await start_gateway(cfg)
    runtime = gw.runner.app[RUNTIME_KEY]
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(3):
            r = await client.post(gw.url + "/acme/v1/x", content=b"hello", headers={"Content-Type": "text/plain"})
            assert r.status_code == 200
    await asyncio.sleep(0.6)
    ok, checks = await runtime.readiness()
    assert ok, checks
    _sql(gw.data_dir, "DELETE FROM audit_checkpoint")
    for _ in range(50):
        ok, checks = await runtime.readiness()
        if not ok:
            break
        await asyncio.sleep(0.1)
    assert not ok and checks["audit_log"].startswith("down (the audit database is behind its anchored checkpoint")
