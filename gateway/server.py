"""Assemble and run the gateway: config, keys, detection workers, audit, routes."""

from __future__ import annotations

import asyncio
import logging
import os

import aiohttp
from aiohttp import web

from gateway.audit import AuditLog
from gateway.budgets import Budgets, open_store
from gateway.config import ConfigError, Settings, split_listen
from gateway.demo_vendor import demo_vendor_app
from gateway.detection.engine import DetectionEngine
from gateway.keys import LocalKeyProvider
from gateway.proxy import Gateway

log = logging.getLogger("vendorgate")
GATEWAY_KEY = web.AppKey("gateway", Gateway)


def check_credentials(settings: Settings) -> None:
    missing = [
        f"vendors.{name}.credential.env: environment variable {v.credential.env} is not set"
        for name, v in settings.config.vendors.items()
        if v.credential and not os.environ.get(v.credential.env)
    ]
    if missing:
        raise ConfigError(settings.path, [f"0: {m}" for m in missing])


def build_app(settings: Settings, engine: DetectionEngine | None = None) -> web.Application:
    """The gateway as an aiohttp app. Pass a started `engine` to share workers (tests)."""
    check_credentials(settings)
    own_engine = engine is None
    engine = engine or DetectionEngine(settings.config.detection.workers, settings.config.detection.timeout_seconds)
    keys = LocalKeyProvider.in_data_dir(settings.data_dir)
    app = web.Application(
        client_max_size=max(v.max_body_bytes for v in settings.config.vendors.values()) + 1,
        handler_args={"auto_decompress": False},  # we decode bodies ourselves, within limits
    )

    async def lifecycle(app: web.Application):
        if own_engine:
            await engine.start()
        audit = AuditLog.in_data_dir(settings.data_dir, keys)
        session = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(limit=200))
        budgets = None
        if any(p.budgets for p in settings.policies.values()):
            budgets = Budgets(open_store(settings.config.budget_store, settings.data_dir), keys)
        app[GATEWAY_KEY] = Gateway(settings, engine, keys, audit, session, budgets)
        yield
        if budgets is not None:
            await budgets.close()
        await session.close()
        await audit.close()
        if own_engine:
            await engine.close()

    app.cleanup_ctx.append(lifecycle)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "vendors": sorted(settings.config.vendors)})

    async def proxy(request: web.Request) -> web.StreamResponse:
        return await request.app[GATEWAY_KEY].handle(request)

    app.router.add_get("/-/health", health)
    app.router.add_route("*", "/{tail:.*}", proxy)
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
    runner = web.AppRunner(build_app(settings), access_log=None)
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
