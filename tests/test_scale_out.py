"""Across hosts (issue 12, "Deploy and scale"): three `vendorgate serve` processes on loopback share
PostgreSQL (vault, audit log with the ledger, fingerprints) and Redis (budgets), and nothing else
but the master key and the policy. A token one issues another restores; the three write one audit
log that verifies; a budget holds across them; a policy edit reaches all three."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import uuid

import httpx
import pytest
from aiohttp import web
from support import REPO, Served

from gateway.keys import LocalKeyProvider

REDIS_URL = "redis://127.0.0.1:6379/0"
EMAIL = "john.smith@example.com"
POLICY = """
name: shared
detect: [EMAIL_ADDRESS, CUSTOMER_NAME]
terms:
  CUSTOMER_NAME: [Initech, Globex, Umbrella]
actions:
  EMAIL_ADDRESS: tokenize
  CUSTOMER_NAME: allow
budgets:
  - {entity: CUSTOMER_NAME, max_distinct: 2, window: 1d, over: block}
"""


@pytest.fixture
def redis_prefix():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    prefix = f"vg-scale-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


@pytest.fixture
def three(tmp_path, upstream, pg_dsn, pg_schema, redis_prefix):
    admin, schema = pg_schema
    table = f"vg_tokens_{uuid.uuid4().hex[:8]}"
    policy = tmp_path / "shared-policy.yaml"
    policy.write_text(POLICY)
    shared = (f"watch_config: true\nvault: {{dsn: '{pg_dsn}', table: {table}}}\naudit: {{dsn: '{pg_dsn}'}}\n"
              f"fingerprints: {{dsn: '{pg_dsn}', schema: {schema}}}\n"
              f"budget_store: {{redis: '{REDIS_URL}', prefix: {redis_prefix}}}")
    LocalKeyProvider.in_data_dir(tmp_path / "keys")  # one master key, copied to every instance
    gateways = []
    for i in range(3):
        home = tmp_path / f"gw{i}"
        home.mkdir()
        (home / "data").mkdir()
        shutil.copy(tmp_path / "keys" / "keys.json", home / "data" / "keys.json")
        gw = Served(home, upstream.url, shared)
        gw.config.write_text(gw.config.read_text().replace("policy: policy.yaml", f"policy: {policy}"))
        gateways.append(gw.start())
    yield gateways, policy
    for gw in gateways:
        gw.stop()
    for t in (table, f"{table}_collisions"):
        admin.execute(f"DROP TABLE IF EXISTS public.{t}")
        admin.execute(f"DROP TABLE IF EXISTS {schema}.{t}")


async def post(client: httpx.AsyncClient, gw: Served, text: str) -> httpx.Response:
    return await client.post(f"{gw.url}/acme/v1/x", json={"text": text})


@pytest.mark.slow
async def test_three_gateways_share_tokens_one_audit_log_budgets_and_policy_reloads(three, upstream):
    (a, b, c), policy = three
    await asyncio.gather(*(gw.ready() for gw in (a, b, c)))
    async with httpx.AsyncClient(timeout=60) as client:
        # A token issued by a is restored by b, which never saw the value.
        r = await post(client, a, f"write to {EMAIL}")
        assert r.status_code == 200
        token = re.search(rb"EMAIL_ADDRESS_[A-Za-z0-9]+", upstream.received[-1].body).group().decode()
        assert EMAIL.encode() not in upstream.received[-1].body

        async def answer_with_token(request, body):
            return web.json_response({"reply": f"I wrote to {token}"})

        upstream.handler = answer_with_token
        r = await post(client, b, "what did you do?")
        assert r.status_code == 200 and r.json()["reply"] == f"I wrote to {EMAIL}", r.text
        upstream.handler = None

        # One budget: two distinct customers in clear, whichever gateway sees them; the third is refused.
        assert (await post(client, a, "Ticket from Initech")).status_code == 200
        assert (await post(client, b, "Ticket from Globex")).status_code == 200
        refused = await post(client, c, "Ticket from Umbrella")
        assert refused.status_code == 403 and refused.json()["entity_types"] == ["CUSTOMER_NAME"]
        assert "Umbrella" not in refused.text
        assert (await post(client, c, "Ticket from Initech again")).status_code == 200  # already counted

        assert len(upstream.received) == 5
        # A policy edit reaches all three (each watches the file).
        policy.write_text(POLICY.replace("EMAIL_ADDRESS: tokenize", "EMAIL_ADDRESS: block"))
        for gw in (a, b, c):
            for _ in range(200):
                if (await post(client, gw, f"mail {EMAIL}")).status_code == 403:
                    break
                await asyncio.sleep(0.1)
            assert (await post(client, gw, f"mail {EMAIL}")).status_code == 403, gw.err.read_text()
    assert EMAIL.encode() not in b"".join(r.body for r in upstream.received)
    for gw in (a, b, c):
        gw.proc.terminate()
    assert [await asyncio.to_thread(gw.proc.wait, 90) for gw in (a, b, c)] == [0, 0, 0]
    # One audit log: every gateway's records, one chain, one tree; any instance's config reads it.
    listing = subprocess.run([sys.executable, "-m", "gateway", "audit", "list", "--json", "--config", str(c.config)],
                             capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)}, timeout=120)
    assert listing.returncode == 0, listing.stderr
    records = listing.stdout.splitlines()
    assert len(records) >= 9  # 2 + 4 + the blocked ones until each reload was seen
    verify = subprocess.run([sys.executable, "-m", "gateway", "audit", "verify", "--config", str(a.config)],
                            capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)}, timeout=120)
    assert verify.returncode == 0 and f"{len(records)} record(s) verified" in verify.stdout, verify.stdout + verify.stderr
