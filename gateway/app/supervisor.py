"""`vendorgate serve --workers N`: N HTTP processes on one port, supervised by this one.

Each HTTP process is `python -m gateway serve` with a hidden `--worker-slot`: it binds the
main listener with SO_REUSEPORT (the kernel spreads connections over the N), runs its share
of the detection workers, and opens the same stores. SQLite stores are safe to share: every
write is a BEGIN IMMEDIATE transaction on the file's one write lock, and an audit append
reads the chain head inside that transaction, so appends from N processes form one chain
(tests/test_workers.py verifies it); PostgreSQL and Redis serialise as they do across hosts.

The supervisor holds what must exist once: the key check, the demo vendor, the admin
listener (/metrics aggregates every process through prometheus-client's multiprocess
mode; /readyz is ready when every HTTP process is), and the signals: SIGTERM/SIGINT drain
and stop all, SIGHUP is passed on. An HTTP process that dies is restarted; one that fails
before it ever listened, or dies too often, stops the whole gateway (fail closed). Each
HTTP process gets SIGTERM from the kernel if the supervisor dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.app.demo_vendor import demo_vendor_app
from gateway.app.metrics import CONTENT_TYPE, MULTIPROC_ENV, aggregate, process_exited
from gateway.app.server import (
    StartupError,
    admin_token,
    check_credentials,
    check_port,
    health_routes,
    listeners,
    start_site,
    tls_context,
)
from gateway.config import Settings
from gateway.keys import KeyProviderError, LocalKeyProvider

log = logging.getLogger("vendorgate.supervisor")
RESTARTS_ALLOWED = 5          # within RESTART_WINDOW seconds; one more and the gateway stops (fail closed)
RESTART_WINDOW = 60.0
START_TIMEOUT = 600.0         # loading spaCy in every detection worker on a loaded machine
STOP_GRACE = 30.0             # after drain_seconds, before SIGKILL


RUN_DIR_PREFIX = "vendorgate-supervisor-"


def sweep_run_dirs() -> None:
    """Remove the run dirs (sockets, metric files) of supervisors that died without cleaning up
    (SIGKILL): ours by owner, their pid gone."""
    for folder in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*-*"):
        try:
            pid = int(folder.name[len(RUN_DIR_PREFIX):].split("-", 1)[0])
            if folder.stat().st_uid != os.getuid():
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, OSError):
            continue


def shares(total: int, n: int) -> list[int]:
    """`total` detection workers spread over `n` HTTP processes, at least one each."""
    return [max(1, total // n + (1 if i < total % n else 0)) for i in range(n)]


@dataclass
class Child:
    index: int
    detection_workers: int
    socket: Path
    proc: asyncio.subprocess.Process | None = None
    listening: bool = False
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(self, settings: Settings, n: int, config_arg: str | None, data_dir_arg: str | None):
        self.settings = settings
        self.n = n
        self.config_arg, self.data_dir_arg = config_arg, data_dir_arg
        self.stopping = False
        self.failure: str | None = None
        self.exit_code = 0
        self.done = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()  # watchers and start-up waits: referenced until done
        sweep_run_dirs()
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-"))
        self.metrics_dir = self._metrics_dir()
        total = settings.config.detection.workers or os.cpu_count() or 1
        self.children = [Child(i, w, self.run_dir / f"http-{i}.sock") for i, w in enumerate(shares(total, n))]

    def _metrics_dir(self) -> Path:
        """The operator's PROMETHEUS_MULTIPROC_DIR (emptied, as prometheus-client asks), else our own."""
        given = os.environ.get(MULTIPROC_ENV)
        directory = Path(given) if given else self.run_dir / "metrics"
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return directory

    # -- HTTP processes ------------------------------------------------------------

    def _command(self, child: Child) -> list[str]:
        cmd = [sys.executable, "-m", "gateway", "serve"]
        if self.config_arg:
            cmd += ["--config", self.config_arg]
        if self.data_dir_arg:
            cmd += ["--data-dir", self.data_dir_arg]
        return cmd + ["--worker-slot", f"{child.index},{self.n},{child.detection_workers},{child.socket},{os.getpid()}"]

    async def spawn(self, child: Child) -> None:
        child.listening = False
        child.socket.unlink(missing_ok=True)
        env = {**os.environ, MULTIPROC_ENV: str(self.metrics_dir)}
        child.proc = await asyncio.create_subprocess_exec(*self._command(child), env=env)
        self._keep(self._watch(child, child.proc))

    def _keep(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, child: Child, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        process_exited(str(self.metrics_dir), proc.pid)
        if self.stopping:
            if code != 0 and self.exit_code == 0 and not self.failure:
                self.exit_code = 1
            return
        if not child.listening:
            self.fail(f"http worker {child.index + 1}/{self.n} exited ({code}) before it listened", code or 1)
            return
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW] + [now]
        if len(child.restarts) > RESTARTS_ALLOWED:
            self.fail(f"http worker {child.index + 1}/{self.n} died {len(child.restarts)} times in "
                      f"{RESTART_WINDOW:g}s; stopping the gateway", 1)
            return
        log.error("http worker %d/%d (pid %d) exited with %s; restarting it", child.index + 1, self.n, proc.pid, code)
        await self.spawn(child)
        self._keep(self._await_listening(child, START_TIMEOUT))

    def fail(self, message: str, code: int) -> None:
        if self.failure is None:
            self.failure, self.exit_code = message, code
        self.done.set()

    async def ask(self, child: Child, path: str, timeout: float = 3.0) -> tuple[int, dict]:
        connector = aiohttp.UnixConnector(path=str(child.socket))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"http://worker{path}", timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                return r.status, await r.json()

    async def _await_listening(self, child: Child, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        proc = child.proc
        while time.monotonic() < deadline and proc is child.proc and proc.returncode is None:
            if child.socket.exists():
                try:
                    await self.ask(child, "/healthz", 2.0)
                    child.listening = True
                    return True
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass
            await asyncio.sleep(0.2)
        return False

    def signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.returncode is None:
                try:
                    child.proc.send_signal(signum)
                except ProcessLookupError:
                    pass

    async def stop_all(self) -> None:
        self.stopping = True
        self.signal_all(signal.SIGTERM)
        deadline = self.settings.config.drain_seconds + STOP_GRACE
        procs = [c.proc for c in self.children if c.proc is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), deadline)
        except TimeoutError:
            log.error("http workers still running %gs after SIGTERM: killing them", deadline)
            self.signal_all(signal.SIGKILL)
            await asyncio.gather(*(p.wait() for p in procs))
            self.exit_code = self.exit_code or 1

    # -- admin listener ------------------------------------------------------------

    async def readiness(self) -> tuple[bool, dict]:
        async def one(child: Child) -> dict:
            pid = child.proc.pid if child.proc is not None else None
            if not child.listening:
                return {"pid": pid, "status": "starting"}
            try:
                status, body = await self.ask(child, "/readyz")
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                return {"pid": pid, "status": f"down ({type(exc).__name__})"}
            return {"pid": pid, "status": body.get("status", "?") if status == 200 else "not ready",
                    "checks": body.get("checks", {})}

        found = await asyncio.gather(*(one(c) for c in self.children))
        workers = {str(c.index + 1): f for c, f in zip(self.children, found)}
        ok = not self.stopping and all(f["status"] == "ready" for f in found)
        return ok, workers

    def admin_app(self) -> web.Application:
        token, authorised, refuse = admin_token(self.settings)

        async def metrics(request: web.Request) -> web.Response:
            if token and not authorised(request):
                return refuse()
            body = await asyncio.to_thread(aggregate, str(self.metrics_dir))
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

        async def status(request: web.Request) -> web.Response:
            if not authorised(request):
                return refuse()
            _, workers = await self.readiness()
            first = next((c for c in self.children if c.listening), None)
            body: dict = {}
            if first is not None:
                try:
                    _, body = await self.ask(first, "/status")
                except (aiohttp.ClientError, OSError, TimeoutError):
                    body = {}
            body["http_workers"] = {k: {**v, "restarts": len(c.restarts)}
                                    for (k, v), c in zip(workers.items(), self.children)}
            return web.json_response(body)

        app = web.Application()
        health_routes(app, self.readiness, detail="http_workers")
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/status", status)
        return app

    # -- the whole -----------------------------------------------------------------

    async def run(self) -> int:
        try:
            return await self._run()
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    async def _run(self) -> int:
        settings = self.settings
        for listen, what in listeners(settings):
            check_port(listen, what, settings)
        check_credentials(settings)
        tls_context(settings)
        try:  # once, here: N processes must not each make a new key for a fresh data dir
            LocalKeyProvider.in_data_dir(settings.data_dir)
        except KeyProviderError as exc:
            raise StartupError(str(exc)) from None
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.signal_all(signal.SIGHUP))
        runners: list[web.BaseRunner] = []
        try:
            demo = settings.config.demo_vendor
            if demo is not None:
                runner = web.AppRunner(demo_vendor_app(), access_log=None)
                await runner.setup()
                runners.append(runner)
                await start_site(runner, demo.listen, "demo_vendor.listen", settings)
                print(f"demo vendor listening on http://{demo.listen} (it prints what it receives)", flush=True)
            print(f"starting {self.n} http workers on {settings.config.listen} "
                  f"({', '.join(str(c.detection_workers) for c in self.children)} detection worker(s) each)...",
                  flush=True)
            for child in self.children:
                await self.spawn(child)
            starting = asyncio.gather(*(self._await_listening(c, START_TIMEOUT) for c in self.children))
            waiter = asyncio.create_task(stop.wait())
            failed = asyncio.create_task(self.done.wait())
            await asyncio.wait([starting, waiter, failed], return_when=asyncio.FIRST_COMPLETED)
            if starting.done() and not all(starting.result()) and self.failure is None:
                self.fail("an http worker did not start listening", 1)
            if not stop.is_set() and self.failure is None:
                if settings.config.admin is not None:
                    runner = web.AppRunner(self.admin_app(), access_log=None, shutdown_timeout=2)
                    await runner.setup()
                    runners.append(runner)
                    await start_site(runner, settings.config.admin.listen, "admin.listen", settings)
                    print(f"admin listener on http://{settings.config.admin.listen}  (/metrics /healthz /readyz "
                          "/status, for every http worker)", flush=True)
                print(f"vendorgate listening on {settings.config.listen} with {self.n} http workers  "
                      f"data dir: {settings.data_dir}", flush=True)
                for name, vendor in settings.config.vendors.items():
                    print(f"  /{name}/...  ->  {vendor.upstream}/...   policy: {vendor.policy}", flush=True)
                await asyncio.wait([waiter, failed], return_when=asyncio.FIRST_COMPLETED)
            for task in (starting, waiter, failed):
                task.cancel()
            await asyncio.gather(starting, waiter, failed, return_exceptions=True)
            if self.failure is not None:
                print(f"error: {self.failure}", file=sys.stderr, flush=True)
            print(f"stopping {self.n} http workers: each drains its in-flight requests for up to "
                  f"{settings.config.drain_seconds:g}s", flush=True)
            await self.stop_all()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if not self.stopping:  # an exception on the way: never leave an HTTP process behind
                self.stopping = True
                self.signal_all(signal.SIGKILL)
                procs = [c.proc for c in self.children if c.proc is not None]
                await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs), return_exceptions=True), 10)
            for r in reversed(runners):
                await r.cleanup()
        print("stopped", flush=True)
        return self.exit_code
