"""Attacks that already fail against the gateway, pinned: request smuggling, ambiguous framing,
obs-fold, SSRF through the request target or Host, nested compression bombs."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest


async def raw(gw_url: str, data: bytes) -> bytes:
    host, port = gw_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("framing", [
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",          # CL.TE
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",          # TE.CL
    b"Content-Length: 5\r\nContent-Length: 40\r\n",                  # duplicate lengths
    b"Content-Length: 5, 40\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
    b"Transfer-Encoding: xchunked\r\n",
    b"Content-Length: +5\r\n",
])
async def test_ambiguous_request_framing_is_refused_and_nothing_is_forwarded(gateway, upstream, framing):
    smuggled = b"0\r\n\r\nPOST /acme/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    answer = await raw(gateway.url, b"POST /acme/x HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n" + framing
                       + b"\r\n" + smuggled)
    assert status(answer) == 400
    assert all(r.path != "/smuggled" for r in upstream.received)
    assert upstream.received == []


async def test_obs_fold_header_continuation_is_refused(gateway, upstream):
    answer = await raw(gateway.url, b"POST /acme/x HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n")
    assert status(answer) == 400
    assert upstream.received == []


@pytest.mark.parametrize("target", [b"http://169.254.169.254/latest/meta-data/", b"//evil.example/x",
                                    b"/acme@evil.example/x", b"/acme/%2F%2Fevil.example/x"])
async def test_request_target_cannot_point_the_gateway_at_another_host(gateway, upstream, target):
    answer = await raw(gateway.url, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status(answer) in (400, 404)
    assert upstream.received == []


async def test_host_header_does_not_choose_the_upstream(gateway, upstream):
    answer = await raw(gateway.url, b"GET /acme/x HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n")
    assert status(answer) == 200
    assert upstream.received[0].headers["Host"] == upstream.url.removeprefix("http://")


async def test_nested_compression_bomb_in_the_request_is_413(gateway, upstream):
    inner = gzip.compress(b"a" * (200 * 1024 * 1024))
    body = gzip.compress(inner)
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(gateway.url + "/acme/x", content=body,
                              headers={"Content-Type": "text/plain", "Content-Encoding": "gzip, gzip"})
    assert r.status_code == 413
    assert upstream.received == []
