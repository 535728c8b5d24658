"""Format presets end to end: media passes byte for byte (fast, audited by
SHA-256) or refuses; refusals in the vendor's own error shape, final for a
block and retryable when the gateway fails closed; OpenAI batch output and the
Label Studio export restored; the shipped policies and config load."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from test_vendor_streams import EMAIL, NAME, PROMPT, TOKEN, assert_vendor_saw_only_tokens
from vendor_upstreams import AnthropicVendor, LabelStudioVendor, OpenAIVendor

from gateway.audit import AuditLog
from gateway.audit.ledger import ExposureLedger
from gateway.config import load_config
from gateway.detection.engine import DetectionEngine
from gateway.keys import LocalKeyProvider

REPO = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(1_100_000)
PNG_B64 = base64.b64encode(PNG).decode()
DATA_URL = "data:image/png;base64," + PNG_B64
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def policy(name: str, media: str = "pass") -> str:
    return (REPO / "policies" / name).read_text().replace("media: pass", f"media: {media}")


async def audit_records(gw, n):
    log = AuditLog.in_data_dir(gw.data_dir, LocalKeyProvider.in_data_dir(gw.data_dir))
    for _ in range(200):
        if len(log.records()) >= n:
            return log.records()
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} audit records")


@pytest_asyncio.fixture
async def vendors():
    started = []

    async def start(cls):
        started.append(await cls().start())
        return started[-1]

    yield start
    for v in started:
        await v.close()


@pytest.fixture
def through(write_config, start_gateway):
    async def start(vendor, fmt: str, policy_text: str, eng=None):
        return await start_gateway(write_config(vendor.url, policy=policy_text, vendor_extra=f"format: {fmt}\n"),
                                   eng=eng)

    return start


def openai_sdk(gw, retries=0):
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=f"{gw.url}/acme/v1", api_key="sk-test-not-a-real-key", max_retries=retries, timeout=60)


def anthropic_sdk(gw, retries=0):
    from anthropic import AsyncAnthropic

    return AsyncAnthropic(base_url=f"{gw.url}/acme", api_key="sk-ant-test", max_retries=retries, timeout=60)


async def test_openai_image_data_url_passes_byte_for_byte_fast_and_is_audited(vendors, through):
    vendor = await vendors(OpenAIVendor)
    gw = await through(vendor, "openai", policy("openai.yaml"))
    sdk = openai_sdk(gw)
    text_only = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
    with_image = [{"role": "user", "content": [{"type": "text", "text": PROMPT},
                                               {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "high"}}]}]
    await sdk.chat.completions.create(model="gpt-test", messages=text_only)  # warm up
    started = time.perf_counter()
    await sdk.chat.completions.create(model="gpt-test", messages=text_only)
    plain = time.perf_counter() - started
    started = time.perf_counter()
    reply = await sdk.chat.completions.create(model="gpt-test", messages=with_image)
    image = time.perf_counter() - started
    await sdk.close()
    sent = vendor.received[2]["messages"][0]["content"]
    assert sent[1]["image_url"] == {"url": DATA_URL, "detail": "high"}  # byte for byte, not a token spliced in
    assert NAME not in sent[0]["text"] and EMAIL not in sent[0]["text"] and TOKEN.search(sent[0]["text"])
    assert reply.choices[0].message.content == f"Noted: {PROMPT}"
    assert image < plain + 2.0, (image, plain)  # was 8.6 s: the base64 went through every detector
    record = (await audit_records(gw, 3))[-1]
    assert record["unscanned_parts"] == [{
        "field": "$['messages'][0]['content'][1]['image_url']['url']", "content_type": "image/png",
        "bytes": len(PNG), "sha256": hashlib.sha256(DATA_URL.encode()).hexdigest()}]


async def test_anthropic_base64_image_passes_and_media_block_refuses_in_anthropic_shape(vendors, through):
    import anthropic

    vendor = await vendors(AnthropicVendor)
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
               {"type": "text", "text": PROMPT}]
    sdk = anthropic_sdk(await through(vendor, "anthropic", policy("anthropic.yaml")))
    message = await sdk.messages.create(model="claude-test", max_tokens=64, messages=[{"role": "user", "content": content}])
    await sdk.close()
    assert vendor.received[0]["messages"][0]["content"][0]["source"]["data"] == PNG_B64
    assert_vendor_saw_only_tokens(vendor)
    assert message.content[1].text == f"Noted: {PROMPT}"

    gw = await through(vendor, "anthropic", policy("anthropic.yaml", media="block"))
    sdk = anthropic_sdk(gw, retries=2)
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        await sdk.messages.create(model="claude-test", max_tokens=64, messages=[{"role": "user", "content": content}])
    await sdk.close()
    assert len(vendor.received) == 1  # nothing more reached the vendor
    assert caught.value.response.headers["x-should-retry"] == "false"
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
    assert "source" in body["error"]["message"] and PNG_B64[:20] not in json.dumps(body)
    records = await audit_records(gw, 2)  # both gateways write the same data dir
    assert [r["decision"] for r in records] == ["forwarded", "blocked"]  # one refusal: not retried


async def test_media_scan_text_parts_scans_text_files_never_rewrites_them_and_passes_images(vendors, through):
    import openai

    def file_part(text: str) -> dict:
        data = "data:text/plain;base64," + base64.b64encode(text.encode()).decode()
        return {"type": "file", "file": {"filename": "notes.txt", "file_data": data}}

    vendor = await vendors(OpenAIVendor)
    gw = await through(vendor, "openai", policy("openai.yaml", media="scan_text_parts"))
    sdk = openai_sdk(gw)
    clean = file_part("Quarterly numbers are up.")
    image = {"type": "image_url", "image_url": {"url": DATA_URL}}
    await sdk.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Summarise"}, clean, image]}])
    sent = vendor.received[0]["messages"][0]["content"]
    assert sent[1] == clean and sent[2] == image
    record = (await audit_records(gw, 1))[0]
    assert [(p["content_type"], p.get("scanned", False)) for p in record["unscanned_parts"]] == [
        ("text/plain", True), ("image/png", False)]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await sdk.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": [
            {"type": "text", "text": "Summarise"}, file_part(f"Call {NAME} at {EMAIL} today")]}])
    await sdk.close()
    assert len(vendor.received) == 1
    assert "EMAIL_ADDRESS" in caught.value.body["entity_types"] and "file_data" in caught.value.message
    assert EMAIL not in json.dumps(caught.value.body)


async def test_openai_block_is_an_openai_error_the_sdk_does_not_retry(vendors, through):
    import openai

    vendor = await vendors(OpenAIVendor)
    gw = await through(vendor, "openai", policy("openai.yaml"))
    sdk = openai_sdk(gw, retries=2)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await sdk.chat.completions.create(model="gpt-test", messages=[
            {"role": "user", "content": f"deploy with key {AWS_KEY} please"}])
    await sdk.close()
    assert vendor.received == []
    err = caught.value
    assert err.status_code == 403 and err.response.headers["x-should-retry"] == "false"
    assert err.code == "blocked_by_policy" and err.type == "vendorgate_blocked"
    assert "SECRET" in err.message and AWS_KEY not in json.dumps(err.body)
    assert set(err.body) >= {"message", "type", "param", "code"} and err.body["entity_types"] == ["SECRET"]
    assert len(await audit_records(gw, 1)) == 1  # one attempt only


async def test_fail_closed_is_a_retryable_503_in_the_vendor_shape(vendors, through):
    import openai

    slow = DetectionEngine(workers=1, timeout_seconds=0.001)
    await slow.start()
    try:
        vendor = await vendors(OpenAIVendor)
        gw = await through(vendor, "openai", policy("openai.yaml"), eng=slow)
        sdk = openai_sdk(gw, retries=1)
        with pytest.raises(openai.InternalServerError) as caught:
            await sdk.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": PROMPT}])
        await sdk.close()
        assert caught.value.status_code == 503 and caught.value.response.headers["x-should-retry"] == "true"
        assert caught.value.type == "server_error" and caught.value.code == "gateway_unavailable"
        assert len(await audit_records(gw, 2)) == 2  # the SDK retried it, as it should
        assert vendor.received == []

        anth = await vendors(AnthropicVendor)
        gw = await through(anth, "anthropic", policy("anthropic.yaml"), eng=slow)
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(gw.url + "/acme/v1/messages", json={
                "model": "claude-test", "max_tokens": 8, "messages": [{"role": "user", "content": PROMPT}]})
        assert r.status_code == 503 and r.headers["x-should-retry"] == "true"
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "api_error"
    finally:
        await slow.close()


async def test_openai_batch_output_file_is_restored_as_it_streams(vendors, through):
    vendor = await vendors(OpenAIVendor)
    sdk = openai_sdk(await through(vendor, "openai", policy("openai.yaml")))
    await sdk.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": PROMPT}])
    sent = vendor.received[0]["messages"][0]["content"]
    lines = [{"id": f"batch_req_{i}", "custom_id": f"req-{i}", "response": {"status_code": 200, "body": {
        "object": "chat.completion", "choices": [{"index": 0, "message": {
            "role": "assistant", "content": f"Noted: {sent}",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "send_receipt", "arguments": json.dumps({"note": sent})}}]}}]}}, "error": None}
             for i in range(3)]
    vendor.batch_output = "".join(json.dumps(line) + "\n" for line in lines).encode()
    content = await sdk.files.content("file-batch-output")
    await sdk.close()
    got = [json.loads(line) for line in content.text.splitlines()]
    assert [g["custom_id"] for g in got] == ["req-0", "req-1", "req-2"]
    for g in got:
        message = g["response"]["body"]["choices"][0]["message"]
        assert message["content"] == f"Noted: {PROMPT}"
        assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"note": PROMPT}
    assert TOKEN.search(vendor.batch_output.decode())  # the vendor's file had only tokens


async def test_openai_batch_output_first_line_reaches_the_caller_before_the_vendor_finished(vendors, through):
    vendor = await vendors(OpenAIVendor)
    gw = await through(vendor, "openai", policy("openai.yaml"))
    sdk = openai_sdk(gw)
    await sdk.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": PROMPT}])
    await sdk.close()
    sent = vendor.received[0]["messages"][0]["content"]
    vendor.batch_output = "".join(json.dumps({"custom_id": f"req-{i}", "response": {"body": {"text": sent}}}) + "\n"
                                  for i in range(4)).encode()
    vendor.gate = asyncio.Event()
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream("GET", gw.url + "/acme/v1/files/file-1/content") as r:
            buffer, lines = b"", []
            async for chunk in r.aiter_bytes():
                buffer += chunk
                if not lines and b"\n" in buffer:
                    lines.append(vendor.finished)
                    vendor.gate.set()
    assert lines == [False]
    got = [json.loads(line) for line in buffer.decode().splitlines()]
    assert [g["response"]["body"]["text"] for g in got] == [PROMPT] * 4


async def test_label_studio_tasks_under_data_are_protected_and_the_export_restored(vendors, through):
    vendor = await vendors(LabelStudioVendor)
    gw = await through(vendor, "label-studio", policy("label-studio.yaml"))
    tasks = [{"data": {"text": f"Ticket {i}: reply to maria{i}@example.com", "customer_id": f"CUST-{1000 + i}",
                       "internal_notes": f"VIP, churn risk {i}", "ssn": ""}, "meta": {"source": "zendesk"}}
             for i in range(3)]
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.post(gw.url + "/acme/api/projects/1/import", json=tasks)
        assert r.status_code == 201, r.text
        received = vendor.received[0]
        for i, task in enumerate(received):
            assert "internal_notes" not in task["data"]
            assert re.fullmatch(r"CUSTOMER_ID_[0-9A-Z]{10,26}", task["data"]["customer_id"])
            assert f"maria{i}@" not in task["data"]["text"] and task["data"]["text"].startswith(f"Ticket {i}: reply to ")
        assert "churn risk" not in vendor.received_text and "CUST-" not in vendor.received_text

        export = await client.get(gw.url + "/acme/api/projects/1/export", params={"exportType": "JSON"})
        assert export.status_code == 200
        got = export.json()
        assert [t["data"]["customer_id"] for t in got] == ["CUST-1000", "CUST-1001", "CUST-1002"]
        assert got[0]["annotations"][0]["result"][0]["value"]["labels"] == ["Complaint"]

        bad = [{"data": {"text": "hello", "ssn": "536-22-8841"}}]
        r = await client.post(gw.url + "/acme/api/projects/1/import", json=bad)
    assert r.status_code == 403 and r.headers["x-should-retry"] == "false"
    assert r.json()["status_code"] == 403 and "ssn" in r.json()["detail"] and "536-22" not in r.text
    assert len(vendor.received) == 1


async def test_label_studio_on_block_drop_task_forwards_the_batch_without_the_blocked_tasks(vendors, through):
    vendor = await vendors(LabelStudioVendor)
    gw = await through(vendor, "label-studio", policy("label-studio.yaml").replace("on_block: refuse",
                                                                                  "on_block: drop_task"))
    tasks = [{"data": {"text": "Ticket 0: printer jammed", "customer_id": "CUST-1"}},
             {"data": {"text": "Ticket 1: fine", "customer_id": "CUST-2", "ssn": "536-22-8841"}},  # block rule
             {"data": {"text": "Ticket 2: my SSN is 536-22-8841", "customer_id": "CUST-3"}},  # US_SSN: block
             {"data": {"text": "Ticket 3: all good", "customer_id": "CUST-4"}}]
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.post(gw.url + "/acme/api/projects/1/import", json=tasks)
    assert r.status_code == 201, r.text
    [received] = vendor.received
    assert [t["data"]["text"] for t in received] == ["Ticket 0: printer jammed", "Ticket 3: all good"]
    assert "536-22" not in vendor.received_text and "CUST-" not in vendor.received_text
    [record] = await audit_records(gw, 1)
    assert record["actions"]["drop_task"] == 2 and record["decision"] == "forwarded"
    # the lineage of the SSN found in a dropped task: detected, never sent (the field rule's one is never scanned)
    ledger = ExposureLedger.in_data_dir(gw.data_dir, LocalKeyProvider.in_data_dir(gw.data_dir))
    for _ in range(200):
        if ledger.who_saw("536-22-8841", "US_SSN"):
            break
        await asyncio.sleep(0.05)
    assert [(h["form"], h["record_id"]) for h in ledger.who_saw("536-22-8841", "US_SSN")] == [("dropped", record["id"])]
    await ledger.close()


def test_shipped_vendor_config_and_policies_load_with_their_presets():
    settings = load_config(REPO / "deploy" / "vendors.yaml")
    formats = {name: v.format for name, v in settings.config.vendors.items()}
    assert formats == {"openai": "openai", "anthropic": "anthropic", "label-studio": "label-studio"}
    openai_rules = settings.policies["openai"].rule_set
    assert openai_rules.rules[0].select == ["$.metadata.internal", "$.body.metadata.internal"]  # the policy's first
    assert any(r.verb == "pass" for r in openai_rules.rules) and settings.policies["openai"].nested_json
    ls = settings.policies["label-studio"]
    assert "CUSTOMER_ID" in ls.reversible_types
    assert all(p.digest != "" for p in settings.policies.values())
