"""When detection cannot finish, nothing is forwarded."""

from __future__ import annotations

import os
import signal

import httpx

from gateway.detection.engine import DetectionEngine


async def test_detection_timeout_fails_closed_with_503(upstream, write_config, start_gateway):
    slow_engine = DetectionEngine(workers=1, timeout_seconds=0.001)
    await slow_engine.start()
    try:
        gw = await start_gateway(write_config(upstream.url), eng=slow_engine)
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(gw.url + "/acme/x", content="Call John Smith " * 2000, headers={"Content-Type": "text/plain"})
        assert r.status_code == 503
        assert "timed out" in r.json()["error"]
        assert upstream.received == []
    finally:
        await slow_engine.close()


async def test_dead_worker_fails_closed_then_recovers(upstream, write_config, start_gateway):
    eng = DetectionEngine(workers=1, timeout_seconds=60)
    await eng.start()
    try:
        gw = await start_gateway(write_config(upstream.url), eng=eng)
        for pid in eng.worker_pids():
            os.kill(pid, signal.SIGKILL)
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(gw.url + "/acme/x", content="hello there", headers={"Content-Type": "text/plain"})
            assert r.status_code == 503
            assert upstream.received == []
            r = await client.post(gw.url + "/acme/x", content="hello there", headers={"Content-Type": "text/plain"})
            assert r.status_code == 200
        assert len(upstream.received) == 1
    finally:
        await eng.close()


async def test_a_worker_dying_mid_request_fails_that_request_and_the_next_waits_for_the_replacement():
    import asyncio

    import pytest

    from gateway.detection.engine import DetectionError
    from gateway.policy import default_policy

    spec = default_policy().detection_spec()
    eng = DetectionEngine(workers=1, timeout_seconds=60)
    await eng.start()
    try:
        busy = asyncio.ensure_future(eng.detect(["Call John Smith in Berlin about the invoice. " * 400] * 8, spec))
        while eng.in_flight == 0:
            await asyncio.sleep(0.005)
        for pid in eng.worker_pids():
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(DetectionError):
            await busy
        found = await eng.detect(["Call John Smith"], spec)  # waits for the replacement, not refused
        assert {f.entity_type for f in found[0]} == {"PERSON"}
    finally:
        await eng.close()
