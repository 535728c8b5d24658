"""Assemble and run the gateway: config, keys, detection workers, audit, routes,
the admin listener, signals (SIGTERM/SIGINT drain and stop, SIGHUP reload)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import logging
import os
import signal
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway import heap
from gateway.app import limits, webhooks
from gateway.app.auth import CallerKeys, authenticate
from gateway.app.canary import CanaryState, canary_schedule
from gateway.app.demo_vendor import demo_vendor_app
from gateway.app.handler import Gateway
from gateway.app.hooks import ledger_binder, ledger_hook, sinks_hook
from gateway.app.metrics import CONTENT_TYPE, GatewayMetrics
from gateway.app.middleware import VENDOR_ROUTE, WEBHOOK_ROUTE, audit, echo_request_id, log_line_hook, refusals
from gateway.app.tracing import Tracing
from gateway.audit.journal import Journal
from gateway.audit.ledger import ExposureLedger
from gateway.audit.schedule import maintain, open_audit
from gateway.audit.settings import sink_name
from gateway.audit.sinks import SinkHub
from gateway.config import ConfigError, Settings, is_loopback, load_config, split_listen
from gateway.detection.engine import DetectionEngine, die_with_parent
from gateway.keys import KeyProviderError, LocalKeyProvider
from gateway.pipeline.budget import Budgets
from gateway.pipeline.budget_store import open_store
from gateway.pipeline.protect import Services
from gateway.reversible.vault import VaultUnreadable, check_readable, open_vault
from gateway.yamlfile import FileError

log = logging.getLogger("vendorgate")
GATEWAY_KEY = web.AppKey("gateway", Gateway)


def check_credentials(settings: Settings) -> None:
    missing = [
        f"vendors.{name}.credential.env: environment variable {v.credential.env} is not set"
        for name, v in settings.config.vendors.items()
        if v.credential and not os.environ.get(v.credential.env)
    ] + [
        f"sinks[{i}].token_env: environment variable {s.token_env} is not set"
        for i, s in enumerate(settings.config.sinks)
        if getattr(s, "token_env", None) and not os.environ.get(s.token_env)
    ]
    for name, v in settings.config.vendors.items():
        hooks = v.webhooks
        if hooks is None:
            continue
        if hooks.secret.env and not os.environ.get(hooks.secret.env):
            missing.append(f"vendors.{name}.webhooks.secret.env: environment variable {hooks.secret.env} is not set")
        if hooks.secret.file and not _holds_text(hooks.secret.file):
            missing.append(f"vendors.{name}.webhooks.secret.file: {hooks.secret.file} is not a readable, "
                           "non-empty file")
        if hooks.credential and not os.environ.get(hooks.credential.env):
            missing.append(f"vendors.{name}.webhooks.credential.env: environment variable {hooks.credential.env} "
                           "is not set")
    admin = settings.config.admin
    if admin is not None and admin.token_env and not os.environ.get(admin.token_env):
        missing.append(f"admin.token_env: environment variable {admin.token_env} is not set")
    if missing:
        raise ConfigError(settings.path, [f"0: {m}" for m in missing])


def _holds_text(path) -> bool:
    try:
        return bool(path.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        return False


class StartupError(Exception):
    """The gateway cannot start safely; the message says why and what to do."""


async def start_vault(settings: Settings, keys):
    cfg = settings.config.vault
    where = f"PostgreSQL table {cfg.table}" if cfg else str(settings.data_dir / "vault.sqlite3")
    try:
        vault = await open_vault(settings.data_dir, cfg.dsn if cfg else None, keys, cfg.table if cfg else "vendorgate_tokens")
    except Exception as exc:
        raise StartupError(f"cannot open the token vault ({where}): {type(exc).__name__}: {exc}") from None
    try:
        await check_readable(vault, where)
    except VaultUnreadable as exc:
        await vault.close()
        raise StartupError(str(exc)) from None
    return vault


def load_callers(settings: Settings) -> CallerKeys | None:
    """The caller keys the config names, or None when auth is off."""
    auth = settings.config.auth
    return CallerKeys.load(auth.keys_file) if auth is not None else None


# Sections a running gateway cannot swap: they are wired into open stores and sockets.
RESTART_ONLY = ("listen", "data_dir", "detection", "demo_vendor", "vault", "audit", "budget_store",
                "fingerprints", "sinks", "admin", "drain_seconds", "watch_config", "tls", "canary", "tracing")


@dataclass
class Runtime:
    """What a SIGHUP reload swaps, read per request: the settings (vendors, policies) and the caller keys.
    The stores and workers are filled in by the app's lifecycle."""

    settings: Settings
    callers: CallerKeys | None
    engine: DetectionEngine
    metrics: GatewayMetrics | None = None
    gateway: Gateway | None = None
    audit_log: object = None
    vault: object = None
    stores: dict = field(default_factory=dict)
    canary: CanaryState | None = None  # with a `canary:` section: the scheduled runs' latest results
    last_reload_error: str = ""
    draining: bool = False

    def reload(self) -> bool:
        """Validate the config, its policies and the keys file; swap them only if all are valid."""
        old = self.settings
        try:
            new = load_config(old.path, old.data_dir)
            check_credentials(new)
            callers = load_callers(new)
            changed = [k for k in RESTART_ONLY if getattr(new.config, k) != getattr(old.config, k)]
            if changed:
                raise ConfigError(old.path, [f"0: {', '.join(changed)} changed: restart the gateway to apply "
                                             "(only vendors, policies, auth keys, log_level and log_format reload)"])
            if self.gateway is not None and self.gateway.services.budgets is None and \
                    any(p.budgets for p in new.policies.values()):
                raise ConfigError(old.path, ["0: a policy now has exposure budgets: restart the gateway to apply"])
        except (FileError, OSError, ValueError) as exc:  # ConfigError, PolicyError, a bad keys file
            self.last_reload_error = str(exc)
            log.error("config reload failed, keeping the running config: %s", exc)
            if self.metrics is not None:
                self.metrics.reloads.labels("failed").inc()
            return False
        # The swap: each reader takes one reference per request, so a request sees old or new, never a mix.
        self.settings, self.callers = new, callers
        if self.gateway is not None:
            self.gateway.settings = new
        logging.getLogger().setLevel(new.config.log_level.upper())
        self.last_reload_error = ""
        if self.metrics is not None:
            self.metrics.reloads.labels("ok").inc()
        log.warning("config reloaded from %s: %d vendor(s), %s", new.path, len(new.config.vendors),
                    f"{len(callers.names())} caller key(s)" if callers is not None else "auth off")
        return True

    async def readiness(self) -> tuple[bool, dict]:
        checks: dict[str, str] = {}
        if self.draining:
            checks["shutdown"] = "draining: stopping, send no new requests"
        checks["detection_workers"] = (f"ok ({self.engine.alive_count()}/{self.engine.workers})"
                                       if self.engine.healthy() else
                                       f"down ({self.engine.alive_count()}/{self.engine.workers} alive)")
        if self.audit_log is None:
            checks["audit_log"] = "not open"
        else:
            checks["audit_log"] = await _probe(self.audit_log.run(self.audit_log.db.rows, "SELECT 1"))
            if getattr(self.audit_log, "anchor_problem", ""):
                checks["audit_log"] = f"down ({self.audit_log.anchor_problem})"
        if self.vault is not None:
            checks["vault"] = await _probe(self.vault.lookup("-", ["vendorgate-readyz-probe"]))
        checks["policies"] = "ok" + (" (last reload failed; running the previous config)"
                                     if self.last_reload_error else "")
        if self.canary is not None:
            checks["canary"] = self.canary.readiness()
        return all(v.startswith("ok") for v in checks.values()), checks

    def status(self) -> dict:
        s = self.settings
        return {
            "config": str(s.path),
            "data_dir": str(s.data_dir),
            "vendors": {name: {"upstream": v.upstream, "policy": str(v.policy),
                               "policy_digest": s.policies[name].digest} for name, v in sorted(s.config.vendors.items())},
            "auth": "on" if self.callers is not None else "off",
            "callers": [{"name": n, "vendors": sorted(e.vendors), "created": e.created}
                        for n, e in sorted(self.callers.entries.items()) if e.revoked is None]
            if self.callers is not None else [],
            "detection_workers": {"configured": self.engine.workers, "alive": self.engine.alive_count()},
            "last_reload_error": self.last_reload_error,
            "event_loop": event_loop_name(),
            "pid": os.getpid(),
        }


    def watched_files(self) -> set[Path]:
        s = self.settings
        files = {s.path, *(v.policy for v in s.config.vendors.values())}
        if s.config.auth is not None:
            files.add(s.config.auth.keys_file)
        return {Path(f).resolve() for f in files}

    async def watch(self) -> None:
        """`watch_config: true`: reload when a watched file changes. Folders are watched, not files, since
        editors and `vendorgate callers` replace files (a new inode) rather than write them in place."""
        import watchfiles

        while True:
            files = self.watched_files()
            folders = sorted({str(f.parent) for f in files if f.parent.is_dir()})
            async for changes in watchfiles.awatch(*folders, debounce=300, step=100, recursive=False):
                if any(Path(path).resolve() in files for _, path in changes):
                    self.reload()
                    break  # the set of files may have changed with the config


def event_loop_name() -> str:
    """`uvloop` or `asyncio`: which event loop this process runs (`serve` picks uvloop when installed)."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


async def _probe(awaitable, timeout: float = 3.0) -> str:
    try:
        await asyncio.wait_for(awaitable, timeout)
        return "ok"
    except Exception as exc:
        return f"down ({type(exc).__name__})"


RUNTIME_KEY = web.AppKey("runtime", Runtime)


async def _cancelled(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def start_canaries(runtime: Runtime, services: Services, audit_log) -> list[asyncio.Task]:
    """With a `canary:` section, the scheduled canary (`gateway.app.canary`): results go to
    readiness (`runtime.canary`) and the metrics."""
    if runtime.settings.config.canary is None:
        return []
    runtime.canary = CanaryState()
    on_result = runtime.metrics.canary if runtime.metrics is not None else (lambda _: None)
    return [asyncio.create_task(canary_schedule(lambda: runtime.settings, services, audit_log, runtime.canary,
                                                on_result))]


def health_routes(app: web.Application, readiness, detail: str = "checks") -> None:
    """/healthz and /readyz (the gateway's listeners and the supervisor's admin listener);
    `readiness()` answers (ok, what the `detail` key holds)."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ok, checks = await readiness()
        return web.json_response({"status": "ready" if ok else "not ready", detail: checks},
                                 status=200 if ok else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def build_app(settings: Settings, engine: DetectionEngine | None = None,
              detection_workers: int | None = None, span_exporter=None) -> web.Application:
    """The gateway as an aiohttp app. Pass a started `engine` to share workers (tests);
    `detection_workers` overrides the config's count (one HTTP process's share);
    `span_exporter` replaces the OTLP exporter of `tracing:` (tests)."""
    check_credentials(settings)
    limits.scrub_parse_errors()
    own_engine = engine is None
    workers = settings.config.detection.workers if detection_workers is None else detection_workers
    detection = settings.config.detection
    engine = engine or DetectionEngine(workers, detection.timeout_seconds, small_chars=detection.small_chars,
                                       caller_queue=detection.caller_queue)
    try:
        keys = LocalKeyProvider.in_data_dir(settings.data_dir)
    except KeyProviderError as exc:
        raise StartupError(str(exc)) from None
    runtime = Runtime(settings, load_callers(settings), engine)
    runtime.metrics = metrics = GatewayMetrics(lambda: runtime.settings.config.vendors,
                                               lambda: (engine.workers, engine.alive_count()))
    state: dict = {}
    tracing = Tracing(settings.config.tracing, span_exporter) if settings.config.tracing is not None else None
    app = web.Application(
        client_max_size=max(v.max_body_bytes for v in settings.config.vendors.values()) + 1,
        handler_args={"auto_decompress": False,  # we decode bodies ourselves, within limits
                      **limits.handler_args(settings.config.limits)},
        middlewares=([tracing.middleware()] if tracing is not None else [])
        + [audit(lambda: state["audit"], lambda: state["hooks"], lambda: state["binders"],
                 lambda: state.get("journal")), refusals,
           authenticate(lambda: runtime.callers, lambda: runtime.settings.config.vendors)],
    )
    app[RUNTIME_KEY] = runtime
    app.on_response_prepare.append(echo_request_id)

    async def lifecycle(app: web.Application):
        # Each part is closed in reverse order of start, also when a later part fails to start
        # (a rolled-back audit log): nothing started is left running behind the error.
        async with contextlib.AsyncExitStack() as started:
            if tracing is not None:
                started.push_async_callback(asyncio.to_thread, tracing.shutdown)
            vault = await start_vault(settings, keys)  # first: a lost key fails before the slow start-up
            started.push_async_callback(vault.close)
            if own_engine:
                started.push_async_callback(engine.close)
                await engine.start()
            audit_log = await asyncio.to_thread(open_audit, settings.data_dir, keys, settings.config.audit)
            started.push_async_callback(audit_log.close)
            ledger = await asyncio.to_thread(ExposureLedger.in_data_dir, settings.data_dir, keys,
                                             settings.config.audit.dsn)
            started.push_async_callback(ledger.close)
            journal = Journal.in_data_dir(settings.data_dir)
            started.push_async_callback(journal.close)
            spool_dir = settings.data_dir / "spool"
            sinks = SinkHub(settings.config.sinks, spool_dir) if settings.config.sinks else None
            if sinks is not None:
                started.push_async_callback(sinks.close)
                await sinks.start()
            session = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(limit=200))
            started.push_async_callback(session.close)
            budgets = None
            if any(p.budgets for p in settings.policies.values()):
                budgets = Budgets(open_store(settings.config.budget_store, settings.data_dir), keys)
                started.push_async_callback(budgets.close)
            tasks = [asyncio.create_task(maintain(audit_log, settings.config.audit, ledger, spool_dir,
                                                  {sink_name(s) for s in settings.config.sinks}))]
            if metrics.multiprocess_dir is not None:
                tasks.append(asyncio.create_task(metrics.keep_fresh()))
            started.push_async_callback(_cancelled, tasks)
            services = Services(engine, keys, vault, budgets, settings.data_dir, settings.config.fingerprints)
            await journal.recover(audit_log.append)  # requests a dead gateway forwarded: audited now
            journal.start()
            state["journal"] = journal
            app[GATEWAY_KEY] = runtime.gateway = Gateway(runtime.settings, services, session, journal)
            runtime.audit_log, runtime.vault = audit_log, vault
            state["audit"] = audit_log
            tasks += start_canaries(runtime, services, audit_log)
            state["binders"] = [ledger_binder(ledger)]
            state["hooks"] = ([ledger_hook(ledger)] + ([sinks_hook(sinks)] if sinks is not None else [])
                              + [metrics.hook, log_line_hook(lambda: runtime.settings.config.log_format == "json")])
            yield
            # In-flight requests have finished (or the drain deadline passed): leaving the block
            # stops the tasks, flushes the stores, then stops the workers.

    app.cleanup_ctx.append(lifecycle)

    async def proxy(request: web.Request) -> web.StreamResponse:
        return await request.app[GATEWAY_KEY].handle(request)

    async def webhook(request: web.Request) -> web.StreamResponse:
        return await webhooks.deliver(request.app[GATEWAY_KEY], request)

    health_routes(app, runtime.readiness)
    app.router.add_get("/-/health", lambda request: web.json_response({"status": "ok"}))  # the old name
    app.router.add_post(webhooks.PATH, webhook, name=WEBHOOK_ROUTE)
    app.router.add_route("*", "/{tail:.*}", proxy, name=VENDOR_ROUTE)
    return app


def admin_token(settings: Settings):
    """The admin listener's token check, shared with the supervisor's admin listener:
    (token, authorised(request), refuse()). Anything but /metrics, /healthz and /readyz needs it."""
    admin = settings.config.admin
    token = os.environ.get(admin.token_env, "") if admin is not None and admin.token_env else ""

    def authorised(request: web.Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                                   token.encode())

    def refuse() -> web.Response:
        if not token:
            return web.json_response({"error": "set admin.token_env in the config to use /status"}, status=403)
        return web.json_response({"error": "admin token required (Authorization: Bearer TOKEN)"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="vendorgate-admin"'})

    return token, authorised, refuse


def admin_app(runtime: Runtime) -> web.Application:
    """The admin listener: /metrics, /healthz, /readyz, and /status behind the admin token.
    A caller key is not an admin token; nothing here is reachable through /{vendor}/."""
    token, authorised, refuse = admin_token(runtime.settings)

    async def metrics(request: web.Request) -> web.Response:
        if token and not authorised(request):
            return refuse()
        return web.Response(body=runtime.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def status(request: web.Request) -> web.Response:
        if not authorised(request):
            return refuse()
        return web.json_response(runtime.status())

    app = web.Application()
    health_routes(app, runtime.readiness)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    return app


def slot_app(runtime: Runtime) -> web.Application:
    """One HTTP process of `serve --workers N`, as its supervisor sees it: on a Unix socket in the
    supervisor's private run dir (mode 0700), so no token; the supervisor's admin listener asks it."""
    app = web.Application()
    health_routes(app, runtime.readiness)
    app.router.add_get("/status", lambda request: web.json_response(runtime.status()))
    return app


@dataclass(frozen=True)
class Slot:
    """This process is HTTP process `index` of `total` under a supervisor (`serve --workers N`)."""

    index: int
    total: int
    detection_workers: int
    socket: Path
    parent: int


def check_port(listen: str, what: str, settings: Settings) -> None:
    """Fail in a second, not after the workers loaded their models, when an address is taken."""
    host, port = split_listen(listen)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {listen} ({what}): unknown host ({exc.strerror}); fix `{what}` in "
                           f"{settings.path}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise StartupError(_listen_error(listen, what, settings, exc)) from None


def _listen_error(listen: str, what: str, settings: Settings, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        why = "the address is already in use (another vendorgate or another service?)"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied (ports below 1024 need privileges)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "this machine has no such address"
    else:
        why = exc.strerror or type(exc).__name__
    return f"cannot listen on {listen} ({what}): {why}; stop the other process or change `{what}` in {settings.path}"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS for the main listener; a client certificate is optional (keys still work) but, when
    presented, must chain to `client_ca_file`."""
    tls = settings.config.tls
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load the TLS files named in {settings.path} (tls:): "
                           f"{getattr(exc, 'strerror', None) or exc}; check cert_file, key_file and client_ca_file") from None
    return context


async def start_site(runner: web.BaseRunner, listen: str, what: str, settings: Settings,
                     ssl_context: ssl.SSLContext | None = None, reuse_port: bool = False) -> None:
    host, port = split_listen(listen)
    try:
        await web.TCPSite(runner, host, port, reuse_address=True, reuse_port=reuse_port or None,
                          ssl_context=ssl_context).start()
    except OSError as exc:
        raise StartupError(_listen_error(listen, what, settings, exc)) from None


def listeners(settings: Settings) -> list[tuple[str, str]]:
    found = [(settings.config.listen, "listen")]
    if settings.config.demo_vendor is not None:
        found.append((settings.config.demo_vendor.listen, "demo_vendor.listen"))
    if settings.config.admin is not None:
        found.append((settings.config.admin.listen, "admin.listen"))
    return found


async def serve(settings: Settings, slot: Slot | None = None) -> None:
    """Run the gateway (and the demo vendor, when configured) until SIGTERM or SIGINT;
    then stop accepting, let in-flight requests finish (up to `drain_seconds`), flush the
    audit log and sinks, and stop the detection workers. SIGHUP reloads the config.
    Under a supervisor (`slot`), the main listener is shared (SO_REUSEPORT) and the demo
    vendor and the admin listener are the supervisor's."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    runners: list[web.BaseRunner] = []
    say = (lambda *a, **k: None) if slot is not None else print
    if slot is None:
        for listen, what in listeners(settings):
            check_port(listen, what, settings)
    else:
        die_with_parent(slot.parent, signal.SIGTERM)
    tls = tls_context(settings)
    gateway_runner = demo = None
    try:
        demo = settings.config.demo_vendor if slot is None else None
        if demo is not None:
            runner = web.AppRunner(demo_vendor_app(), access_log=None)
            await runner.setup()
            runners.append(runner)
            await start_site(runner, demo.listen, "demo_vendor.listen", settings)
            print(f"demo vendor listening on http://{demo.listen} (it prints what it receives)", flush=True)
        app = build_app(settings, detection_workers=slot.detection_workers if slot is not None else None)
        runtime = app[RUNTIME_KEY]
        runner = limits.GatewayRunner(app, settings.config.limits, access_log=None,
                                      shutdown_timeout=settings.config.drain_seconds)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)  # also during start-up: we stop once it is done
        loop.add_signal_handler(signal.SIGHUP, runtime.reload)
        say("starting detection workers (loading the spaCy model)...", flush=True)
        await runner.setup()
        gateway_runner = runner
        runners.append(runner)
        await start_site(runner, settings.config.listen, "listen", settings, tls, reuse_port=slot is not None)
        if slot is not None:
            slot_runner = web.AppRunner(slot_app(runtime), access_log=None, shutdown_timeout=2)
            await slot_runner.setup()
            runners.append(slot_runner)
            await web.UnixSite(slot_runner, str(slot.socket)).start()
            print(f"http worker {slot.index + 1}/{slot.total} (pid {os.getpid()}) listening, "
                  f"{runtime.engine.workers} detection worker(s), event loop: {event_loop_name()}", flush=True)
        if settings.config.admin is not None and slot is None:
            admin_runner = web.AppRunner(admin_app(runtime), access_log=None, shutdown_timeout=2)
            await admin_runner.setup()
            runners.append(admin_runner)
            await start_site(admin_runner, settings.config.admin.listen, "admin.listen", settings)
            print(f"admin listener on http://{settings.config.admin.listen}  (/metrics /healthz /readyz /status)",
                  flush=True)
        say(f"vendorgate listening on {'https' if tls else 'http'}://{settings.config.listen}  data dir: "
            f"{settings.data_dir}  event loop: {event_loop_name()}", flush=True)
        if runtime.callers is None:
            exposure = "" if is_loopback(settings.config.listen) else " on a non-loopback address (allow_unauthenticated)"
            say(f"auth is OFF{exposure}: every caller is 'anonymous'; add `auth: {{keys_file: callers.yaml}}` "
                  "and `vendorgate callers add NAME` to require keys", flush=True)
        else:
            say(f"auth is on: {len(runtime.callers.names())} caller key(s) in {settings.config.auth.keys_file}",
                  flush=True)
        for name, vendor in settings.config.vendors.items():
            say(f"  /{name}/...  ->  {vendor.upstream}/...   policy: {vendor.policy}", flush=True)
        if "demo" in settings.config.vendors and runtime.callers is None:
            say(f"try:  curl -s http://{settings.config.listen}/demo/anything -H 'Content-Type: application/json' "
                  "-d '{\"note\": \"Call John Smith at john.smith@example.com\"}'", flush=True)
        watcher = asyncio.create_task(runtime.watch()) if settings.config.watch_config else None
        if watcher is not None:
            say("watching the config, its policies and the keys file: edits reload as on SIGHUP", flush=True)
        heap.settle()  # start-up is done: its objects are never garbage
        await stop.wait()
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        runtime.draining = True
        say(f"stopping: no new connections; in-flight requests may finish for up to "
            f"{settings.config.drain_seconds:g}s", flush=True)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        # The gateway's runner first (it drains, then flushes the audit log and stops the workers), while the
        # admin listener still answers /readyz (draining); the demo vendor last, as in-flight requests may use it.
        order = sorted(runners, key=lambda r: (r is not gateway_runner, runners.index(r) == 0 and demo is not None))
        for r in order:
            await r.cleanup()
    say("stopped", flush=True)
