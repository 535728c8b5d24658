"""Detection is shared fairly: large bodies never starve small requests, and a caller that
queues too much work gets 429 (with Retry-After), not everyone's 503."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from support import add_callers, as_caller, audit_log

from gateway.detection.engine import CallerQueueFull, DetectionEngine
from gateway.detection.spec import DetectionSpec
from gateway.pipeline.detect import DetectionRun, detect_batched

PATTERNS = """
name: patterns
detect: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, SECRET]
default_action: redact
actions:
  EMAIL_ADDRESS: {action: mask, keep: 4}
"""
EMAIL = "jane.doe@example.com"


def batch(size_bytes: int = 1024 * 1024) -> bytes:
    lines, size, i = [], 0, 0
    while size < size_bytes:
        line = json.dumps({"id": i, "email": f"user{i}@example.org", "phone": f"+1 415-555-{i % 10000:04d}",
                           "text": "the customer asked about a refund for the order placed last week " * 3})
        lines.append(line)
        size += len(line) + 1
        i += 1
    return ("\n".join(lines) + "\n").encode()


async def test_small_requests_keep_succeeding_while_two_callers_post_1mb_in_a_loop(
        upstream, write_config, start_gateway, capsys):
    engine = DetectionEngine(workers=2, timeout_seconds=5.0)
    await engine.start()
    try:
        cfg = write_config(upstream.url, policy=PATTERNS)
        key = add_callers(cfg, ["bulk-a", "bulk-b", "chat"])
        gw = await start_gateway(cfg, eng=engine)
        big = batch()
        stop = asyncio.Event()
        big_status: list[int] = []  # 1 MB posts that finished (on a loaded machine one may take longer than the run)
        in_flight = [0]

        async def poster(name: str) -> None:
            async with httpx.AsyncClient(timeout=60) as client:
                while not stop.is_set():
                    in_flight[0] += 1
                    try:
                        r = await client.post(f"{gw.url}/acme/v1/batch", content=big,
                                              headers={"Content-Type": "application/x-ndjson", **as_caller(key[name])})
                    finally:
                        in_flight[0] -= 1
                    big_status.append(r.status_code)

        posters = [asyncio.create_task(poster(n)) for n in ("bulk-a", "bulk-b")]
        small: list[tuple[int, float, bool]] = []  # status, seconds, whether a 1 MB post was in flight
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                while in_flight[0] < 2:
                    await asyncio.sleep(0.01)
                ends = time.monotonic() + 6
                while time.monotonic() < ends:
                    busy = in_flight[0] > 0
                    t0 = time.perf_counter()
                    r = await client.post(f"{gw.url}/acme/v1/chat", content=f"write to {EMAIL} today",
                                          headers={"Content-Type": "text/plain", **as_caller(key["chat"])})
                    small.append((r.status_code, time.perf_counter() - t0, busy))
                    assert r.status_code == 200, r.text
                    await asyncio.sleep(0.02)
        finally:
            stop.set()
            for task in posters:  # a 1 MB post still in flight is abandoned (the gateway cancels its work)
                task.cancel()
            await asyncio.gather(*posters, return_exceptions=True)
        assert len(small) >= 10 and sum(busy for _, _, busy in small) >= 10  # they ran beside the 1 MB posts
        chats = [r for r in upstream.received if r.path.endswith("/v1/chat")]
        assert len(chats) == len(small) and all(EMAIL not in r.text and "*" in r.text for r in chats)
        latencies = sorted(s for _, s, _ in small)
        with capsys.disabled():  # recorded, not asserted: timing targets live in bench/proxy.py
            print(f"\nsmall requests beside 2 x 1 MB posters: {len(small)} ok, p50 {latencies[len(latencies) // 2]*1e3:.0f} ms,"
                  f" max {latencies[-1]*1e3:.0f} ms; 1 MB posts: {len(big_status)} finished, statuses {sorted(set(big_status))}")
    finally:
        await engine.close()


async def test_a_caller_whose_queue_is_full_gets_429_with_retry_after_and_others_still_pass(
        upstream, write_config, start_gateway):
    engine = DetectionEngine(workers=1, timeout_seconds=30, caller_queue=1)
    await engine.start()
    try:
        cfg = write_config(upstream.url, policy=PATTERNS)
        key = add_callers(cfg, ["flood", "calm"])
        gw = await start_gateway(cfg, eng=engine)
        big = batch(200 * 1024)
        async with httpx.AsyncClient(timeout=60) as client:
            flood = [client.post(f"{gw.url}/acme/v1/batch", content=big,
                                 headers={"Content-Type": "application/x-ndjson", **as_caller(key["flood"])})
                     for _ in range(4)]
            flooded = await asyncio.gather(*flood)
            calm = await client.post(f"{gw.url}/acme/v1/chat", content=f"write to {EMAIL}",
                                     headers={"Content-Type": "text/plain", **as_caller(key["calm"])})
        refused = [r for r in flooded if r.status_code == 429]
        assert refused, [r.status_code for r in flooded]
        assert all(int(r.headers["Retry-After"]) >= 1 and "queued" in r.json()["error"] for r in refused)
        assert calm.status_code == 200
        audited = [r for r in audit_log(gw.data_dir).records() if r["status"] == 429]
        assert len(audited) == len(refused)  # each refusal is audited, as the flooding caller's
        assert all(r["caller"] == "flood" and r["decision"] == "rejected" for r in audited)
    finally:
        await engine.close()


async def _busiest(engine: DetectionEngine, work) -> int:
    """The most worker batches running at once while `work` runs."""
    most = 0
    task = asyncio.ensure_future(work)
    while not task.done():
        most = max(most, engine.in_flight)
        await asyncio.sleep(0.002)
    await task
    return most


async def test_a_large_batch_without_ner_is_scanned_on_every_worker_at_once():
    engine = DetectionEngine(workers=2, timeout_seconds=60)
    await engine.start()
    try:
        texts = [f"ticket {i}: write to user{i}@example.org about the order placed last week" * 20 for i in range(400)]
        spec = DetectionSpec(frozenset({"EMAIL_ADDRESS", "PHONE_NUMBER", "SECRET"}))
        found = []
        assert await _busiest(engine, _collect(detect_batched(engine, texts, spec, "bulk"), found)) == 2
        assert sum(len(t) for t in texts) > 10 * engine.bounded_chars
        assert [len(f) for f in found[0]] == [20] * 400  # every text's emails, in order
    finally:
        await engine.close()


async def test_large_work_with_ner_leaves_one_worker_for_small_requests():
    engine = DetectionEngine(workers=2, timeout_seconds=120)
    await engine.start()
    try:
        prose = "Maria Gonzalez wrote to the team about the order placed last week in Lisbon. " * 250
        spec = DetectionSpec(frozenset({"PERSON", "EMAIL_ADDRESS"}))
        jobs = [engine.detect([prose], spec, caller=f"bulk-{i}") for i in range(3)]
        assert len(prose) > engine.small_chars
        assert await _busiest(engine, asyncio.gather(*jobs)) == 1
    finally:
        await engine.close()


async def _collect(work, into: list) -> None:
    into.append(await work)


async def test_the_caller_cap_counts_requests_and_never_refuses_a_request_its_own_later_chunks():
    engine = DetectionEngine(workers=1, timeout_seconds=120, caller_queue=1)
    await engine.start()
    try:
        spec = DetectionSpec(frozenset({"EMAIL_ADDRESS"}))
        busy = asyncio.ensure_future(engine.detect(["write to bob@example.com " * 20_000], spec, caller="other"))
        while engine.in_flight == 0:
            await asyncio.sleep(0.005)
        first, second = DetectionRun("bulk"), DetectionRun("bulk")  # two requests of one caller
        one = asyncio.ensure_future(engine.detect(["mail ann@example.com"], spec, caller="bulk", request=first))
        await asyncio.sleep(0)
        later = asyncio.ensure_future(engine.detect(["mail cy@example.com"], spec, caller="bulk", request=first))
        refused = asyncio.ensure_future(engine.detect(["mail di@example.com"], spec, caller="bulk", request=second))
        calm = asyncio.ensure_future(engine.detect(["mail ed@example.com"], spec, caller="calm"))
        results = await asyncio.gather(busy, one, later, refused, calm, return_exceptions=True)
        assert isinstance(results[3], CallerQueueFull) and results[3].retry_after >= 1
        assert [len(r[0]) for r in (results[1], results[2], results[4])] == [1, 1, 1]
    finally:
        await engine.close()
