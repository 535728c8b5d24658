"""Retention reaches past the audit log: old exposure-ledger rows, delivered spool
records and the spools of sinks no longer configured go too; what is kept still verifies."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from datetime import UTC, datetime, timedelta

from support import TcpReceiver, free_port, load_with_an_outage, make_record, once_in_order, user_env, vendorgate

from gateway.audit import AuditLog
from gateway.audit.ledger import Exposure, ExposureLedger, RequestMeta
from gateway.audit.schedule import prune_spools
from gateway.audit.settings import SyslogSink
from gateway.audit.sinks import SinkHub, Spool
from gateway.keys import LocalKeyProvider

_cli = functools.partial(vendorgate, env=user_env())
OLD, NEW = "old.customer@example.com", "new.customer@example.com"


def fill(data_dir) -> None:
    """Audit records and ledger rows 500 and 450 days old, and one from today."""
    keys = LocalKeyProvider.in_data_dir(data_dir)
    log = AuditLog.in_data_dir(data_dir, keys, checkpoint_every=2)
    ledger = ExposureLedger.in_data_dir(data_dir, keys)
    for age, value in ((500, OLD), (450, OLD), (0, NEW)):
        record = make_record(age_days=age)
        log.append_sync(record)
        ledger.add_sync(RequestMeta(record.ts, record.request_id, record.id, "svc", "acme"),
                        [Exposure("EMAIL_ADDRESS", "clear", value)])
    log.checkpoint_sync()


def ledger_values(data_dir) -> dict[str, int]:
    ledger = ExposureLedger.in_data_dir(data_dir, LocalKeyProvider.in_data_dir(data_dir))
    return {v: len(ledger.who_saw(v)) for v in (OLD, NEW)}


def test_audit_prune_removes_old_ledger_rows_and_the_rest_verifies(tmp_path):
    data = tmp_path / "data"
    fill(data)
    assert ledger_values(data) == {OLD: 2, NEW: 1}
    out = _cli("audit", "prune", "--days", "400", "--data-dir", str(data))
    assert out.returncode == 0, out.stderr
    assert "pruned 2 record(s) older than 400 days" in out.stdout
    assert "exposure ledger: 2 row(s) pruned" in out.stdout
    assert ledger_values(data) == {OLD: 0, NEW: 1}
    assert _cli("audit", "who-saw", OLD, "--data-dir", str(data)).returncode == 1
    assert _cli("audit", "verify", "--data-dir", str(data)).returncode == 0


async def test_gateway_retention_prunes_the_ledger_at_start_up(upstream, write_config, start_gateway, tmp_path):
    cfg = write_config(upstream.url, top_extra="audit:\n  retention_days: 400\n")
    fill(tmp_path / "data")
    await start_gateway(cfg)
    for _ in range(200):
        if ledger_values(tmp_path / "data")[OLD] == 0:
            break
        await asyncio.sleep(0.05)
    assert ledger_values(tmp_path / "data") == {OLD: 0, NEW: 1}


def test_spool_cuts_off_its_delivered_part_and_keeps_the_rest_in_order(tmp_path):
    spool = Spool(tmp_path, "s")
    spool.compact_at = 30
    lines = [f'{{"id": "r{i:02d}"}}'.encode() for i in range(10)]
    for line in lines:
        spool.append(line)
    batch = spool.read(0, 2)
    assert spool.commit(batch[-1][1]) == batch[-1][1]  # under compact_at: only the offset moves
    batch = spool.read(batch[-1][1], 2)
    assert spool.commit(batch[-1][1]) == 0  # past it: the delivered part is cut off
    assert spool.committed() == 0
    assert [line for line, _ in spool.read(0, 100)] == lines[4:]
    spool.append(b'{"id": "r10"}')
    assert [line for line, _ in spool.read(0, 100)][-1] == b'{"id": "r10"}'


async def test_records_arrive_in_order_while_the_spool_is_cut_off_under_load(tmp_path, monkeypatch):
    cuts = []
    commit = Spool.commit

    def counting_commit(self, offset):
        size = self.path.stat().st_size
        new = commit(self, offset)
        if new == 0 and 0 < offset < size:
            cuts.append(offset)
        return new

    monkeypatch.setattr(Spool, "commit", counting_commit)
    monkeypatch.setattr(Spool, "compact_at", 4000)
    receiver = TcpReceiver(free_port())
    await receiver.start()
    hub = SinkHub([SyslogSink(type="syslog", host="127.0.0.1", port=receiver.port, protocol="tcp",
                              confirm_seconds=0.2, batch_size=5)], tmp_path / "spool")
    sent = await load_with_an_outage(hub, receiver)
    assert once_in_order(receiver.got) == sent
    assert cuts, "the delivered part was never cut off"
    assert (tmp_path / "spool" / "syslog.jsonl").read_bytes() == b""
    await receiver.stop()


def test_prune_removes_old_spools_of_unconfigured_sinks_only(tmp_path):
    spool_dir = tmp_path / "spool"
    old = time.time() - 500 * 86400
    for name in ("syslog", "gone", "recent"):
        Spool(spool_dir, name).append(b'{"id": "x"}')
        (spool_dir / f"{name}.offset").write_text("0")
    for name in ("syslog", "gone"):
        os.utime(spool_dir / f"{name}.jsonl", (old, old))
    assert prune_spools(spool_dir, 400, {"syslog"}) == ["gone"]
    assert sorted(p.name for p in spool_dir.iterdir()) == ["recent.jsonl", "recent.offset", "syslog.jsonl",
                                                           "syslog.offset"]


def test_prune_cli_with_a_config_drops_unconfigured_spools(tmp_path, upstream, write_config):
    cfg = write_config(upstream.url, top_extra="audit:\n  retention_days: 400\n")
    fill(tmp_path / "data")
    Spool(tmp_path / "data" / "spool", "gone").append(b'{"id": "x"}')
    old = (datetime.now(UTC) - timedelta(days=401)).timestamp()
    os.utime(tmp_path / "data" / "spool" / "gone.jsonl", (old, old))
    out = _cli("audit", "prune", "--config", str(cfg))
    assert out.returncode == 0 and "removed the spools of unconfigured sinks: gone" in out.stdout, out.stderr
    assert not (tmp_path / "data" / "spool" / "gone.jsonl").exists()


def test_ledger_rows_of_a_record_the_log_keeps_are_kept_and_verify(tmp_path):
    """An old record the log cannot prune yet (a newer one precedes it, e.g. clocks of two instances)
    keeps its ledger rows, which its lineage digest binds: verify still passes after pruning."""
    data = tmp_path / "data"
    keys = LocalKeyProvider.in_data_dir(data)
    log = AuditLog.in_data_dir(data, keys)
    ledger = ExposureLedger.in_data_dir(data, keys)
    for age, value in ((0, NEW), (500, OLD)):  # seq 1 is new, seq 2 is old: nothing before seq 1 to prune
        record = make_record(age_days=age)
        lineage = ledger.lineage(RequestMeta(record.ts, record.request_id, record.id, "svc", "acme"),
                                 [Exposure("EMAIL_ADDRESS", "clear", value)])
        record.lineage = lineage.digest
        log.append_sync(record)
        ledger.add_sync(lineage)
    log.checkpoint_sync()
    log.db.close()
    out = _cli("audit", "prune", "--days", "400", "--data-dir", str(data))
    assert out.returncode == 0 and "exposure ledger: 0 row(s) pruned" in out.stdout, out.stdout + out.stderr
    assert ledger_values(data) == {OLD: 1, NEW: 1}
    out = _cli("audit", "verify", "--data-dir", str(data))
    assert out.returncode == 0 and "2 row(s) of 2 record(s) match" in out.stdout, out.stdout + out.stderr
