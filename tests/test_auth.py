"""Callers authenticate with gateway keys (issue 12, part 1): real gateway, real recording vendor,
the openai SDK and httpx as callers, the `vendorgate callers` CLI as an operator runs it."""

from __future__ import annotations

import logging
import subprocess
import sys

import httpx
import pytest
from openai import AsyncOpenAI, AuthenticationError, PermissionDeniedError
from support import REPO

from gateway.app.auth import CallerKeys
from gateway.app.server import RUNTIME_KEY
from gateway.audit import AuditLog
from gateway.config import ConfigError, load_config
from gateway.keys import LocalKeyProvider

LEAKY_CALLER = "jane.doe@corp.com_536-22-8841"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def two_vendors(cfg, upstream_url):
    cfg.write_text(cfg.read_text() + f'  other:\n    upstream: "{upstream_url}"\n    policy: policy.yaml\n')
    return cfg


def records(data_dir) -> list[dict]:
    return AuditLog.in_data_dir(data_dir, LocalKeyProvider.existing(data_dir)).records()


def every_byte(folder) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.fixture
def auth_config(upstream, write_config):
    return two_vendors(write_config(upstream.url, top_extra="auth: {keys_file: callers.yaml}"), upstream.url)


async def test_cli_key_works_as_the_openai_sdk_api_key_and_never_reaches_the_vendor(
        auth_config, upstream, start_gateway, caplog):
    caplog.set_level(logging.DEBUG)
    out = cli("callers", "add", "billing-svc", "--vendors", "acme", "--config", str(auth_config))
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("vg_") and "shown once" in out.stderr
    stored = (auth_config.parent / "callers.yaml").read_text()
    assert "billing-svc" in stored and key not in stored and key.split("_", 2)[2] not in stored
    assert oct((auth_config.parent / "callers.yaml").stat().st_mode & 0o777) == "0o600"

    gw = await start_gateway(auth_config)
    sdk = AsyncOpenAI(base_url=f"{gw.url}/acme/v1", api_key=key, max_retries=0, timeout=60)
    try:
        await sdk.models.list()
    finally:
        await sdk.close()
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(f"{gw.url}/acme/v1/x", json={"a": 1}, headers={"X-Vendorgate-Key": key})
        assert r.status_code == 200
    assert len(upstream.received) == 2
    for got in upstream.received:
        assert key not in str(got.headers)
        assert "Authorization" not in got.headers and "X-Vendorgate-Key" not in got.headers
    await gw.runner.cleanup()
    assert [r["caller"] for r in records(gw.data_dir)] == ["billing-svc", "billing-svc"]
    assert key.encode() not in every_byte(gw.data_dir)
    assert key not in caplog.text


async def test_missing_wrong_or_revoked_key_is_401_other_vendor_is_403_all_audited(
        auth_config, upstream, start_gateway):
    key = CallerKeys.load(auth_config.parent / "callers.yaml").add("billing-svc", ["acme"])
    gw = await start_gateway(auth_config)
    async with httpx.AsyncClient(timeout=60) as client:
        none = await client.post(f"{gw.url}/acme/v1/x", json={"a": 1})
        wrong = await client.post(f"{gw.url}/acme/v1/x", json={"a": 1},
                                  headers={"Authorization": "Bearer " + key[:-4] + "AAAA"})
        junk = await client.post(f"{gw.url}/acme/v1/x", json={"a": 1}, headers={"Authorization": "Bearer sk-123"})
        other = await client.post(f"{gw.url}/other/v1/x", json={"a": 1}, headers={"Authorization": f"Bearer {key}"})
        unknown = await client.post(f"{gw.url}/nobody/v1/x", json={"a": 1}, headers={"Authorization": f"Bearer {key}"})
        assert [none.status_code, wrong.status_code, junk.status_code, other.status_code, unknown.status_code] == \
            [401, 401, 401, 403, 403]
        assert none.headers["WWW-Authenticate"].startswith("Bearer")
        assert upstream.received == []
        # revoke, reload (what SIGHUP does): the key stops working
        assert (await client.post(f"{gw.url}/acme/v1/x", json={}, headers={"X-Vendorgate-Key": key})).status_code == 200
        out = cli("callers", "revoke", "billing-svc", "--config", str(auth_config))
        assert out.returncode == 0, out.stderr
        assert gw.runner.app[RUNTIME_KEY].reload()
        assert (await client.post(f"{gw.url}/acme/v1/x", json={}, headers={"X-Vendorgate-Key": key})).status_code == 401
    await gw.runner.cleanup()
    rows = records(gw.data_dir)
    assert [(r["decision"], r["status"], r["caller"]) for r in rows] == [
        ("rejected", 401, "anonymous"), ("rejected", 401, "anonymous"), ("rejected", 401, "anonymous"),
        ("rejected", 403, "billing-svc"), ("rejected", 403, "billing-svc"),
        ("forwarded", 200, "billing-svc"), ("rejected", 401, "anonymous")]
    assert rows[3]["vendor"] == "other" and rows[4]["vendor"] == ""


async def test_the_sdk_sees_401_and_403(auth_config, upstream, start_gateway):
    key = CallerKeys.load(auth_config.parent / "callers.yaml").add("billing-svc", ["acme"])
    gw = await start_gateway(auth_config)
    for base, api_key, error in ((f"{gw.url}/acme/v1", "sk-not-a-gateway-key", AuthenticationError),
                                 (f"{gw.url}/other/v1", key, PermissionDeniedError)):
        sdk = AsyncOpenAI(base_url=base, api_key=api_key, max_retries=0, timeout=60)
        try:
            with pytest.raises(error):
                await sdk.models.list()
        finally:
            await sdk.close()
    assert upstream.received == []


async def test_without_auth_the_caller_header_is_ignored_and_never_stored(gateway, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(f"{gateway.url}/acme/v1/x", json={"a": 1}, headers={"X-Vendorgate-Caller": LEAKY_CALLER})
        assert r.status_code == 200
    assert "X-Vendorgate-Caller" not in upstream.received[0].headers
    await gateway.runner.cleanup()
    assert [r["caller"] for r in records(gateway.data_dir)] == ["anonymous"]
    data = every_byte(gateway.data_dir)
    for part in (LEAKY_CALLER, "jane.doe", "536-22-8841", "536228841"):
        assert part.encode() not in data
        assert part not in caplog.text


async def test_unknown_vendor_404_does_not_list_the_configured_vendors(gateway):
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(f"{gateway.url}/nobody/x", json={"a": 1})
        health = await client.get(f"{gateway.url}/-/health")
    assert r.status_code == 404 and "acme" not in r.text
    assert health.status_code == 200 and "acme" not in health.text


def test_non_loopback_listen_needs_auth_or_an_explicit_opt_out(upstream, write_config):
    cfg = write_config(upstream.url)
    cfg.write_text(cfg.read_text().replace('listen: "127.0.0.1:8080"', 'listen: "0.0.0.0:8080"'))
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert f"{cfg}:1: listen: 0.0.0.0:8080 is not a loopback address" in str(err.value)
    cfg.write_text("allow_unauthenticated: true\n" + cfg.read_text())
    assert load_config(cfg).config.listen == "0.0.0.0:8080"
    cfg.write_text(cfg.read_text().replace("allow_unauthenticated: true\n", "auth: {keys_file: callers.yaml}\n"))
    assert load_config(cfg).config.auth.keys_file == cfg.parent / "callers.yaml"


def test_callers_cli_add_list_revoke(auth_config):
    assert cli("callers", "add", "Jane.Doe@corp.com", "--config", str(auth_config)).returncode == 2
    assert cli("callers", "add", "svc-a", "--vendors", "acme,nope", "--config", str(auth_config)).returncode == 2
    a = cli("callers", "add", "svc-a", "--vendors", "acme,other", "--config", str(auth_config))
    b = cli("callers", "add", "svc-b", "--config", str(auth_config))
    assert a.returncode == b.returncode == 0
    assert cli("callers", "add", "svc-a", "--config", str(auth_config)).returncode == 2  # exists
    listing = cli("callers", "list", "--config", str(auth_config))
    assert listing.returncode == 0
    assert "svc-a" in listing.stdout and "acme, other" in listing.stdout and "(every vendor)" in listing.stdout
    assert a.stdout.strip() not in listing.stdout and "2 active caller(s)" in listing.stdout
    assert cli("callers", "revoke", "svc-a", "--config", str(auth_config)).returncode == 0
    assert cli("callers", "revoke", "svc-a", "--config", str(auth_config)).returncode == 2
    keys = CallerKeys.load(auth_config.parent / "callers.yaml")
    assert keys.names() == ["svc-b"]
    assert keys.authenticate(a.stdout.strip()) is None
    assert keys.authenticate(b.stdout.strip()).name == "svc-b"
