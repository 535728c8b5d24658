"""The hostile vendor: what a vendor sends back cannot restore another caller's tokens, leak the
injected credential, send the caller around the gateway, exhaust the gateway, or stream forever."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import re
import time

import httpx
import pytest
import zstandard
from aiohttp import web
from support import add_callers, as_caller

from gateway.audit import AuditLog
from gateway.keys import LocalKeyProvider

NAME, EMAIL = "John Smith", "john.smith@example.com"
SECRET = "sk-live-" + "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
POLICY = """
name: reversible
detect: all
min_score: 0.5
default_action: redact
actions:
  PERSON: tokenize
  EMAIL_ADDRESS: encrypt
  DATE_TIME: allow
  URL: allow
"""
TOKENS = re.compile(r"PERSON_[0-9A-Z]{10,26}|vg1k\d+_EMAIL_ADDRESS_[0-9A-Z]+")


async def post(url, **kw):
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(url, **kw)


def audit_records(data_dir):
    log = AuditLog.in_data_dir(data_dir, LocalKeyProvider.in_data_dir(data_dir))
    try:
        return log.records()
    finally:
        log.db.close()


# --- restore is scoped to the caller -------------------------------------------------------------

def replay_vendor(upstream, kind: str):
    """A vendor that answers every request with the tokens it has seen so far, from any caller."""
    seen: list[str] = []

    async def handler(request, body):
        seen.extend(TOKENS.findall(body.decode()))
        text = " ".join(seen)
        if kind == "json":
            return web.json_response({"answer": text})
        if kind == "text":
            return web.Response(text=text, content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': text}}]})}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    upstream.handler = handler


@pytest.mark.parametrize("kind", ["json", "text", "sse"])
async def test_a_vendor_cannot_restore_one_callers_tokens_for_another_caller(upstream, write_config, start_gateway,
                                                                           kind):
    replay_vendor(upstream, kind)
    cfg = write_config(upstream.url, POLICY)
    keys = add_callers(cfg, ["caller-a", "caller-b"])  # the caller comes from authentication only
    gw = await start_gateway(cfg)
    a = await post(gw.url + "/acme/v1/chat", json={"q": f"Write to {NAME} at {EMAIL}"},
                   headers=as_caller(keys["caller-a"]))
    assert a.status_code == 200, a.text
    assert NAME in a.text and EMAIL in a.text  # caller A gets its own values back
    b = await post(gw.url + "/acme/v1/chat", json={"q": "hello"}, headers=as_caller(keys["caller-b"]))
    assert b.status_code == 200, b.text
    assert NAME not in b.text and EMAIL not in b.text  # the vendor replayed A's tokens to B: left as tokens
    assert TOKENS.search(b.text)
    await gw.runner.cleanup()
    records = audit_records(gw.data_dir)
    assert records[-1]["caller"] == "caller-b" and records[-1]["restored"] == 0 and records[-1]["foreign_tokens"] >= 2
    # ... and A still gets them in a later answer
    gw = await start_gateway(gw.config_path)
    again = await post(gw.url + "/acme/v1/chat", json={"q": "more"}, headers=as_caller(keys["caller-a"]))
    assert NAME in again.text and EMAIL in again.text


@pytest.mark.parametrize("disguise", ["halves", "base64"])
async def test_a_token_smuggled_in_pieces_by_another_caller_is_never_restored_to_it(
        upstream, write_config, start_gateway, disguise):
    """B learned A's token and sends it in two halves (or base64); the vendor joins (or decodes) it and
    answers with it: it is still A's, so B never gets A's name (a token-shaped half is itself
    rewritten on the way out, and so is a token inside base64: what the vendor assembles is not
    even A's token any more)."""
    pieces: list[str] = []

    async def joining_vendor(request, body):
        sent = json.loads(body)
        if "parts" in sent:
            token = "".join(sent["parts"])
        elif "b64" in sent:  # the gateway may have rewritten it on the way out: then it decodes to nothing useful
            token = base64.b64decode(sent["b64"] + "==").decode("utf-8", "replace")
        else:
            pieces.extend(TOKENS.findall(body.decode()))
            token = ""
        return web.json_response({"answer": f"Dear {token or pieces[-1]}"})

    upstream.handler = joining_vendor
    cfg = write_config(upstream.url, POLICY)
    keys = add_callers(cfg, ["caller-a", "caller-b"])
    gw = await start_gateway(cfg)
    a = await post(gw.url + "/acme/v1/chat", json={"q": f"Write to {NAME}"}, headers=as_caller(keys["caller-a"]))
    assert NAME in a.text  # A's own token comes back to A as the name
    [token] = [p for p in pieces if p.startswith("PERSON_")]
    body = ({"parts": [token[: len(token) // 2], token[len(token) // 2 :]]} if disguise == "halves"
            else {"b64": base64.b64encode(token.encode()).decode()})
    b = await post(gw.url + "/acme/v1/chat", json=body, headers=as_caller(keys["caller-b"]))
    assert b.status_code == 200, b.text
    assert NAME not in b.text
    await gw.runner.cleanup()
    assert audit_records(gw.data_dir)[-1]["restored"] == 0


async def test_restore_scope_per_request_restores_only_that_requests_tokens(upstream, write_config, start_gateway):
    replay_vendor(upstream, "json")
    gw = await start_gateway(write_config(upstream.url, POLICY, vendor_extra="restore_scope: request\n"))
    first = await post(gw.url + "/acme/v1/chat", json={"q": f"Write to {NAME}"}, headers={"X-Vendorgate-Caller": "a"})
    assert NAME in first.text
    second = await post(gw.url + "/acme/v1/chat", json={"q": "hi"}, headers={"X-Vendorgate-Caller": "a"})
    assert NAME not in second.text


async def test_restore_scope_per_conversation(upstream, write_config, start_gateway):
    replay_vendor(upstream, "json")
    gw = await start_gateway(write_config(upstream.url, POLICY, vendor_extra="restore_scope: conversation\n"))
    h1 = {"X-Vendorgate-Caller": "a", "X-Vendorgate-Conversation": "c1"}
    await post(gw.url + "/acme/v1/chat", json={"q": f"Write to {NAME}"}, headers=h1)
    same = await post(gw.url + "/acme/v1/chat", json={"q": "hi"}, headers=h1)
    other = await post(gw.url + "/acme/v1/chat", json={"q": "hi"},
                       headers={"X-Vendorgate-Caller": "a", "X-Vendorgate-Conversation": "c2"})
    assert NAME in same.text and NAME not in other.text


# --- the injected credential never comes back -----------------------------------------------------

def credential_config(write_config, upstream, policy=None, extra=""):
    kw = {"policy": policy} if policy else {}
    return write_config(upstream.url, vendor_extra="credential: {header: Authorization, env: ACME_KEY, prefix: 'Bearer '}\n"
                        + extra, **kw)


@pytest.mark.parametrize("mode", ["json-restore", "plain", "gzip-plain", "sse", "split"])
async def test_a_vendor_echoing_the_injected_credential_never_returns_it(upstream, write_config, start_gateway,
                                                                         monkeypatch, mode):
    monkeypatch.setenv("ACME_KEY", SECRET)

    async def echo(request, body):
        auth = request.headers["Authorization"]
        headers = {"X-Echo-Auth": auth, "WWW-Authenticate": f'Bearer realm="{auth}"'}
        if mode == "json-restore":
            return web.json_response({"you_sent": dict(request.headers)}, headers=headers)
        if mode == "plain":
            return web.Response(body=b"\x00\x01binary " + auth.encode(), content_type="application/octet-stream",
                                headers=headers)
        if mode == "gzip-plain":
            return web.Response(body=gzip.compress(b"binary " + auth.encode()), content_type="application/octet-stream",
                                headers={**headers, "Content-Encoding": "gzip"})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream" if mode == "sse" else "text/plain",
                                           **headers})
        await resp.prepare(request)
        raw = f"data: {auth}\n\n".encode()
        for i in range(0, len(raw), 5):  # the secret split over many chunks
            await resp.write(raw[i:i + 5])
            await asyncio.sleep(0.01)
        return resp

    upstream.handler = echo
    gw = await start_gateway(credential_config(write_config, upstream, POLICY if mode == "json-restore" else None))
    r = await post(gw.url + "/acme/v1/x", content="hello", headers={"Content-Type": "text/plain"})
    assert upstream.received[0].headers["Authorization"] == "Bearer " + SECRET  # the vendor did get it
    everything = json.dumps(dict(r.headers)) + r.content.decode("latin-1")
    assert SECRET not in everything and SECRET[8:20] not in everything
    assert "[vendor credential removed]" in everything


# --- redirects and cookies ------------------------------------------------------------------------

async def test_a_cross_origin_redirect_is_relayed_without_its_location(gateway, upstream):
    async def redirect(request, body):
        return web.Response(status=307, headers={"Location": "https://evil.example/collect?x=1",
                                                 "Set-Cookie": "track=1; Path=/"})

    upstream.handler = redirect
    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as client:
        r = await client.post(gateway.url + "/acme/v1/x", content="hi", headers={"Content-Type": "text/plain"})
    assert r.status_code == 307
    assert "location" not in r.headers and "set-cookie" not in r.headers


async def test_a_same_origin_redirect_is_rewritten_to_the_gateway_route(gateway, upstream):
    async def redirect(request, body):
        target = "/v1/other?page=2" if request.path.endswith("/a") else upstream.url + "/v1/third"
        return web.Response(status=307, headers={"Location": target})

    upstream.handler = redirect
    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as client:
        r1 = await client.post(gateway.url + "/acme/v1/a", content="hi", headers={"Content-Type": "text/plain"})
        r2 = await client.post(gateway.url + "/acme/v1/b", content="hi", headers={"Content-Type": "text/plain"})
    assert r1.headers["location"] == "/acme/v1/other?page=2"
    assert r2.headers["location"] == "/acme/v1/third"


async def test_set_cookie_is_forwarded_only_when_the_vendor_config_says_so(upstream, write_config, start_gateway):
    async def cookie(request, body):
        return web.Response(text="ok", headers={"Set-Cookie": "sid=abc; Path=/"})

    upstream.handler = cookie
    gw = await start_gateway(write_config(upstream.url, vendor_extra="set_cookie: forward\n"))
    r = await post(gw.url + "/acme/v1/x", content="hi", headers={"Content-Type": "text/plain"})
    assert r.headers["set-cookie"].startswith("sid=abc")


# --- response decompression bombs -----------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["application/json", "text/event-stream"])
async def test_a_compressed_response_bomb_stops_at_the_cap_without_blocking_the_event_loop(
        upstream, write_config, start_gateway, content_type):
    squeeze = zstandard.ZstdCompressor(level=3).compressobj()
    zeros = b"\x00" * (1024 * 1024)
    bomb = b"".join(squeeze.compress(zeros) for _ in range(512)) + squeeze.flush()  # 512 MiB of zeros
    assert len(bomb) < 100_000

    async def bombing(request, body):
        return web.Response(body=bomb, headers={"Content-Type": content_type, "Content-Encoding": "zstd"})

    upstream.handler = bombing
    gw = await start_gateway(write_config(upstream.url, POLICY))
    started = time.monotonic()
    task = asyncio.create_task(post(gw.url + "/acme/v1/x", json={"q": f"to {NAME}"}))
    health = []
    while not task.done() and time.monotonic() - started < 30:  # the loop keeps answering meanwhile
        async with httpx.AsyncClient(timeout=5) as client:
            t = time.monotonic()
            await client.get(gw.url + "/-/health")
            health.append(time.monotonic() - t)
        await asyncio.sleep(0.05)
    r = await task
    assert time.monotonic() - started < 20
    assert max(health, default=0) < 2
    if content_type == "application/json":
        assert r.status_code == 502
    else:
        assert len(r.content) <= 64 * 1024 * 1024
    await gw.runner.cleanup()
    assert "exceeds" in audit_records(gw.data_dir)[-1]["error"] or r.status_code == 502


# --- streams are bounded and audited --------------------------------------------------------------

@pytest.mark.parametrize("policy", [None, POLICY])
async def test_a_never_ending_stream_is_ended_at_the_vendors_bound_and_audited(upstream, write_config, start_gateway,
                                                                             policy):
    async def forever(request, body):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        while True:
            await resp.write(b'data: {"choices": [{"index": 0, "delta": {"content": "more "}}]}\n\n')
            await asyncio.sleep(0.05)

    upstream.handler = forever
    kw = {"policy": policy} if policy else {}
    gw = await start_gateway(write_config(upstream.url, vendor_extra="stream_max_seconds: 1\n", **kw))
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", gw.url + "/acme/v1/chat", json={"q": "hi"}) as r:
            body = b"".join([c async for c in r.aiter_bytes()])
    assert time.monotonic() - started < 5
    assert b"more" in body
    await asyncio.sleep(0.2)
    await gw.runner.cleanup()
    record = audit_records(gw.data_dir)[-1]
    assert record["status"] == 200 and "exceeded 1s" in record["error"]


async def test_a_stream_is_ended_at_the_vendors_byte_bound(upstream, write_config, start_gateway):
    async def forever(request, body):
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        while True:
            await resp.write(b"x" * 4096)
            await asyncio.sleep(0)

    upstream.handler = forever
    gw = await start_gateway(write_config(upstream.url, vendor_extra="stream_max_bytes: 100000\n"))
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", gw.url + "/acme/v1/x", content="hi", headers={"Content-Type": "text/plain"}) as r:
            body = b"".join([c async for c in r.aiter_bytes()])
    assert len(body) <= 100000
    await gw.runner.cleanup()
    assert "exceeded 100000 bytes" in audit_records(gw.data_dir)[-1]["error"]


# --- the vault's scopes, on both backends -------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_vault_scopes_say_which_caller_a_surrogate_was_issued_to(tmp_path, backend, request):
    from gateway.actions.base import Issued
    from gateway.reversible.vault import PostgresVault, SQLiteVault

    keys = LocalKeyProvider.in_data_dir(tmp_path / "keys")
    if backend == "postgres":
        vault = await PostgresVault(request.getfixturevalue("pg_dsn"), keys).open()
    else:
        vault = await SQLiteVault(tmp_path / "vault.sqlite3", keys).open()
    try:
        await vault.store("acme", [Issued("PERSON_7QX2K4M9TB", "PERSON", "Alice")], scope="caller:a")
        await vault.store("acme", [Issued("PERSON_7QX2K4M9TB", "PERSON", "Alice")], scope="caller:c")
        await vault.add_to_scope("acme", "caller:a", ["vg1k1_EMAIL_ADDRESS_ABC"])
        assert await vault.in_scope("acme", "caller:a", ["person_7qx2k4m9tb", "VG1K1_EMAIL_ADDRESS_ABC"]) == {
            "person_7qx2k4m9tb", "vg1k1_email_address_abc"}
        assert await vault.in_scope("acme", "caller:b", ["person_7qx2k4m9tb"]) == set()
        assert await vault.in_scope("acme", "caller:c", ["person_7qx2k4m9tb"]) == {"person_7qx2k4m9tb"}
        assert await vault.in_scope("other", "caller:a", ["person_7qx2k4m9tb"]) == set()
    finally:
        await vault.close()
