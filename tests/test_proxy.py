"""End to end through the real gateway to a real upstream that records what it received."""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx
import pytest
import zstandard
from aiohttp import web
from support import EMAIL, POLICY, SENSITIVE, SSN, payload, post

THINGS = "/acme/v1/things"


async def test_sensitive_json_values_are_replaced_before_the_vendor_sees_them(gateway, upstream):
    r = await post(gateway, THINGS, json=payload(), headers={"X-Vendorgate-Caller": "billing-svc"})
    assert r.status_code == 200, r.text
    assert len(upstream.received) == 1
    got = upstream.received[0]
    for value in SENSITIVE:
        assert value not in got.text
    body = got.json()
    assert body["customer"]["name"] == "<PERSON>"
    assert body["customer"]["email"].endswith(".com") and "*" in body["customer"]["email"]
    assert body["count"] == 3
    assert "**** **** **** 1111" in body["note"]
    assert "US_SSN_" in body["note"] and "<SECRET>" in body["note"]
    assert got.headers["Content-Length"] == str(len(got.body))
    assert "X-Vendorgate-Caller" not in got.headers


async def test_hash_is_stable_per_vendor_and_differs_across_vendors(upstream, write_config, start_gateway, tmp_path):
    cfg = write_config(upstream.url, vendor_extra="")
    text = cfg.read_text() + f'  other:\n    upstream: "{upstream.url}"\n    policy: policy.yaml\n'
    cfg.write_text(text)
    gw = await start_gateway(cfg)
    for vendor in ("acme", "acme", "other"):
        await post(gw, f"/{vendor}/x", content=f"ssn {SSN}", headers={"Content-Type": "text/plain"})
    hashed = [r.text.split()[1] for r in upstream.received]
    assert hashed[0] == hashed[1] != hashed[2]
    assert all(h.startswith("US_SSN_") for h in hashed)


async def test_allow_forwards_the_value_unchanged(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, POLICY.replace("EMAIL_ADDRESS: {action: mask, keep: 4}", "EMAIL_ADDRESS: allow")))
    await post(gw, THINGS, content=f"write to {EMAIL}", headers={"Content-Type": "text/plain"})
    assert upstream.received[0].text == f"write to {EMAIL}"


async def test_blocked_request_never_reaches_vendor(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, POLICY.replace("US_SSN: hash", "US_SSN: block")))
    r = await post(gw, THINGS, json=payload())
    assert r.status_code == 403
    body = r.json()
    assert body["entity_types"] == ["US_SSN"]
    assert SSN not in r.text and "078" not in r.text
    assert upstream.received == []


async def test_unknown_vendor_is_404_and_nothing_is_forwarded(gateway, upstream):
    r = await post(gateway, "/nobody/x", json={"a": 1})
    assert r.status_code == 404
    assert "acme" not in r.json()["error"]  # the 404 does not list configured vendors
    assert upstream.received == []


async def _raw_request(url: str, target: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


@pytest.mark.parametrize("target", [
    "/acme/../secret", "/acme/a/../../etc/passwd", "/acme/%2e%2e/x", "/acme/a%2fb", "/acme/a%5cb",
    "/acme//evil.example/x", "/acme/http://evil.example/", "/acme/./x",
])
async def test_path_cannot_escape_the_vendor_upstream(gateway, upstream, target):
    status = await _raw_request(gateway.url, target)
    assert status in (400, 404)
    assert upstream.received == []


async def test_query_and_path_are_forwarded_with_values_protected(gateway, upstream):
    async with httpx.AsyncClient() as client:
        r = await client.get(gateway.url + "/acme/v1/search", params={"q": f"mail {EMAIL}", "page": "2"})
    assert r.status_code == 200
    got = upstream.received[0]
    assert got.path == "/v1/search"
    assert EMAIL not in got.query and "page=2" in got.query


async def test_oversized_body_is_413_and_not_forwarded(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, vendor_extra="max_body_bytes: 1000\n"))
    r = await post(gw, THINGS, content=b"x" * 5000, headers={"Content-Type": "text/plain"})
    assert r.status_code == 413
    assert upstream.received == []


async def test_gzip_body_is_scanned_and_forwarded_decoded(gateway, upstream):
    body = gzip.compress(json.dumps({"email": EMAIL}).encode())
    r = await post(gateway, THINGS, content=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    got = upstream.received[0]
    assert "Content-Encoding" not in got.headers
    assert EMAIL not in got.text and got.json()["email"].endswith(".com")


async def test_zstd_decompression_bomb_is_413(gateway, upstream):
    bomb = zstandard.ZstdCompressor().compress(b"a" * (200 * 1024 * 1024))
    r = await post(gateway, THINGS, content=bomb, headers={"Content-Type": "text/plain", "Content-Encoding": "zstd"})
    assert r.status_code == 413
    assert upstream.received == []


async def test_unsupported_content_encoding_is_refused(gateway, upstream):
    r = await post(gateway, THINGS, content=b"abc", headers={"Content-Type": "text/plain", "Content-Encoding": "compress"})
    assert r.status_code == 415
    assert upstream.received == []


async def test_body_without_content_type_is_scanned_as_text(gateway, upstream):
    r = await post(gateway, THINGS, content=f"mail {EMAIL}".encode())
    assert r.status_code == 200
    assert EMAIL not in upstream.received[0].text


async def test_binary_body_without_content_type_is_blocked(gateway, upstream):
    r = await post(gateway, THINGS, content=b"\xff\xfe\x00binary")
    assert r.status_code == 415
    assert upstream.received == []


async def test_unknown_content_type_is_blocked_by_default(gateway, upstream):
    r = await post(gateway, THINGS, content=b"\x89PNG....", headers={"Content-Type": "image/png"})
    assert r.status_code == 415
    assert upstream.received == []


async def test_unknown_content_type_passes_when_policy_says_pass(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, POLICY + "unknown_content: pass\n"))
    r = await post(gw, THINGS, content=b"\x89PNG....", headers={"Content-Type": "image/png"})
    assert r.status_code == 200
    assert upstream.received[0].body == b"\x89PNG...."


async def test_malformed_json_is_400_and_not_forwarded(gateway, upstream):
    r = await post(gateway, THINGS, content=b'{"a": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "line 1" in r.json()["error"]
    assert upstream.received == []


async def test_form_body_values_are_protected(gateway, upstream):
    r = await post(gateway, THINGS, data={"email": EMAIL, "plan": "pro"})
    assert r.status_code == 200
    got = upstream.received[0].text
    assert "plan=pro" in got and "john.smith" not in got


async def test_json_object_keys_and_identifier_numbers_are_scanned(gateway, upstream):
    r = await post(gateway, THINGS, json={EMAIL: {"card": 4111111111111111}, "n": 1.5})
    assert r.status_code == 200
    body = upstream.received[0].json()
    assert EMAIL not in json.dumps(body)
    value = next(v for k, v in body.items() if k != "n")
    assert value["card"] == "************1111"
    assert body["n"] == 1.5


async def test_json_without_findings_is_forwarded_byte_for_byte(gateway, upstream):
    raw = b'{ "a" : [1, 2.50, true],\n "b": "plain words" }'
    await post(gateway, THINGS, content=raw, headers={"Content-Type": "application/json"})
    assert upstream.received[0].body == raw


async def test_credential_is_injected_and_callers_copy_stripped(upstream, write_config, start_gateway, monkeypatch):
    monkeypatch.setenv("ACME_TOKEN", "s3cr3t-upstream-token")
    gw = await start_gateway(write_config(upstream.url, vendor_extra=(
        "credential: {header: Authorization, env: ACME_TOKEN, prefix: 'Bearer '}\n")))
    await post(gw, THINGS, content="hi", headers={"Authorization": "Bearer caller-own", "Content-Type": "text/plain",
                                          "Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1", "Accept-Language": "en"})
    got = upstream.received[0].headers
    assert got["Authorization"] == "Bearer s3cr3t-upstream-token"
    assert "X-Drop-Me" not in got and got["Accept-Language"] == "en"
    assert got["Host"] == upstream.url.removeprefix("http://")


async def test_upstream_down_is_502_json(upstream, write_config, start_gateway):
    from support import free_port

    gw = await start_gateway(write_config(f"http://127.0.0.1:{free_port()}"))
    r = await post(gw, THINGS, content="hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 502
    assert "unreachable" in r.json()["error"]


async def test_slow_upstream_is_504(upstream, write_config, start_gateway):
    async def slow(request, body):
        await asyncio.sleep(5)
        return web.Response(text="late")

    upstream.handler = slow
    gw = await start_gateway(write_config(upstream.url, vendor_extra="timeout_seconds: 0.5\n"))
    r = await post(gw, THINGS, content="hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 504


async def test_response_is_streamed_not_buffered(gateway, upstream):
    release = asyncio.Event()

    async def streaming(request, body):
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(b"first chunk\n")
        await asyncio.wait_for(release.wait(), 10)
        await resp.write(b"second chunk\n")
        return resp

    upstream.handler = streaming
    async with httpx.AsyncClient(timeout=20) as client:
        async with client.stream("POST", gateway.url + "/acme/stream", content="x") as r:
            chunks = r.aiter_text()
            first = await chunks.__anext__()
            assert first.startswith("first chunk")
            release.set()
            rest = "".join([c async for c in chunks])
    assert "second chunk" in first + rest


async def test_curl_sees_the_same_protection(gateway, upstream):
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "-o", "-", "-w", "\n%{http_code}", gateway.url + "/acme/anything",
        "-H", "Content-Type: application/json", "-d", json.dumps(payload()),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert out.decode().rstrip().endswith("200")
    assert all(v not in upstream.received[0].text for v in SENSITIVE)
