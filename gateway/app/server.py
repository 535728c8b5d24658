"""Assemble and run the gateway: config, keys, detection workers, audit, routes."""

from __future__ import annotations

import asyncio
import logging
import os

import aiohttp
from aiohttp import web

from gateway.app import limits
from gateway.app.demo_vendor import demo_vendor_app
from gateway.app.handler import Gateway
from gateway.app.hooks import ledger_hook, sinks_hook
from gateway.app.middleware import VENDOR_ROUTE, audit, log_line, refusals
from gateway.audit.ledger import ExposureLedger
from gateway.audit.schedule import maintain, open_audit
from gateway.audit.settings import sink_name
from gateway.audit.sinks import SinkHub
from gateway.config import ConfigError, Settings, split_listen
from gateway.detection.engine import DetectionEngine
from gateway.keys import LocalKeyProvider
from gateway.pipeline.budget import Budgets, open_store
from gateway.pipeline.protect import Services
from gateway.reversible.vault import VaultUnreadable, check_readable, open_vault

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
    if missing:
        raise ConfigError(settings.path, [f"0: {m}" for m in missing])


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


def build_app(settings: Settings, engine: DetectionEngine | None = None) -> web.Application:
    """The gateway as an aiohttp app. Pass a started `engine` to share workers (tests)."""
    check_credentials(settings)
    limits.scrub_parse_errors()
    own_engine = engine is None
    engine = engine or DetectionEngine(settings.config.detection.workers, settings.config.detection.timeout_seconds)
    keys = LocalKeyProvider.in_data_dir(settings.data_dir)
    state: dict = {}
    app = web.Application(
        client_max_size=max(v.max_body_bytes for v in settings.config.vendors.values()) + 1,
        handler_args={"auto_decompress": False,  # we decode bodies ourselves, within limits
                      **limits.handler_args(settings.config.limits)},
        middlewares=[audit(lambda: state["audit"], lambda: state["hooks"]), refusals],
    )

    async def lifecycle(app: web.Application):
        vault = await start_vault(settings, keys)  # first: a lost key fails before the slow start-up
        if own_engine:
            await engine.start()
        audit_log = await asyncio.to_thread(open_audit, settings.data_dir, keys, settings.config.audit)
        ledger = await asyncio.to_thread(ExposureLedger.in_data_dir, settings.data_dir, keys, settings.config.audit.dsn)
        spool_dir = settings.data_dir / "spool"
        sinks = SinkHub(settings.config.sinks, spool_dir) if settings.config.sinks else None
        upkeep = asyncio.create_task(maintain(audit_log, settings.config.audit, ledger, spool_dir,
                                              {sink_name(s) for s in settings.config.sinks}))
        if sinks is not None:
            await sinks.start()
        session = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(limit=200))
        budgets = None
        if any(p.budgets for p in settings.policies.values()):
            budgets = Budgets(open_store(settings.config.budget_store, settings.data_dir), keys)
        services = Services(engine, keys, vault, budgets, settings.data_dir, settings.config.fingerprints)
        app[GATEWAY_KEY] = Gateway(settings, services, session)
        state["audit"] = audit_log
        state["hooks"] = [ledger_hook(ledger)] + ([sinks_hook(sinks)] if sinks is not None else []) + [log_line]
        yield
        upkeep.cancel()
        await asyncio.gather(upkeep, return_exceptions=True)
        if budgets is not None:
            await budgets.close()
        await session.close()
        if sinks is not None:
            await sinks.close()
        await ledger.close()
        await vault.close()
        await audit_log.close()
        if own_engine:
            await engine.close()

    app.cleanup_ctx.append(lifecycle)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "vendors": sorted(settings.config.vendors)})

    async def proxy(request: web.Request) -> web.StreamResponse:
        return await request.app[GATEWAY_KEY].handle(request)

    app.router.add_get("/-/health", health)
    app.router.add_route("*", "/{tail:.*}", proxy, name=VENDOR_ROUTE)
    return app


async def serve(settings: Settings) -> None:
    """Run the gateway (and the demo vendor, when configured) until interrupted."""
    runners = []
    demo = settings.config.demo_vendor
    if demo is not None:
        runner = web.AppRunner(demo_vendor_app(), access_log=None)
        await runner.setup()
        host, port = split_listen(demo.listen)
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
        print(f"demo vendor listening on http://{demo.listen} (it prints what it receives)", flush=True)
    runner = limits.GatewayRunner(build_app(settings), settings.config.limits, access_log=None)
    print("starting detection workers (loading the spaCy model)...", flush=True)
    await runner.setup()
    host, port = split_listen(settings.config.listen)
    await web.TCPSite(runner, host, port).start()
    runners.append(runner)
    print(f"vendorgate listening on http://{settings.config.listen}  data dir: {settings.data_dir}", flush=True)
    for name, vendor in settings.config.vendors.items():
        print(f"  /{name}/...  ->  {vendor.upstream}/...   policy: {vendor.policy}", flush=True)
    if "demo" in settings.config.vendors:
        print(f"try:  curl -s http://{settings.config.listen}/demo/anything -H 'Content-Type: application/json' "
              "-d '{\"note\": \"Call John Smith at john.smith@example.com\"}'", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for r in reversed(runners):
            await r.cleanup()
