"""Reversible actions end to end: the vendor (a real server on loopback) receives
tokens, the caller gets the originals back in JSON, text and SSE responses."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import zlib

import brotli
import httpx
import pytest
import zstandard
from aiohttp import web
from support import post, vendorgate

from gateway.actions.base import Issued
from gateway.audit import AuditLog
from gateway.keys import LocalKeyProvider
from gateway.reversible.tokens import tokenize_surrogate
from gateway.reversible.vault import SQLiteVault

NAME, EMAIL, SSN, CARD = "John Smith", "john.smith@example.com", "536-22-8841", "4111 1111 1111 1111"

POLICY = """
name: reversible
detect: all
min_score: 0.5
default_action: redact
actions:
  PERSON: tokenize
  EMAIL_ADDRESS: encrypt
  US_SSN: fpe
  CREDIT_CARD: {action: fpe, luhn: true}
  SECRET: block
  DATE_TIME: allow
  URL: allow
never_restore: [CREDIT_CARD]
"""
PERSON_TOKEN = re.compile(r"PERSON_[0-9A-Z]{10,26}")
EMAIL_TOKEN = re.compile(r"vg1k\d+_EMAIL_ADDRESS_[0-9A-Z]+")


def audit_records(data_dir):
    log = AuditLog.in_data_dir(data_dir, LocalKeyProvider.in_data_dir(data_dir))
    try:
        return log.records()
    finally:
        log.db.close()


def text_reply(body_for):
    async def handler(request, body):
        return web.Response(text=body_for(body.decode()), content_type="text/plain")
    return handler


async def test_json_answer_gets_originals_back_except_never_restore_types(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, POLICY))
    sent = {"customer": NAME, "email": EMAIL, "note": f"SSN {SSN}, card {CARD}"}
    r = await post(gw, "/acme/v1/tickets", json=sent)
    assert r.status_code == 200, r.text
    got = upstream.received[0].text
    for value in (NAME, EMAIL, SSN, CARD):
        assert value not in got
    vendor_saw = json.loads(got)
    assert PERSON_TOKEN.fullmatch(vendor_saw["customer"]) and EMAIL_TOKEN.fullmatch(vendor_saw["email"])
    fpe_card = vendor_saw["note"].split("card ")[1]
    assert re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}", fpe_card) and fpe_card != CARD
    assert re.search(r"SSN \d{3}-\d{2}-\d{4},", vendor_saw["note"])

    assert r.headers["Content-Length"] == str(len(r.content))
    echoed = json.loads(r.json()["echo"])  # still valid JSON, with originals inside the echoed string
    assert echoed == {**sent, "note": f"SSN {SSN}, card {fpe_card}"}
    record = audit_records(gw.data_dir)[-1]
    assert (record["restored"], record["foreign_tokens"]) == (3, 0)
    assert NAME not in json.dumps(record) and SSN not in json.dumps(record)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "deflate"])
async def test_compressed_text_answer_is_decoded_and_restored(coding, upstream, write_config, start_gateway):
    compress = {"gzip": gzip.compress, "br": brotli.compress, "zstd": zstandard.compress, "deflate": zlib.compress}[coding]

    async def handler(request, body):  # compresses although the gateway asked for identity
        return web.Response(body=compress(b"You wrote: " + body), headers={
            "Content-Type": "text/plain; charset=utf-8", "Content-Encoding": coding})

    upstream.handler = handler
    gw = await start_gateway(write_config(upstream.url, POLICY))
    r = await post(gw, "/acme/x", content=f"Call {NAME} today", headers={"Content-Type": "text/plain"})
    assert upstream.received[0].headers["Accept-Encoding"] == "identity"
    assert NAME not in upstream.received[0].text
    assert r.text == f"You wrote: Call {NAME} today"
    assert "Content-Encoding" not in r.headers


async def test_synthetic_values_are_natural_for_the_vendor_and_restored_for_the_caller(upstream, write_config, start_gateway):
    upstream.handler = text_reply(lambda text: f"Dear {text.split(': ')[1]}, thanks.")
    gw = await start_gateway(write_config(upstream.url, POLICY.replace("PERSON: tokenize", "PERSON: synthetic")))
    r = await post(gw, "/acme/x", content=f"Customer: {NAME}", headers={"Content-Type": "text/plain"})
    fake = upstream.received[0].text.split(": ")[1]
    assert fake != NAME and re.fullmatch(r"[A-Z][a-z]+\.? [A-Z][A-Za-z' .-]+", fake), fake
    assert r.text == f"Dear {NAME}, thanks."


async def test_binary_answers_pass_through_unchanged(upstream, write_config, start_gateway):
    holder = {}

    async def handler(request, body):
        holder["token"] = PERSON_TOKEN.search(body.decode()).group(0)
        return web.Response(body=b"\x00\x01" + holder["token"].encode(), content_type="application/octet-stream")

    upstream.handler = handler
    gw = await start_gateway(write_config(upstream.url, POLICY))
    r = await post(gw, "/acme/x", content=f"Call {NAME}", headers={"Content-Type": "text/plain"})
    assert r.content == b"\x00\x01" + holder["token"].encode()


async def test_first_sse_event_reaches_the_caller_before_the_vendor_finishes(upstream, write_config, start_gateway):
    release = asyncio.Event()

    async def handler(request, body):
        token = PERSON_TOKEN.search(body.decode()).group(0)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = lambda text: f'data: {json.dumps({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})}\n\n'
        await response.write(chunk("Hello ").encode())
        await release.wait()  # nothing more until the caller has seen the first event
        await response.write((chunk(token[:5]) + chunk(token[5:] + ", bye") + "data: [DONE]\n\n").encode())
        await response.write_eof()
        return response

    upstream.handler = handler
    gw = await start_gateway(write_config(upstream.url, POLICY))
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream("POST", gw.url + "/acme/v1/chat", content=f"Customer: {NAME}",
                                 headers={"Content-Type": "text/plain"}) as r:
            lines = r.aiter_lines()
            first = await asyncio.wait_for(anext(lines), 30)  # would hang if the gateway buffered
            assert json.loads(first[6:])["choices"][0]["delta"]["content"] == "Hello "
            release.set()
            rest = [line async for line in lines]
    text = "".join(json.loads(line[6:])["choices"][0]["delta"]["content"]
                   for line in rest if line.startswith("data: {"))
    assert text == f"{NAME}, bye"
    assert rest[-1] == "data: [DONE]" or rest[-2] == "data: [DONE]"


async def test_token_issued_to_another_vendor_is_not_restored_and_is_counted(upstream, write_config, start_gateway):
    cfg = write_config(upstream.url, POLICY)
    cfg.write_text(cfg.read_text() + f'  other:\n    upstream: "{upstream.url}"\n    policy: policy.yaml\n')
    gw = await start_gateway(cfg)
    await post(gw, "/acme/x", json={"customer": NAME, "email": EMAIL})
    acme = json.loads(upstream.received[0].text)
    stolen = f"{acme['customer']} {acme['email']}"
    upstream.handler = text_reply(lambda text: f"I know {stolen}")
    r = await post(gw, "/other/x", content="Who is it?", headers={"Content-Type": "text/plain"})
    assert r.text == f"I know {stolen}"
    record = audit_records(gw.data_dir)[-1]
    assert record["vendor"] == "other" and (record["foreign_tokens"], record["restored"]) == (2, 0)


async def test_token_the_caller_wrote_is_not_restored_into_its_original(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, POLICY))
    await post(gw, "/acme/x", json={"customer": NAME})
    token = json.loads(upstream.received[0].text)["customer"]
    upstream.handler = text_reply(lambda text: f"You asked about {token}.")
    r = await post(gw, "/acme/x", content=f"What does {token} stand for?", headers={"Content-Type": "text/plain"})
    assert upstream.received[1].text == f"What does {token} stand for?"
    assert r.text == f"You asked about {token}."


async def test_value_fpe_cannot_protect_blocks_the_request_naming_only_its_type(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, POLICY.replace("DATE_TIME: allow", "DATE_TIME: fpe")))
    r = await post(gw, "/acme/x", content="The meeting is on March 5", headers={"Content-Type": "text/plain"})
    assert r.status_code == 403
    assert r.json()["entity_types"] == ["DATE_TIME"] and "fpe" in r.json()["error"]
    assert "March" not in r.text
    assert upstream.received == []
    record = audit_records(gw.data_dir)[-1]
    assert record["decision"] == "blocked" and "March" not in json.dumps(record)


async def test_surrogate_taken_by_another_value_gets_a_longer_one(upstream, write_config, start_gateway):
    cfg = write_config(upstream.url, POLICY)
    data_dir = cfg.parent / "data"
    keys = LocalKeyProvider.in_data_dir(data_dir)
    taken = tokenize_surrogate(keys, "acme", "PERSON", NAME)
    vault = await SQLiteVault(data_dir / "vault.sqlite3", keys).open()
    await vault.store("acme", [Issued(taken, "PERSON", "Someone Else")])
    await vault.close()

    gw = await start_gateway(cfg)
    upstream.handler = text_reply(lambda text: text.upper().replace("PERSON_", "person_"))
    r = await post(gw, "/acme/x", content=f"hello {NAME}", headers={"Content-Type": "text/plain"})
    sent = upstream.received[0].text.split(" ")[1]
    assert PERSON_TOKEN.fullmatch(sent) and len(sent) == len(taken) + 4 and sent.startswith(taken)
    assert r.text == f"HELLO {NAME}"  # re-cased by the vendor, still restored




async def test_start_up_fails_loudly_when_no_key_opens_the_vault(upstream, write_config, start_gateway):
    cfg = write_config(upstream.url, POLICY)
    gw = await start_gateway(cfg)
    await post(gw, "/acme/x", json={"customer": NAME})
    await gw.runner.cleanup()
    (gw.data_dir / "keys.json").unlink()  # the key is lost: no new one is made next to the vault
    lost = vendorgate("serve", "--config", str(cfg))
    assert lost.returncode == 2 and "a token vault (vault.sqlite3)" in lost.stderr
    assert "but no key file keys.json: restore" in lost.stderr
    assert not (gw.data_dir / "keys.json").exists()
    assert vendorgate("keys", "init", "--force", "--config", str(cfg)).returncode == 0  # another key, explicitly
    done = vendorgate("serve", "--config", str(cfg))
    assert done.returncode == 2
    assert "holds 1 token(s) that no configured key can open" in done.stderr
    assert NAME not in done.stderr and "Traceback" not in done.stderr


async def test_rotated_keys_issue_new_tokens_and_old_tokens_still_restore(upstream, write_config, start_gateway):
    cfg = write_config(upstream.url, POLICY)
    first = await start_gateway(cfg)
    await post(first, "/acme/x", json={"customer": NAME, "email": EMAIL})
    old = json.loads(upstream.received[0].text)
    assert old["email"].startswith("vg1k1_")

    rotated = vendorgate("keys", "rotate", "--config", str(cfg))
    assert rotated.returncode == 0 and "new current key k2" in rotated.stdout
    listed = vendorgate("keys", "list", "--config", str(cfg))
    assert listed.stdout.splitlines()[:2] == ["k1", "k2  (current)"]

    second = await start_gateway(cfg)  # a restart picks the new key up
    upstream.handler = text_reply(lambda text: f"old {old['customer']} {old['email']} / new {text}")
    r = await post(second, "/acme/x", content=f"{EMAIL}", headers={"Content-Type": "text/plain"})
    new_email = upstream.received[1].text
    assert new_email.startswith("vg1k2_EMAIL_ADDRESS_")
    assert r.text == f"old {NAME} {EMAIL} / new {EMAIL}"
    verified = vendorgate("audit", "verify", "--config", str(cfg))
    assert verified.returncode == 0, verified.stderr
