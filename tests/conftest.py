"""Real parts only: a real upstream HTTP server on 127.0.0.1 that records what
it received, the real detection engine in worker processes, the real gateway."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from support import (
    CALLERS,
    JANE_CARD,
    JANE_EMAIL,
    JANE_SSN,
    PG_DSN,
    POLICY,
    REPO,
    OpenAIUpstream,
    Upstream,
    add_callers,
    free_port,
    send,
    two_vendor_config,
)

from gateway.app.server import build_app
from gateway.config import load_config
from gateway.detection.engine import DetectionEngine
from gateway.keys import LocalKeyProvider


@pytest_asyncio.fixture
async def upstream():
    up = Upstream()
    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", up._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    up.url = f"http://127.0.0.1:{port}"
    yield up
    await runner.cleanup()


@pytest_asyncio.fixture(scope="session")
async def engine():
    eng = DetectionEngine(workers=1, timeout_seconds=60)
    await eng.start()
    yield eng
    await eng.close()


@pytest.fixture
def keys(tmp_path):
    """A master key of its own in a key file under tmp_path (the environment's key is not consulted)."""
    return LocalKeyProvider(tmp_path / "keys" / "keys.json", env={})


@dataclass
class RunningGateway:
    url: str
    data_dir: Path
    config_path: Path
    runner: web.AppRunner


@pytest.fixture
def write_config(tmp_path):
    def write(upstream_url: str, policy: str = POLICY, vendor_extra: str = "", top_extra: str = "") -> Path:
        (tmp_path / "policy.yaml").write_text(textwrap.dedent(policy))
        cfg = tmp_path / "vendorgate.yaml"
        cfg.write_text(
            f'listen: "127.0.0.1:8080"\ndata_dir: data\n{top_extra}\nvendors:\n'
            f'  acme:\n    upstream: "{upstream_url}"\n    policy: policy.yaml\n{textwrap.indent(textwrap.dedent(vendor_extra), "    ")}'
        )
        return cfg

    return write


@pytest_asyncio.fixture
async def start_gateway(engine):
    runners = []

    async def start(config_path: Path, eng=None, data_dir: Path | None = None, **build) -> RunningGateway:
        settings = load_config(config_path, data_dir)
        runner = web.AppRunner(build_app(settings, eng or engine, **build), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return RunningGateway(f"http://127.0.0.1:{port}", settings.data_dir, config_path, runner)

    yield start
    for r in runners:
        await r.cleanup()


@pytest_asyncio.fixture
async def gateway(upstream, write_config, start_gateway):
    return await start_gateway(write_config(upstream.url))


@pytest_asyncio.fixture
async def openai_vendor():
    """An OpenAI-compatible vendor on loopback that records what it received."""
    vendor = await OpenAIUpstream().start()
    yield vendor
    await vendor.close()


@pytest.fixture
def openai_sdk_through_gateway(write_config, start_gateway):
    """The official openai SDK pointed at a gateway that fronts `vendor` with a shipped policy."""
    from contextlib import asynccontextmanager

    from openai import AsyncOpenAI

    @asynccontextmanager
    async def open_sdk(vendor, policy_name: str):
        policy = (REPO / "policies" / policy_name).read_text()
        gw = await start_gateway(write_config(vendor.url, policy=policy))
        sdk = AsyncOpenAI(base_url=f"{gw.url}/acme/v1", api_key="sk-test-not-a-real-key", max_retries=0, timeout=60)
        try:
            yield sdk
        finally:
            await sdk.close()

    return open_sdk


@pytest.fixture
def pg_schema():
    """(admin connection, a fresh schema name) on the local PostgreSQL; the schema
    is dropped afterwards. Skips when PostgreSQL is unreachable."""
    import uuid

    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_DSN} is unreachable: {exc}")
    schema = f"vg_test_{uuid.uuid4().hex[:12]}"
    yield admin, schema
    admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    admin.close()


@pytest.fixture
def pg_dsn(pg_schema):
    """A DSN whose search_path is a fresh, created schema."""
    admin, schema = pg_schema
    admin.execute(f"CREATE SCHEMA {schema}")
    return f"{PG_DSN}?options=-csearch_path%3D{schema}"


@pytest.fixture
async def traffic(tmp_path, upstream, start_gateway):
    """Alpha gets the email and card in clear (twice, from two callers); beta gets the
    email as a token and the card masked; one request to alpha is blocked."""
    cfg = two_vendor_config(tmp_path, upstream.url)
    key = add_callers(cfg, CALLERS)
    gw = await start_gateway(cfg)
    assert (await send(gw, "alpha", f"mail {JANE_EMAIL} card {JANE_CARD}", key["billing-svc"])).status_code == 200
    assert (await send(gw, "alpha", f"again {JANE_EMAIL.lower()}", key["support-bot"])).status_code == 200
    assert (await send(gw, "beta", f"mail {JANE_EMAIL}, card {JANE_CARD}", key["support-bot"])).status_code == 200
    assert (await send(gw, "alpha", f"ssn {JANE_SSN}", key["billing-svc"])).status_code == 403
    return gw
