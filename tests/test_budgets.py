"""Exposure budgets: race-free across processes on real Redis and SQLite, and
enforced by the gateway as the vendor receives it."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import httpx
import pytest

from gateway.pipeline.budget_store import RedisBudgetStore, SQLiteBudgetStore

REDIS_URL = "redis://127.0.0.1:6379/0"
REPO = Path(__file__).resolve().parent.parent


def redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not redis_up(), reason="Redis at 127.0.0.1:6379 is not reachable")


@pytest.fixture
def prefix():
    import redis

    name = f"vgtest-{uuid.uuid4().hex[:12]}"
    yield name
    if redis_up():
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{name}:*"):
            client.delete(key)


def open_store(kind: str, where: str):
    return RedisBudgetStore(REDIS_URL, where) if kind == "redis" else SQLiteBudgetStore(Path(where))


def compete(kind: str, where: str, worker: int, batches: int, batch: int, limit: int, start_at: float,
            all_or_nothing: bool) -> int:
    """One competing process: several tasks spend fresh members at once; returns how many were granted."""

    async def run() -> int:
        store = open_store(kind, where)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        results = await asyncio.gather(*(
            store.spend("acme:PERSON:86400:1", [f"w{worker}-b{b}-m{m}" for m in range(batch)], limit, 600,
                        all_or_nothing)
            for b in range(batches)
        ))
        await store.close()
        return sum(sum(r) for r in results)

    return asyncio.run(run())


def race(kind: str, where: str, limit: int, batch: int, all_or_nothing: bool) -> int:
    start_at = time.time() + 3  # every process is up before anyone spends
    with ProcessPoolExecutor(6, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(compete, kind, where, w, 8, batch, limit, start_at, all_or_nothing) for w in range(6)]
        return sum(f.result() for f in futures)


async def used(kind: str, where: str) -> int:
    store = open_store(kind, where)
    try:
        return await store.used("acme:PERSON:86400:1")
    finally:
        await store.close()


@needs_redis
def test_redis_processes_racing_for_the_last_units_never_overspend(prefix):
    granted = race("redis", prefix, limit=37, batch=1, all_or_nothing=False)
    assert granted == 37
    assert asyncio.run(used("redis", prefix)) == 37


@needs_redis
def test_redis_blocking_budget_spends_whole_requests_or_nothing(prefix):
    granted = race("redis", prefix, limit=20, batch=3, all_or_nothing=True)
    assert granted == 18  # six requests of three fit; no request is half spent
    assert asyncio.run(used("redis", prefix)) == 18


def test_sqlite_processes_racing_for_the_last_units_never_overspend(tmp_path):
    where = str(tmp_path / "budgets.sqlite")
    granted = race("sqlite", where, limit=37, batch=1, all_or_nothing=False)
    assert granted == 37
    assert asyncio.run(used("sqlite", where)) == 37


async def test_a_value_already_counted_in_the_window_costs_nothing(tmp_path):
    store = SQLiteBudgetStore(tmp_path / "b.sqlite")
    assert await store.spend("k", ["a", "b"], 2, 600, False) == [True, True]
    assert await store.spend("k", ["b", "c"], 2, 600, False) == [True, False]
    assert await store.spend("k", ["c", "a"], 2, 600, True) == [False, True]
    assert await store.used("k") == 2
    await store.close()


CUSTOMERS = ["Initech", "Globex", "Umbrella", "Hooli", "Vandelay", "Soylent", "Cyberdyne", "Tyrell", "Wonka", "Stark"]


def budget_policy(max_distinct: int, over: str) -> str:
    return f"""
detect: [CUSTOMER_NAME]
terms:
  CUSTOMER_NAME: [{", ".join(CUSTOMERS)}]
actions:
  CUSTOMER_NAME: allow
budgets:
  - {{entity: CUSTOMER_NAME, max_distinct: {max_distinct}, window: 1d, over: {over}}}
"""


async def send(gw, name: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(gw.url + "/acme/v1/label", json={"text": f"Ticket from {name} about billing"})


def exposure_cli(config: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "gateway", "exposure", "--vendor", "acme", "--config", str(config)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout


@needs_redis
async def test_past_the_cap_values_are_redacted_and_repeats_stay_in_clear(upstream, write_config, start_gateway, prefix):
    import redis

    cfg = write_config(upstream.url, budget_policy(2, "redact"),
                       top_extra=f"budget_store:\n  redis: {REDIS_URL}\n  prefix: {prefix}")
    gw = await start_gateway(cfg)
    for name in ["Initech", "Globex", "Umbrella", "Initech"]:
        assert (await send(gw, name)).status_code == 200
    assert [r.json()["text"] for r in upstream.received] == [
        "Ticket from Initech about billing",
        "Ticket from Globex about billing",
        "Ticket from <CUSTOMER_NAME> about billing",
        "Ticket from Initech about billing",
    ]
    members = set().union(*(redis.Redis.from_url(REDIS_URL).smembers(k)
                            for k in redis.Redis.from_url(REDIS_URL).scan_iter(f"{prefix}:*")))
    assert len(members) == 2 and all(re.fullmatch(rb"[0-9a-f]{32}", m) for m in members)
    report = exposure_cli(cfg)
    assert re.search(r"acme\s+CUSTOMER_NAME\s+2 / 2\s+\[#{20}\]\s+1d\s+\S+\s+redact  FULL", report), report


async def test_blocking_budget_refuses_new_values_and_names_only_the_type(upstream, write_config, start_gateway):
    cfg = write_config(upstream.url, budget_policy(1, "block"))
    gw = await start_gateway(cfg)
    assert (await send(gw, "Initech")).status_code == 200
    refused = await send(gw, "Globex")
    assert refused.status_code == 403
    assert refused.json()["entity_types"] == ["CUSTOMER_NAME"]
    assert "budget" in refused.json()["error"] and "Globex" not in refused.text
    assert (await send(gw, "Initech")).status_code == 200
    assert len(upstream.received) == 2
    assert "Globex" not in (gw.data_dir / "budgets.sqlite").read_bytes().decode("latin-1")
    assert "1 / 1" in exposure_cli(cfg)


@needs_redis
async def test_two_gateway_instances_share_one_budget(upstream, write_config, start_gateway, prefix, monkeypatch, tmp_path):
    monkeypatch.setenv("VENDORGATE_MASTER_KEY", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
    cfg = write_config(upstream.url, budget_policy(3, "redact"),
                       top_extra=f"budget_store:\n  redis: {REDIS_URL}\n  prefix: {prefix}")
    first = await start_gateway(cfg)
    second_cfg = tmp_path / "second.yaml"
    second_cfg.write_text(cfg.read_text().replace("data_dir: data", "data_dir: data2"))
    second = await start_gateway(second_cfg)
    results = await asyncio.gather(*(send((first, second)[i % 2], name) for i, name in enumerate(CUSTOMERS)))
    assert all(r.status_code == 200 for r in results)
    in_clear = [r.json()["text"] for r in upstream.received if "<CUSTOMER_NAME>" not in r.json()["text"]]
    assert len(upstream.received) == 10 and len(in_clear) == 3


async def test_unreachable_budget_store_fails_closed(upstream, write_config, start_gateway):
    cfg = write_config(upstream.url, budget_policy(5, "redact"), top_extra="budget_store:\n  redis: redis://127.0.0.1:1/0")
    gw = await start_gateway(cfg)
    r = await send(gw, "Initech")
    assert r.status_code == 503 and "Initech" not in r.text
    assert upstream.received == []


async def test_a_task_dropped_by_drop_task_spends_no_budget_for_its_values(upstream, write_config, start_gateway):
    policy = (budget_policy(2, "redact").replace("detect: [CUSTOMER_NAME]", "detect: [CUSTOMER_NAME, US_SSN]")
              .replace("  CUSTOMER_NAME: allow", "  CUSTOMER_NAME: allow\n  US_SSN: block") + "on_block: drop_task\n")
    gw = await start_gateway(write_config(upstream.url, policy))
    batch = [{"text": "Ticket from Initech about billing"},
             {"text": "Ticket from Globex, SSN 536-22-8841"},   # dropped: Globex never leaves
             {"text": "Ticket from Hooli, SSN 536-22-8841"}]    # dropped too
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(gw.url + "/acme/v1/label", json=batch)
        assert r.status_code == 200, r.text
        r = await client.post(gw.url + "/acme/v1/label", json=[{"text": "Ticket from Umbrella about billing"}])
        assert r.status_code == 200, r.text
    first, second = (r.json() for r in upstream.received)
    assert first == [{"text": "Ticket from Initech about billing"}]
    assert second == [{"text": "Ticket from Umbrella about billing"}]  # the second of two: still in clear
    assert "2 / 2" in exposure_cli(gw.config_path)
