"""Admin listener and metrics (issue 12, part 2): /metrics, /healthz, /readyz, /status, on a real
gateway with the admin app on its own port; readiness follows the detection workers."""

from __future__ import annotations

import asyncio
import os
import re
import signal

import httpx
import pytest
from support import POLICY, add_callers, as_caller, free_port, start_admin

from gateway.app.server import RUNTIME_KEY
from gateway.detection.engine import DetectionEngine

LEAKY = "jane.doe@corp.com_536-22-8841"
EMAIL = "john.smith@example.com"
SSN = "536-22-8841"


@pytest.fixture
def admin_config(upstream, write_config, monkeypatch):
    monkeypatch.setenv("VG_TEST_ADMIN_TOKEN", "admin-secret-token")
    cfg = write_config(upstream.url, POLICY.replace("US_SSN: hash", "US_SSN: block"),
                       top_extra='admin: {listen: "127.0.0.1:9", token_env: VG_TEST_ADMIN_TOKEN}')
    cfg.write_text(cfg.read_text() + f'  down:\n    upstream: "http://127.0.0.1:{free_port()}"\n    policy: policy.yaml\n')
    return cfg


async def test_metrics_count_requests_findings_blocks_and_errors_with_no_sensitive_label(
        admin_config, start_gateway):
    keys = add_callers(admin_config, ["billing-svc"])
    gw = await start_gateway(admin_config)
    admin, runner = await start_admin(gw)
    try:
        key = as_caller(keys["billing-svc"])
        async with httpx.AsyncClient(timeout=60) as client:
            ok = await client.post(f"{gw.url}/acme/v1/users/{EMAIL}", json={"note": f"mail {EMAIL}"},
                                   headers={**key, "X-Vendorgate-Caller": LEAKY})
            blocked = await client.post(f"{gw.url}/acme/v1/x", json={"note": f"ssn {SSN}"}, headers=key)
            down = await client.post(f"{gw.url}/down/v1/x", json={"a": 1}, headers=key)
            unknown = await client.post(f"{gw.url}/{LEAKY}/x", json={"a": 1}, headers=key)
            anonymous = await client.post(f"{gw.url}/acme/v1/x", json={"a": 1}, headers={"X-Vendorgate-Caller": LEAKY})
            assert [ok.status_code, blocked.status_code, down.status_code, unknown.status_code,
                    anonymous.status_code] == [200, 403, 502, 404, 401]
            assert (await client.get(f"{admin}/metrics")).status_code == 401  # token_env set: token needed
            m = await client.get(f"{admin}/metrics", headers={"Authorization": "Bearer admin-secret-token"})
        assert m.status_code == 200
        text = m.text
        for line in ('vendorgate_requests_total{caller="billing-svc",decision="forwarded",status="200",vendor="acme"} 1.0',
                     'vendorgate_requests_total{caller="billing-svc",decision="blocked",status="403",vendor="acme"} 1.0',
                     'vendorgate_requests_total{caller="billing-svc",decision="error",status="502",vendor="down"} 1.0',
                     'vendorgate_requests_total{caller="billing-svc",decision="rejected",status="404",vendor="-"} 1.0',
                     'vendorgate_requests_total{caller="anonymous",decision="rejected",status="401",vendor="acme"} 1.0',
                     'vendorgate_blocked_requests_total{entity_type="US_SSN",vendor="acme"} 1.0',
                     'vendorgate_upstream_errors_total{kind="unreachable",vendor="down"} 1.0',
                     'vendorgate_detection_workers{state="configured"} 1.0',
                     'vendorgate_detection_workers{state="alive"} 1.0',
                     'vendorgate_audit_append_seconds_count 5.0'):
            assert line in text, line
        assert re.search(r'vendorgate_findings_total\{entity_type="EMAIL_ADDRESS",vendor="acme"\} [1-9]', text)
        assert re.search(r'vendorgate_findings_total\{entity_type="US_SSN",vendor="acme"\} 1.0', text)
        assert re.search(r'vendorgate_actions_total\{action="mask",vendor="acme"\} [1-9]', text)
        assert re.search(r'vendorgate_actions_total\{action="block",vendor="acme"\} 1.0', text)
        assert re.search(r'vendorgate_upstream_duration_seconds_count\{vendor="acme"\} 1.0', text)
        assert re.search(r'vendorgate_gateway_duration_seconds_count\{vendor="acme"\} 3.0', text)
        assert re.search(r'vendorgate_request_duration_seconds_bucket\{le="\+Inf",vendor="acme"\} 3.0', text)
        for value in (LEAKY, "jane.doe", SSN, EMAIL, "john.smith", keys["billing-svc"]):
            assert value not in text
    finally:
        await runner.cleanup()


async def test_status_needs_the_admin_token_and_nothing_admin_is_on_the_vendor_listener(
        admin_config, start_gateway):
    keys = add_callers(admin_config, ["billing-svc"])
    gw = await start_gateway(admin_config)
    admin, runner = await start_admin(gw)
    try:
        key = keys["billing-svc"]
        async with httpx.AsyncClient(timeout=60) as client:
            assert (await client.get(f"{admin}/status")).status_code == 401
            assert (await client.get(f"{admin}/status", headers={"Authorization": f"Bearer {key}"})).status_code == 401
            assert (await client.get(f"{admin}/status", headers={"Authorization": "Bearer admin-secret-tokeX"})).status_code == 401
            st = await client.get(f"{admin}/status", headers={"Authorization": "Bearer admin-secret-token"})
            assert st.status_code == 200
            status = st.json()
            digest = gw.runner.app[RUNTIME_KEY].settings.policies["acme"].digest
            assert status["vendors"]["acme"]["policy_digest"] == digest and digest
            assert [c["name"] for c in status["callers"]] == ["billing-svc"] and status["auth"] == "on"
            assert key not in st.text and "salt" not in st.text and "hash" not in st.text
            for path in ("/metrics", "/status", "/acme/../metrics", "/acme/metrics"):
                r = await client.get(f"{gw.url}{path}", headers={"Authorization": f"Bearer {key}"})
                assert "vendorgate_requests_total" not in r.text and "policy_digest" not in r.text, path
            for base in (gw.url, admin):
                assert (await client.get(f"{base}/healthz")).json() == {"status": "ok"}
                ready = await client.get(f"{base}/readyz")
                assert ready.status_code == 200, ready.text
                assert set(ready.json()["checks"]) >= {"detection_workers", "audit_log", "vault", "policies"}
            assert (await client.get(f"{gw.url}/-/health")).status_code == 200
    finally:
        await runner.cleanup()


async def test_readyz_turns_red_when_a_detection_worker_dies_and_green_once_replaced(
        upstream, write_config, start_gateway):
    engine = DetectionEngine(workers=1, timeout_seconds=60)
    await engine.start()
    try:
        gw = await start_gateway(write_config(upstream.url), eng=engine)
        async with httpx.AsyncClient(timeout=60) as client:
            assert (await client.get(f"{gw.url}/readyz")).status_code == 200
            (pid,) = engine.worker_pids()
            os.kill(pid, signal.SIGKILL)
            seen_red = None
            for _ in range(100):
                r = await client.get(f"{gw.url}/readyz")
                if r.status_code == 503:
                    seen_red = r.json()
                    break
                await asyncio.sleep(0.05)
            assert seen_red is not None and seen_red["checks"]["detection_workers"].startswith("down")
            for _ in range(240):
                r = await client.get(f"{gw.url}/readyz")
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.5)
            assert r.status_code == 200, r.text
            assert engine.worker_pids() != [pid]
            ok = await client.post(f"{gw.url}/acme/v1/x", json={"note": f"mail {EMAIL}"})
            assert ok.status_code == 200 and EMAIL not in upstream.received[-1].text
    finally:
        await engine.close()
