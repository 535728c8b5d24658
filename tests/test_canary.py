"""Canaries: synthetic values of every type through each route's real stages prove
protection is live, and catch a policy that no longer protects."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from support import REPO, start_admin, user_env, vendorgate

from gateway.app.canary import canary_values, run_canaries
from gateway.audit import AuditLog, verify_log
from gateway.config import ConfigError, load_config
from gateway.keys import LocalKeyProvider
from gateway.pipeline.protect import Services

BROKEN = "name: broken\ndetect: all\nmin_score: 1.0\ndefault_action: redact\n"  # finds nothing: a silent failure


def config(tmp_path: Path, policy: Path) -> Path:
    cfg = tmp_path / "vendorgate.yaml"
    cfg.write_text(f"data_dir: data\nvendors:\n  llm:\n    upstream: http://127.0.0.1:9\n    policy: {policy}\n")
    return cfg


def test_canary_values_are_valid_of_their_type_and_fresh_each_run():
    a, b = canary_values(), canary_values()
    digits = [int(c) for c in a["CREDIT_CARD"]]
    checksum = sum(digits[::-2]) + sum(d * 2 - 9 if d > 4 else d * 2 for d in digits[-2::-2])
    assert checksum % 10 == 0
    assert int(a["IBAN_CODE"][4:] + "1314" + a["IBAN_CODE"][2:4]) % 97 == 1
    assert a["SECRET"].startswith("AKIA") and len(a["SECRET"]) == 20
    assert a["CREDIT_CARD"] != b["CREDIT_CARD"] and a["SECRET"] != b["SECRET"]


async def test_canary_catches_a_deliberately_broken_policy_and_records_it(tmp_path, engine):
    (tmp_path / "broken.yaml").write_text(BROKEN)
    settings = load_config(config(tmp_path, tmp_path / "broken.yaml"))
    keys = LocalKeyProvider.in_data_dir(settings.data_dir)
    audit = AuditLog.in_data_dir(settings.data_dir, keys)
    [result] = await run_canaries(settings, Services(engine, keys), audit)
    await audit.close()
    assert not result.ok
    assert {"EMAIL_ADDRESS", "US_SSN", "SECRET"} <= set(result.leaked)  # a Luhn-valid card still scores 1.0
    log = AuditLog.in_data_dir(settings.data_dir, keys)
    [record] = log.records()
    assert record["decision"] == "canary" and record["vendor"] == "llm" and record["status"] == 500
    assert set(record["canary"]["leaked"]) == set(result.leaked)
    assert verify_log(log).ok
    raw = b"".join(p.read_bytes() for p in settings.data_dir.iterdir() if p.is_file())
    assert b"@example.net" not in raw and b"AKIA" not in raw  # types and counts only, never a value


async def test_canary_shows_what_a_shipped_policy_protects(tmp_path, engine):
    settings = load_config(config(tmp_path, REPO / "policies" / "llm-api.yaml"))
    keys = LocalKeyProvider.in_data_dir(settings.data_dir)
    [result] = await run_canaries(settings, Services(engine, keys), None)
    assert {"EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "SECRET", "SECRET:github"} <= set(result.protected)
    assert set(result.sent) == set(canary_values())


def test_canary_command_exits_1_on_a_leak_and_names_the_types(tmp_path):
    (tmp_path / "broken.yaml").write_text(BROKEN)
    run = vendorgate("canary", "--config", str(config(tmp_path, tmp_path / "broken.yaml")), env=user_env())
    assert run.returncode == 1, run.stdout + run.stderr
    assert "llm" in run.stdout and "LEAKED" in run.stdout and "EMAIL_ADDRESS" in run.stdout
    with sqlite3.connect(tmp_path / "data" / "audit.sqlite") as db:
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == 1


async def test_scheduled_canary_catching_a_broken_policy_turns_readyz_red_and_sets_the_metric(
        tmp_path, upstream, start_gateway):
    """`canary:` in serve: the first run at start-up goes through the route's real stages, never to the
    vendor; a leak turns /readyz red on the main and the admin listener and sets the leak gauge."""
    (tmp_path / "broken.yaml").write_text(BROKEN)
    (tmp_path / "good.yaml").write_text((REPO / "policies" / "llm-api.yaml").read_text())
    cfg = tmp_path / "vendorgate.yaml"
    cfg.write_text(f"data_dir: data\ncanary: {{interval_seconds: 3600, vendors: [llm, safe]}}\nvendors:\n"
                   f"  llm:\n    upstream: {upstream.url}\n    policy: broken.yaml\n"
                   f"  safe:\n    upstream: {upstream.url}\n    policy: good.yaml\n"
                   f"  other:\n    upstream: {upstream.url}\n    policy: good.yaml\n")
    gw = await start_gateway(cfg)
    admin, runner = await start_admin(gw)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            async def checks() -> dict:
                return (await client.get(f"{gw.url}/readyz")).json()["checks"]

            for _ in range(600):
                if (await checks())["canary"] != "ok (first run pending)":
                    break
                await asyncio.sleep(0.1)
            main, side = await client.get(f"{gw.url}/readyz"), await client.get(f"{admin}/readyz")
            metrics = (await client.get(f"{admin}/metrics")).text
    finally:
        await runner.cleanup()
    assert main.status_code == side.status_code == 503
    state = main.json()["checks"]["canary"]
    assert state.startswith("leaking: llm (") and "EMAIL_ADDRESS" in state and "safe" not in state
    leaked = re.search(r'^vendorgate_canary_leaked_types\{vendor="llm"\} (\d+)', metrics, re.M)
    assert leaked and int(float(leaked.group(1))) >= 3
    assert re.search(r'^vendorgate_canary_leaked_types\{vendor="safe"\} 0\.0$', metrics, re.M)
    assert 'vendorgate_canary_runs_total{result="leaked",vendor="llm"} 1.0' in metrics
    assert 'vendor="other"' not in metrics.split("vendorgate_canary")[-1]  # not a canary route
    assert upstream.received == []  # the canary never reaches a vendor
    assert "@example.net" not in metrics + main.text and "AKIA" not in metrics + main.text  # types, never values
    await gw.runner.cleanup()
    log = AuditLog.in_data_dir(gw.data_dir, LocalKeyProvider.in_data_dir(gw.data_dir))
    records = {r["vendor"]: r for r in log.records() if r["decision"] == "canary"}
    assert set(records) == {"llm", "safe"} and records["llm"]["status"] == 500 and records["safe"]["status"] == 200
    assert verify_log(log).ok
    raw = b"".join(p.read_bytes() for p in gw.data_dir.iterdir() if p.is_file())
    assert b"@example.net" not in raw and b"AKIA" not in raw and b"ghp_" not in raw
    log.db.close()


def test_canary_routes_must_be_configured_vendors(tmp_path):
    (tmp_path / "broken.yaml").write_text(BROKEN)
    cfg = config(tmp_path, tmp_path / "broken.yaml")
    cfg.write_text(cfg.read_text() + "canary: {vendors: [llm, nope]}\n")
    with pytest.raises(ConfigError, match="canary.vendors: nope is not a configured vendor"):
        load_config(cfg)
