"""Real parts only: a real upstream HTTP server on 127.0.0.1 that records what
it received, the real detection engine in worker processes, the real gateway."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from gateway.config import load_config
from gateway.detection.engine import DetectionEngine
from gateway.server import build_app
from support import POLICY, Upstream, free_port

REPO = Path(__file__).resolve().parent.parent


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

    async def start(config_path: Path, eng=None, data_dir: Path | None = None) -> RunningGateway:
        settings = load_config(config_path, data_dir)
        runner = web.AppRunner(build_app(settings, eng or engine), access_log=None)
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
