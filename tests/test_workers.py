"""`vendorgate serve --workers N` (issue 12, "Deploy and scale"): N HTTP processes on one port
under a supervisor, real subprocesses, a real recording vendor, real signals; SQLite stores
shared by several processes; Prometheus multiprocess metrics; no process outlives its parent."""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest
from support import REPO, Served, gone, write_records

from gateway.app.server import event_loop_name
from gateway.app.supervisor import RUN_DIR_PREFIX, shares, sweep_run_dirs
from gateway.audit import AuditLog
from gateway.audit.verify import verify_log
from gateway.cli.serve import loop_factory, run_loop
from gateway.keys import LocalKeyProvider

EMAIL = "john.smith@example.com"
PATTERNS = (REPO / "policies" / "patterns-only.yaml").read_text()


@pytest.fixture
def served(tmp_path, upstream):
    started: list[Served] = []

    def make(workers: int = 2, extra: str = "", policy: str | None = None) -> Served:
        s = Served(tmp_path, upstream.url, extra, args=("--workers", str(workers)), policy=policy, workers=workers)
        started.append(s)
        return s.start()

    yield make
    for s in started:
        s.stop()


def http_workers(gw: Served) -> list[psutil.Process]:
    return [p for p in psutil.Process(gw.proc.pid).children() if "--worker-slot" in p.cmdline()]


def listening_pids(port: int) -> set[int]:
    found = set()
    for p in psutil.process_iter():
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in p.net_connections("tcp")):
                found.add(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


async def _loop_name() -> str:
    return event_loop_name()


def test_serve_runs_on_uvloop_when_installed_and_on_asyncio_without_it(monkeypatch):
    pytest.importorskip("uvloop")
    assert run_loop(_loop_name()) == "uvloop"
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed: import fails
    assert loop_factory() is None
    assert run_loop(_loop_name()) == "asyncio"


def test_detection_workers_are_shared_out_at_least_one_each():
    assert shares(4, 2) == [2, 2] and shares(3, 2) == [2, 1] and shares(1, 3) == [1, 1, 1]


def test_several_processes_appending_to_one_sqlite_audit_log_make_one_verifiable_chain(tmp_path):
    """What --workers N does to the SQLite audit log: each process its own connection, appends racing;
    BEGIN IMMEDIATE around read-head-append-write-head keeps one chain and one tree."""
    master = base64.b64encode(b"\x05" * 32).decode()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=write_records, args=(None, str(tmp_path), master, f"w{i}", 60, barrier))
             for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    keys = LocalKeyProvider(tmp_path / "keys.json", env={"VENDORGATE_MASTER_KEY": master})
    log = AuditLog.in_data_dir(tmp_path, keys, read_only=True)
    callers = [r["caller"] for r in log.records()]
    assert sorted(callers) == sorted(f"w{g}-{i}" for g in range(3) for i in range(60))
    writers = [c.split("-")[0] for c in callers]
    assert sum(a != b for a, b in zip(writers, writers[1:])) > 2, "the writers really interleaved"
    result = verify_log(log)
    assert result.ok and result.checked == 180, result.problem


@pytest.mark.slow
async def test_two_http_processes_share_the_port_one_audit_log_and_one_metrics_page(served, upstream):
    gw = served(2, policy=PATTERNS)
    await gw.ready()
    workers = http_workers(gw)
    assert len(workers) == 2
    assert gw.out.read_text().count("event loop: uvloop") == 2, gw.out.read_text()
    assert listening_pids(gw.port) == {p.pid for p in workers}, "both HTTP processes listen on the one port"
    async with httpx.AsyncClient(timeout=60) as client:
        async def one(i: int) -> int:
            async with httpx.AsyncClient(timeout=60) as own:  # a new connection each: spread by the kernel
                r = await own.post(f"{gw.url}/acme/v1/x", json={"note": f"mail {EMAIL} #{i}"})
                return r.status_code

        codes = await asyncio.gather(*(one(i) for i in range(40)))
        assert codes == [200] * 40
        assert len(upstream.received) == 40 and all(EMAIL.encode() not in r.body for r in upstream.received)
        metrics = (await client.get(f"{gw.admin}/metrics")).text
        total = sum(float(v) for v in re.findall(r'^vendorgate_requests_total\{[^}]*vendor="acme"[^}]*\} (\S+)$',
                                                  metrics, re.M))
        assert total == 40, "the admin listener counts the requests of both processes"
        assert 'vendorgate_detection_workers{state="configured"} 2.0' in metrics
        ready = (await client.get(f"{gw.admin}/readyz")).json()
        assert ready["status"] == "ready" and set(ready["http_workers"]) == {"1", "2"}
        for served_by in {p.pid for p in workers}:
            assert any(w["pid"] == served_by for w in ready["http_workers"].values())
        assert EMAIL not in metrics
    gw.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gw.proc.wait, 90) == 0, gw.err.read_text()
    verify = subprocess.run([sys.executable, "-m", "gateway", "audit", "verify", "--config", str(gw.config)],
                            capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)}, timeout=120)
    assert verify.returncode == 0 and "40 record(s) verified" in verify.stdout, verify.stdout + verify.stderr


@pytest.mark.slow
async def test_a_dead_http_process_is_replaced_and_sigterm_leaves_no_descendant(served):
    gw = served(2)
    await gw.ready()
    first, second = http_workers(gw)
    everyone = gw.children()
    assert len(everyone) >= 4, [p.cmdline() for p in everyone]  # 2 HTTP processes, each with a detection worker
    first.kill()
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(600):
            pids = {p.pid for p in http_workers(gw)}
            if first.pid not in pids and len(pids) == 2 and (await client.get(f"{gw.admin}/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.5)
        ready = (await client.get(f"{gw.admin}/readyz")).json()
    assert ready["status"] == "ready", ready
    assert second.pid in {w["pid"] for w in ready["http_workers"].values()}
    assert first.pid not in {w["pid"] for w in ready["http_workers"].values()}
    assert "restarting it" in gw.err.read_text()
    everyone = gw.children()
    gw.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gw.proc.wait, 90) == 0, gw.err.read_text()
    assert gone(everyone, 5) == [], [p.cmdline() for p in gone(everyone, 0)]


@pytest.mark.slow
async def test_http_processes_and_their_workers_exit_within_seconds_when_the_supervisor_is_killed(served):
    gw = served(2)
    await gw.ready()
    everyone = gw.children()
    assert len(http_workers(gw)) == 2 and len(everyone) >= 4
    run_dirs = set(Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}{gw.proc.pid}-*"))
    assert len(run_dirs) == 1
    gw.proc.kill()
    gw.proc.wait(timeout=10)
    assert gone(everyone, 10) == [], [p.cmdline() for p in gone(everyone, 0)]
    sweep_run_dirs()  # what the next supervisor does first: the dead one's sockets and metric files go
    assert not any(d.exists() for d in run_dirs)


async def test_an_http_process_that_cannot_start_stops_the_whole_gateway(served, tmp_path):
    """Fail closed: a store only the HTTP processes open (here a vault file that is not a database)."""
    data = tmp_path / "data"
    data.mkdir()
    LocalKeyProvider.in_data_dir(data)
    (data / "vault.sqlite3").write_bytes(b"this is not a database" * 100)
    gw = served(2)
    code = await asyncio.to_thread(gw.proc.wait, 240)
    err = gw.err.read_text()
    assert code != 0, err
    assert "token vault" in err and "before it listened" in err, err
    assert "Traceback" not in err


def test_a_busy_port_is_one_line_before_any_http_process_starts(tmp_path, upstream):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        gw = Served(tmp_path, upstream.url, args=("--workers", "2"), workers=2)
        gw.config.write_text(gw.config.read_text().replace(f"127.0.0.1:{gw.port}", f"127.0.0.1:{taken.getsockname()[1]}"))
        started = time.monotonic()
        gw.start()
        try:
            assert gw.proc.wait(timeout=60) == 2
        finally:
            gw.stop()
    err = gw.err.read_text()
    assert err.count("\n") == 1 and err.startswith("error: cannot listen on 127.0.0.1:") and "in use" in err, err
    assert "http worker" not in gw.out.read_text() and time.monotonic() - started < 30
