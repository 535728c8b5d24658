"""The network: slow or half-open clients, connection floods, huge headers, malformed requests.

Raw sockets on loopback against the gateway run the way `vendorgate serve` runs it (`GatewayRunner`)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from support import free_port

from gateway.app.limits import GatewayRunner
from gateway.app.server import build_app
from gateway.config import load_config

TOKEN = "ghp_" + "r40VZx1vDxSEJPRpadQoxEr94srjjIjhRRgD"
LIMITS = """limits:
  header_timeout_seconds: 1
  body_timeout_seconds: 1
  idle_timeout_seconds: 1
  max_connections_per_client: 8
"""


@pytest_asyncio.fixture
async def guarded(upstream, write_config, engine, tmp_path):
    runners = []

    async def start(top_extra: str = LIMITS):
        settings = load_config(write_config(upstream.url, top_extra=top_extra))
        runner = GatewayRunner(build_app(settings, engine), settings.config.limits, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return port, settings, runner

    yield start
    for r in runners:
        await r.cleanup()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before closing; fails if it is still open after `seconds`."""
    return await asyncio.wait_for(reader.read(), seconds)


async def test_slowloris_request_head_is_closed_after_the_header_timeout(guarded, upstream):
    port, _, _ = await guarded()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    head = b"POST /acme/x HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 50
    closed = False
    for byte in head:  # one byte every 0.1 s: the head is never complete within the timeout
        if reader.at_eof():
            closed = True
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        await asyncio.sleep(0.1)
        if time.monotonic() - started > 4:
            break
    if not closed:
        await closed_within(reader, 3)
    assert time.monotonic() - started < 5
    assert upstream.received == []
    writer.close()


async def test_half_open_connections_are_capped_per_client_and_closed_after_the_timeout(guarded):
    port, _, _ = await guarded()
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
    await asyncio.sleep(0.2)
    answers = await asyncio.gather(*(closed_within(r, 4) for r, _ in conns))
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    assert len(refused) == 12  # beyond 8 per client address
    assert all(a == b"" for a in answers if not a.startswith(b"HTTP/1.1 503"))  # the rest: closed by the timeout
    for _, w in conns:
        w.close()
    # the slots were released: a normal request works again
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"http://127.0.0.1:{port}/acme/x", content="hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200


async def test_request_body_that_never_finishes_gets_408_and_is_not_forwarded(guarded, upstream):
    port, _, _ = await guarded()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /acme/x HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nhello")
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.split()[1] == b"408"
    assert upstream.received == []
    writer.close()


async def test_idle_keep_alive_connection_is_closed(guarded):
    port, _, _ = await guarded()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await reader.readline()).split()[1] == b"200"
    started = time.monotonic()
    await closed_within(reader, 4)
    assert time.monotonic() - started < 4
    writer.close()


async def test_total_request_header_size_is_capped_and_nothing_is_forwarded(guarded, upstream):
    port, _, _ = await guarded()
    headers = {f"X-Pad-{i}": "p" * 8000 for i in range(90)}  # 720 KB, each under aiohttp's 8 KB per field
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"http://127.0.0.1:{port}/acme/x", content="hello",
                              headers={"Content-Type": "text/plain", **headers})
    assert r.status_code == 431
    assert upstream.received == []


async def test_too_many_header_lines_are_refused_and_nothing_is_forwarded(guarded, upstream):
    port, _, _ = await guarded()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = b"".join(b"X-H-%d: 1\r\n" % i for i in range(150))
    writer.write(b"POST /acme/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + lines + b"\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).split()[1] in (b"400", b"431")
    assert upstream.received == []
    writer.close()


@pytest.mark.parametrize("bad_header", [
    b"X-Debug-Token: " + TOKEN.encode() + b"\x00",
    b"X-Tok\x01en: " + TOKEN.encode(),
    b"X-Token " + TOKEN.encode(),
])
async def test_malformed_request_is_answered_without_echoing_or_logging_the_raw_header(guarded, upstream, caplog,
                                                                                      bad_header):
    caplog.set_level(logging.DEBUG)
    port, _, _ = await guarded()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /acme/x HTTP/1.1\r\nHost: x\r\n" + bad_header + b"\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    answer = await closed_within(reader, 5)
    writer.close()
    assert answer.split()[1] == b"400"
    assert TOKEN.encode() not in answer
    logged = "\n".join(r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
                       for r in caplog.records)
    assert "malformed request" in logged
    assert TOKEN not in logged and TOKEN[:12] not in logged
    assert upstream.received == []


async def test_unknown_vendor_segment_is_never_echoed_stored_or_exported(guarded, upstream, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    siem = tmp_path / "siem.jsonl"
    port, settings, runner = await guarded(LIMITS + f"sinks:\n  - {{name: siem, type: jsonl, path: {siem}}}\n")
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"http://127.0.0.1:{port}/{TOKEN}/x", content="hello",
                              headers={"Content-Type": "text/plain"})
    assert r.status_code == 404
    assert TOKEN not in r.text and "unknown vendor" in r.json()["error"]  # no vendor list either (issue 12)
    for _ in range(50):
        if siem.exists() and siem.read_text().strip():
            break
        await asyncio.sleep(0.1)
    await runner.cleanup()
    exported = siem.read_text()
    assert json.loads(exported.splitlines()[0])["status"] == 404
    stored = {p: p.read_bytes() for p in settings.data_dir.rglob("*") if p.is_file()}
    assert stored and all(TOKEN.encode() not in data and TOKEN[4:].encode() not in data for data in stored.values())
    assert TOKEN not in exported
    ours = [r for r in caplog.records if r.name.startswith(("vendorgate", "aiohttp"))]  # httpx logs its own URL
    assert TOKEN not in "\n".join(r.getMessage() for r in ours)
    assert upstream.received == []
