"""Stop without loss, no orphans, reload (issue 12, part 3): `vendorgate serve` as a real subprocess,
a real recording vendor, real signals; every child process is accounted for."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from support import POLICY, REPO, Served, gone, refused

from gateway.app.auth import CallerKeys

EMAIL = "john.smith@example.com"


@pytest.fixture
def served(tmp_path, upstream):
    started: list[Served] = []

    def make(extra: str = "") -> Served:
        s = Served(tmp_path, upstream.url, extra)
        started.append(s)
        return s.start()

    yield make
    for s in started:
        s.stop()


async def test_sigterm_drains_the_in_flight_request_records_it_and_leaves_no_process(served, upstream):
    async def slow(request, body):
        await asyncio.sleep(3)
        from aiohttp import web
        return web.json_response({"ok": True})

    upstream.handler = slow
    gw = served()
    await gw.ready()
    children = gw.children()
    assert len(children) >= 1  # the detection worker (and multiprocessing's resource tracker)
    async with httpx.AsyncClient(timeout=60) as client:
        in_flight = asyncio.create_task(client.post(f"{gw.url}/acme/v1/x", json={"note": f"mail {EMAIL}"}))
        for _ in range(400):
            if upstream.received:
                break
            await asyncio.sleep(0.05)
        assert upstream.received, "the request never reached the vendor"
        gw.proc.send_signal(signal.SIGTERM)
        for _ in range(40):  # stops accepting while the request is still in flight
            if refused(gw.port):
                break
            await asyncio.sleep(0.05)
        assert refused(gw.port) and not in_flight.done()
        response = await in_flight
    assert response.status_code == 200
    assert await asyncio.to_thread(gw.proc.wait, 60) == 0, gw.err.read_text()
    assert gone(children, 5) == []
    out = gw.out.read_text()
    assert "stopping" in out and "stopped" in out
    listing = subprocess.run([sys.executable, "-m", "gateway", "audit", "list", "--json", "--config", str(gw.config)],
                             capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)}, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert '"decision": "forwarded"' in listing.stdout and len(listing.stdout.splitlines()) == 1
    verify = subprocess.run([sys.executable, "-m", "gateway", "audit", "verify", "--config", str(gw.config)],
                            capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)}, timeout=120)
    assert verify.returncode == 0 and "1 record(s) verified" in verify.stdout, verify.stdout + verify.stderr


async def test_workers_exit_within_seconds_when_the_gateway_is_killed(served):
    gw = served()
    await gw.ready()
    children = gw.children()
    assert children
    workers = [p for p in children if "spawn_main" in " ".join(p.cmdline())]
    assert workers, [p.cmdline() for p in children]
    gw.proc.kill()
    gw.proc.wait(timeout=10)
    assert gone(children, 5) == []


async def test_sighup_reloads_keys_and_policies_and_keeps_the_old_config_on_a_bad_edit(served, tmp_path):
    keys_file = tmp_path / "callers.yaml"
    first = CallerKeys.load(keys_file).add("svc-a", None)
    gw = served("auth: {keys_file: callers.yaml}")
    await gw.ready()
    async with httpx.AsyncClient(timeout=60) as client:
        async def post(key, body=None):
            return await client.post(f"{gw.url}/acme/v1/x", json=body or {"a": 1}, headers={"X-Vendorgate-Key": key})

        async def until(check, what):
            for _ in range(100):
                if await check():
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(what + ": " + gw.err.read_text())

        assert (await post(first)).status_code == 200
        second = CallerKeys.load(keys_file).add("svc-b", ["acme"])
        assert (await post(second)).status_code == 401
        gw.proc.send_signal(signal.SIGHUP)
        await until(lambda: _status(post(second), 200), "the new key was not loaded")

        gw.policy.write_text(POLICY.replace("EMAIL_ADDRESS: {action: mask, keep: 4}", "EMAIL_ADDRESS: block"))
        gw.proc.send_signal(signal.SIGHUP)
        await until(lambda: _status(post(second, {"note": f"mail {EMAIL}"}), 403), "the new policy was not loaded")

        good_policy = gw.policy.read_text()
        gw.policy.write_text(good_policy.replace("US_SSN: hash", "US_SSN: explode"))
        gw.proc.send_signal(signal.SIGHUP)
        await until(lambda: _contains(gw.err, "config reload failed"), "the bad edit was not reported")
        err = gw.err.read_text()
        line = next(n for n, text in enumerate(gw.policy.read_text().splitlines(), 1) if "explode" in text)
        assert f"{gw.policy}:{line}:" in err and "keeping the running config" in err
        assert (await post(second, {"note": f"mail {EMAIL}"})).status_code == 403  # the old (valid) policy runs
        assert (await post(first)).status_code == 200
        assert "Traceback" not in err
        metrics = (await client.get(f"{gw.admin}/metrics")).text
        assert 'vendorgate_config_reloads_total{result="ok"} 2.0' in metrics
        assert 'vendorgate_config_reloads_total{result="failed"} 1.0' in metrics
    for key in (first, second):
        assert key not in gw.err.read_text() + gw.out.read_text()


async def _status(request, code: int) -> bool:
    return (await request).status_code == code


async def _contains(path: Path, text: str) -> bool:
    return text in path.read_text()


async def test_watch_config_reloads_an_edited_keys_file_without_a_signal(served, tmp_path):
    keys_file = tmp_path / "callers.yaml"
    first = CallerKeys.load(keys_file).add("svc-a", None)
    gw = served("auth: {keys_file: callers.yaml}\nwatch_config: true")
    await gw.ready()
    assert "watching the config" in gw.out.read_text()
    async with httpx.AsyncClient(timeout=60) as client:
        async def post(key):
            return await client.post(f"{gw.url}/acme/v1/x", json={"a": 1}, headers={"X-Vendorgate-Key": key})

        assert (await post(first)).status_code == 200
        second = CallerKeys.load(keys_file).add("svc-b", None)
        for _ in range(100):
            if (await post(second)).status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert (await post(second)).status_code == 200, gw.err.read_text()
        CallerKeys.load(keys_file).revoke("svc-a")
        for _ in range(100):
            if (await post(first)).status_code == 401:
                break
            await asyncio.sleep(0.1)
        assert (await post(first)).status_code == 401


def kubelet_volume(folder: Path, files: dict[str, str], generation: int) -> None:
    """Write `files` into `folder` the way the kubelet updates a Secret or ConfigMap volume: a new
    timestamped folder, `..data` swapped to it in one rename, the old folder removed; each file is
    a link through `..data`."""
    import os
    import shutil

    new = folder / f"..2026_12_02_00_00_0{generation}.000"
    new.mkdir()
    for name, text in files.items():
        (new / name).write_text(text)
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(Path("..data") / name)
    old = (folder / "..data").resolve() if (folder / "..data").exists() else None
    (folder / "..data_tmp").symlink_to(new.name)
    os.replace(folder / "..data_tmp", folder / "..data")
    if old is not None:
        shutil.rmtree(old)


async def test_watch_config_reloads_a_keys_file_the_kubelet_swaps(tmp_path, upstream, write_config, start_gateway):
    from gateway.app.server import RUNTIME_KEY

    secret = tmp_path / "vendorgate-callers"   # mounted as a folder, as deploy/kubernetes/deployment.yaml does
    secret.mkdir()
    staging = tmp_path / "staging.yaml"          # the operator's local copy (callers add --keys-file)
    first = CallerKeys.load(staging).add("svc-a", None)
    kubelet_volume(secret, {"callers.yaml": staging.read_text()}, 1)
    gw = await start_gateway(write_config(upstream.url, top_extra=f"auth: {{keys_file: {secret / 'callers.yaml'}}}\n"
                                                                  "watch_config: true"))
    watcher = asyncio.create_task(gw.runner.app[RUNTIME_KEY].watch())
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            async def post(key):
                return await client.post(f"{gw.url}/acme/v1/x", json={"a": 1}, headers={"X-Vendorgate-Key": key})

            assert (await post(first)).status_code == 200
            second = CallerKeys.load(staging).add("svc-b", None)
            assert (await post(second)).status_code == 401
            await asyncio.sleep(0.5)  # the watcher is up
            kubelet_volume(secret, {"callers.yaml": staging.read_text()}, 2)
            for _ in range(100):
                if (await post(second)).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await post(second)).status_code == 200
            assert (await post(first)).status_code == 200
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


def audit_listing(gw) -> list[dict]:
    listing = subprocess.run([sys.executable, "-m", "gateway", "audit", "list", "--json", "--config", str(gw.config)],
                             capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)}, timeout=120)
    assert listing.returncode == 0, listing.stderr
    return [json.loads(line) for line in listing.stdout.splitlines()]


async def test_requests_forwarded_when_the_gateway_is_killed_are_audited_at_its_next_start(served, upstream):
    """The write-ahead journal: kill -9 after forwarding, before the final record; the next start records them."""
    async def hold(request, body):
        await asyncio.sleep(30)
        return web.json_response({"ok": True})

    upstream.handler = hold
    gw = served()
    await gw.ready()
    async with httpx.AsyncClient(timeout=60) as client:
        calls = [asyncio.create_task(client.post(f"{gw.url}/acme/v1/x", json={"note": f"mail {EMAIL}", "n": i}))
                 for i in range(3)]
        for _ in range(400):
            if len(upstream.received) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(upstream.received) == 3, "the requests never reached the vendor"
        gw.stop()  # SIGKILL to the gateway and its workers: no drain, no final records
        answers = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(a, httpx.TransportError) for a in answers), answers
    assert audit_listing(gw) == []  # nothing was recorded after forwarding...
    journal = list((gw.config.parent / "data" / "journal").glob("*.jsonl"))
    assert len(journal) == 1 and EMAIL not in journal[0].read_text()

    upstream.handler = None
    gw.start()
    await gw.ready()  # ...until the next start recovered the journal
    gw.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gw.proc.wait, 60) == 0, gw.err.read_text()
    records = audit_listing(gw)
    assert len(records) == 3 and {r["decision"] for r in records} == {"forwarded"}
    assert all("interrupted" in r["error"] and r["findings"].get("EMAIL_ADDRESS") == 1 for r in records), records
    assert "recovered" in gw.err.read_text() + gw.out.read_text()
    assert not list((gw.config.parent / "data" / "journal").glob("*.jsonl"))  # recovered, and a clean stop
    verify = subprocess.run([sys.executable, "-m", "gateway", "audit", "verify", "--config", str(gw.config)],
                            capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)}, timeout=120)
    assert verify.returncode == 0 and "3 record(s) verified" in verify.stdout, verify.stdout + verify.stderr


async def test_a_disk_that_refuses_writes_fails_requests_closed_and_the_vendor_gets_nothing(served, upstream):
    """`prlimit --fsize`: the journal (and the audit log) cannot grow, so nothing is forwarded unaudited."""
    gw = served()
    await gw.ready()
    async with httpx.AsyncClient(timeout=60) as client:
        assert (await client.post(f"{gw.url}/acme/v1/x", json={"n": 0})).status_code == 200
        subprocess.run(["prlimit", "--pid", str(gw.proc.pid), "--fsize=1:unlimited"], check=True)
        try:
            statuses = [(await client.post(f"{gw.url}/acme/v1/x", json={"note": f"mail {EMAIL}", "n": i})).status_code
                        for i in range(1, 6)]
        finally:
            subprocess.run(["prlimit", "--pid", str(gw.proc.pid), "--fsize=unlimited:unlimited"], check=True)
        assert len(upstream.received) == 1 and all(s >= 500 for s in statuses), statuses
        assert (await client.post(f"{gw.url}/acme/v1/x", json={"n": 6})).status_code == 200  # writes again
    assert len(upstream.received) == 2
    assert EMAIL not in gw.err.read_text() + gw.out.read_text()


async def test_data_files_made_immutable_under_a_running_gateway_forward_nothing(served, upstream):
    """`chattr +i` on every file in the data dir: whether a write fails or the process dies (SIGBUS on
    SQLite's shared memory), no request reaches the vendor without its journaled record."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed")
    gw = served()
    await gw.ready()
    data = gw.config.parent / "data"
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.post(f"{gw.url}/acme/v1/x", json={"n": 0})).status_code == 200
        files = [str(p) for p in data.rglob("*") if p.is_file()]
        if subprocess.run(["chattr", "+i", *files], capture_output=True).returncode != 0:
            pytest.skip("this filesystem or user cannot set the immutable attribute")
        try:
            answers = []
            for i in range(1, 4):
                try:
                    answers.append((await client.post(f"{gw.url}/acme/v1/x", json={"n": i})).status_code)
                except httpx.TransportError as exc:  # the process died: fine, as long as nothing went out
                    answers.append(type(exc).__name__)
        finally:
            subprocess.run(["chattr", "-i", *files], capture_output=True)
    assert len(upstream.received) == 1, answers
    assert all(a == 503 or isinstance(a, str) for a in answers), answers
