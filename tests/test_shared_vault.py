"""Several gateway instances sharing the PostgreSQL vault: real
`python -m gateway serve` processes, the official openai SDK, one vendor."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import subprocess
import sys
import textwrap
import uuid

import asyncpg
import httpx
import pytest
import pytest_asyncio
from openai import AsyncOpenAI
from support import PG_DSN, REPO, OpenAIUpstream, free_port, postgres_unreachable

NAME = "John Smith"
TOKEN = re.compile(r"PERSON_[0-9A-Z]{10,26}")


@pytest_asyncio.fixture
async def table():
    if reason := await postgres_unreachable():
        pytest.skip(reason)
    name = f"vg_test_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(PG_DSN)
    await conn.execute(f"DROP TABLE IF EXISTS {name}; DROP TABLE IF EXISTS {name}_collisions")
    await conn.close()


@pytest_asyncio.fixture
async def vendor():
    up = await OpenAIUpstream().start()
    yield up
    await up.close()


def write_instance(tmp_path, name: str, upstream: str, table: str) -> tuple[str, object]:
    port = free_port()
    folder = tmp_path / name
    folder.mkdir()
    (folder / "llm-api.yaml").write_text((REPO / "policies" / "llm-api.yaml").read_text())
    cfg = folder / "vendorgate.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        listen: "127.0.0.1:{port}"
        data_dir: data
        detection: {{workers: 1, timeout_seconds: 60}}
        vault: {{dsn: "{PG_DSN}", table: {table}}}
        vendors:
          openai:
            upstream: "{upstream}"
            policy: llm-api.yaml
        """))
    return f"http://127.0.0.1:{port}", cfg


async def wait_healthy(url: str, proc: subprocess.Popen) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(600):
            if proc.poll() is not None:
                raise AssertionError(f"gateway exited with {proc.returncode}: {proc.log.read_text()[-2000:]}")
            try:
                if (await client.get(url + "/-/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    raise AssertionError("gateway did not become healthy")


@pytest_asyncio.fixture
async def two_gateways(tmp_path, vendor, table):
    env = {**os.environ, "VENDORGATE_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
    procs, urls = [], []
    for name in ("a", "b"):
        url, cfg = write_instance(tmp_path, name, vendor.url, table)
        log = tmp_path / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(cfg)], cwd=REPO,
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        proc.log = log
        procs.append(proc)
        urls.append(url)
    try:
        for url, proc in zip(urls, procs):
            await wait_healthy(url, proc)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def sdk(url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{url}/openai/v1", api_key="sk-test-not-a-real-key", max_retries=0, timeout=60)


async def test_token_issued_by_one_instance_is_restored_by_another(two_gateways, vendor):
    a, b = sdk(two_gateways[0]), sdk(two_gateways[1])
    try:
        await a.chat.completions.create(model="gpt-test", messages=[
            {"role": "user", "content": f"Our customer {NAME} wants a refund."}])
        token = TOKEN.search(vendor.received_text).group(0)
        assert NAME not in vendor.received_text

        vendor.answer = f"The customer was {token}."
        question = [{"role": "user", "content": "Who asked for a refund?"}]
        reply = await b.chat.completions.create(model="gpt-test", messages=question)
        assert reply.choices[0].message.content == f"The customer was {NAME}."
        stream = await b.chat.completions.create(model="gpt-test", messages=question, stream=True)
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        assert "".join(pieces) == f"The customer was {NAME}."
    finally:
        await a.close()
        await b.close()


async def test_unavailable_vault_fails_closed(vendor, table, write_config, start_gateway, tmp_path):
    policy = (REPO / "policies" / "llm-api.yaml").read_text()
    cfg = write_config(vendor.url, policy=policy, top_extra=f'vault: {{dsn: "{PG_DSN}", table: {table}}}')
    gw = await start_gateway(cfg)
    conn = await asyncpg.connect(PG_DSN)
    await conn.execute(f"DROP TABLE {table}")
    await conn.close()
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(gw.url + "/acme/v1/chat/completions",
                              json={"model": "m", "messages": [{"role": "user", "content": f"Call {NAME}"}]})
    assert r.status_code == 503 and "token vault unavailable" in r.json()["error"]
    assert NAME not in r.text
    assert vendor.received == []
