"""Keys and operator errors (issue 12, parts 4 and 5): the commands as an operator runs them.
A missing key next to existing state, a corrupt key file, a busy port, an unwritable data dir and
a read-only copy of the log each give one line naming the file or address and what to do, no
traceback (`--debug` shows it), and read-only commands never write."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from support import REPO, free_port

from gateway.audit import AuditLog, AuditRecord
from gateway.keys import LocalKeyProvider


def vg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip() and "PyTorch was not found" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def make_log(data_dir: Path, n: int = 3) -> None:
    log = AuditLog.in_data_dir(data_dir, LocalKeyProvider.in_data_dir(data_dir))
    for i in range(n):
        log.append_sync(AuditRecord(id=f"r{i}", ts="2026-01-01T00:00:00.000+00:00", request_id=f"q{i}",
                                    caller="billing-svc", vendor="acme", method="POST", path="/v1", decision="forwarded",
                                    status=200))
    log.checkpoint_sync()
    log.db.close()


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def config(tmp_path: Path, listen: str = "", data_dir: str = "data") -> Path:
    (tmp_path / "policy.yaml").write_text("name: t\ndetect: all\ndefault_action: redact\n")
    cfg = tmp_path / "vendorgate.yaml"
    cfg.write_text(f'listen: "{listen or f"127.0.0.1:{free_port()}"}"\ndata_dir: {data_dir}\n'
                   'detection: {workers: 1}\nvendors:\n  acme:\n    upstream: "http://127.0.0.1:9"\n    policy: policy.yaml\n')
    return cfg


@contextmanager
def immutable(*paths: Path):
    """Unwritable even for root (the tests run as root): chattr +i."""
    done = []
    try:
        for p in paths:
            if subprocess.run(["chattr", "+i", str(p)], capture_output=True).returncode != 0:
                pytest.skip("chattr +i is not available here")
            done.append(p)
        yield
    finally:
        for p in reversed(done):
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)


def test_read_only_commands_never_write_not_even_a_key(tmp_path):
    data = tmp_path / "data"
    make_log(data)
    before = snapshot(data)
    for args in (("audit", "list"), ("audit", "verify"), ("audit", "list", "--json"), ("keys", "list"),
                 ("audit", "public-key")):
        out = vg(*args, "--data-dir", str(data))
        assert out.returncode == 0, (args, out.stderr)
    assert snapshot(data) == before
    (data / "keys.json").unlink()
    before = snapshot(data)
    for args in (("audit", "list"), ("audit", "verify"), ("audit", "public-key"), ("keys", "rotate")):
        line = one_line_error(vg(*args, "--data-dir", str(data)))
        assert f"{data} holds an audit log (audit.sqlite) but no key file keys.json: restore {data / 'keys.json'}" \
            in line, line
    assert snapshot(data) == before and not (data / "keys.json").exists()


def test_a_data_dir_with_state_but_no_key_refuses_to_start_and_keys_init_needs_force(tmp_path):
    cfg = config(tmp_path)
    data = tmp_path / "data"
    make_log(data)
    (data / "keys.json").unlink()
    line = one_line_error(vg("serve", "--config", str(cfg)))
    assert "holds an audit log (audit.sqlite) but no key file keys.json: restore" in line
    assert not (data / "keys.json").exists()
    refused = vg("keys", "init", "--config", str(cfg))
    assert refused.returncode == 2 and "restore keys.json from your backup" in refused.stderr
    assert not (data / "keys.json").exists()
    forced = vg("keys", "init", "--force", "--config", str(cfg))
    assert forced.returncode == 0 and (data / "keys.json").exists(), forced.stderr
    assert vg("keys", "init", "--config", str(cfg)).returncode == 2  # never over an existing key
    fresh = tmp_path / "fresh"
    assert vg("keys", "init", "--data-dir", str(fresh)).returncode == 0
    assert oct((fresh / "keys.json").stat().st_mode & 0o777) == "0o600"


def test_a_corrupt_key_file_is_one_line_and_debug_shows_the_traceback(tmp_path):
    cfg = config(tmp_path)
    data = tmp_path / "data"
    make_log(data)
    (data / "keys.json").write_text('{"current": "k1", "keys": {"k1": ')
    for args in (("serve", "--config", str(cfg)), ("audit", "list", "--config", str(cfg))):
        line = one_line_error(vg(*args))
        assert f"key file {data / 'keys.json'} is corrupt" in line and "restore it from your backup" in line
    debug = vg("--debug", "audit", "list", "--config", str(cfg))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_busy_port_is_one_line_naming_the_address_before_the_workers_start(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        cfg = config(tmp_path, listen=listen)
        out = vg("serve", "--config", str(cfg), timeout=60)
    line = one_line_error(out)
    assert f"cannot listen on {listen} (listen): the address is already in use" in line and str(cfg) in line
    assert "starting detection workers" not in out.stdout


def test_an_unwritable_data_dir_is_one_line(tmp_path):
    cfg = config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    with immutable(data):
        line = one_line_error(vg("serve", "--config", str(cfg)))
    assert f"cannot write key file {data / 'keys.json'}" in line and "writable" in line


def test_audit_verify_and_list_work_on_a_read_only_copy_of_the_log(tmp_path):
    make_log(tmp_path / "data")
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "data", copy)
    files = sorted(copy.iterdir())
    with immutable(*files, copy):
        verify = vg("audit", "verify", "--data-dir", str(copy))
        listing = vg("audit", "list", "--data-dir", str(copy))
        prune = vg("audit", "prune", "--days", "1", "--data-dir", str(copy))
    assert verify.returncode == 0 and "3 record(s) verified" in verify.stdout, verify.stderr
    assert listing.returncode == 0 and "3 record(s)" in listing.stdout
    line = one_line_error(prune)  # a command that must write says so
    assert str(copy) in line and ("read-only" in line or "writable" in line), line
