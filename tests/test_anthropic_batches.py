"""The Anthropic Message Batches round trip through the real `anthropic` SDK and the gateway
(`format: anthropic`, `policies/anthropic.yaml`), against a loopback vendor that speaks the batch
wire format: the batch the vendor keeps holds no original value; `batches.retrieve` hands the SDK a
`results_url` on the gateway; `batches.results` downloads the JSON Lines through the gateway, with
every original back in each message's text and tool_use input, and the errored, canceled and expired
lines as the vendor sent them."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from vendor_upstreams import AnthropicVendor

REPO = Path(__file__).resolve().parent.parent
PEOPLE = [("John Smith", "john.smith@example.com"), ("Maria Gonzalez", "maria.gonzalez@acme-corp.com"),
          ("Priya Raman", "priya.raman@example.org")]
TOKEN = re.compile(r"\b(?:PERSON|EMAIL_ADDRESS)_[0-9A-Z]{10,26}\b")
TOOLS = [{"name": "send_receipt", "description": "Send a receipt",
          "input_schema": {"type": "object", "properties": {"note": {"type": "string"}}}}]
OUTCOMES = {"req-4": "errored", "req-5": "canceled", "req-6": "expired"}
REDACT_ONLY = """
name: redact-only
detect: all
min_score: 0.5
default_action: redact
actions: {DATE_TIME: allow, URL: allow}
"""


def prompt(i: int) -> str:
    name, email = PEOPLE[i % len(PEOPLE)]
    return f"Please write to {name} at {email} about refund {i}."


def note(text: str) -> dict:
    return {"note": text, "to": [w for w in text.split() if "@" in w or "EMAIL" in w]}


def batch_requests(n: int = 7) -> list[dict]:
    return [{"custom_id": f"req-{i}", "params": {"model": "claude-test", "max_tokens": 256, "tools": TOOLS,
                                                 "messages": [{"role": "user", "content": prompt(i)}]}}
            for i in range(n)]


@pytest_asyncio.fixture
async def batches(write_config, start_gateway):
    """(vendor, gateway, SDK) for a policy; the vendor's requests get the outcomes in OUTCOMES."""
    from anthropic import AsyncAnthropic

    opened = []

    async def start(policy_text: str, top_extra: str = "", **vendor_fields):
        vendor = await AnthropicVendor(tool_input=note, outcomes=dict(OUTCOMES), **vendor_fields).start()
        gw = await start_gateway(write_config(vendor.url, policy=policy_text, vendor_extra="format: anthropic\n",
                                              top_extra=top_extra))
        sdk = AsyncAnthropic(base_url=f"{gw.url}/acme", api_key="sk-ant-test", max_retries=0, timeout=60)
        opened.append((vendor, sdk))
        return vendor, gw, sdk

    yield start
    for vendor, sdk in opened:
        await sdk.close()
        await vendor.close()


def shipped() -> str:
    return (REPO / "policies" / "anthropic.yaml").read_text()


async def test_message_batch_results_come_back_restored_and_the_vendor_never_sees_an_original(batches):
    vendor, gw, sdk = await batches(shipped())
    created = await sdk.messages.batches.create(requests=batch_requests())
    assert created.processing_status == "in_progress" and created.results_url is None

    # What the vendor keeps: tokens in every message, ids, model and tool schemas as sent.
    [received] = vendor.received
    seen = vendor.received_text
    for name, email in PEOPLE:
        for value in (name, email, name.split()[1], email.split("@")[0]):
            assert value not in seen, value
    assert len(set(TOKEN.findall(seen))) == 2 * len(PEOPLE), seen
    assert [r["custom_id"] for r in received["requests"]] == [f"req-{i}" for i in range(7)]
    assert all(r["params"]["model"] == "claude-test" and r["params"]["tools"] == TOOLS for r in received["requests"])

    # The link the SDK follows is on the gateway, not on the vendor's host.
    batch = await sdk.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended" and batch.request_counts.succeeded == 4
    assert batch.results_url == f"{gw.url}/acme/v1/messages/batches/{created.id}/results"

    results = {r.custom_id: r.result async for r in await sdk.messages.batches.results(created.id)}
    assert sorted(results) == [f"req-{i}" for i in range(7)]
    for i in range(4):
        message = results[f"req-{i}"].message
        assert results[f"req-{i}"].type == "succeeded"
        text, tool = message.content
        assert text.text == f"Noted: {prompt(i)}"
        assert tool.type == "tool_use" and tool.input == note(prompt(i))
    assert results["req-4"].type == "errored"
    assert results["req-4"].error.error.type == "invalid_request_error"
    assert results["req-4"].error.error.message == "max_tokens: Input should be greater than 0"
    assert results["req-5"].type == "canceled" and results["req-6"].type == "expired"

    # The download went through the gateway: the SDK's own key never reached the vendor.
    [download] = vendor.downloads
    assert download["path"] == f"/v1/messages/batches/{created.id}/results"
    assert "sk-ant-test" not in json.dumps(download["headers"])


async def test_message_batch_results_reach_the_caller_line_by_line_before_the_vendor_finished(batches):
    vendor, gw, sdk = await batches(shipped())
    created = await sdk.messages.batches.create(requests=batch_requests(3))
    url = (await sdk.messages.batches.retrieve(created.id)).results_url
    vendor.gate = asyncio.Event()
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream("GET", url, headers={"anthropic-version": "2023-06-01"}) as r:
            assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-jsonl"
            buffer, finished_at_first_line = b"", None
            async for chunk in r.aiter_bytes():
                buffer += chunk
                if finished_at_first_line is None and b"\n" in buffer:
                    finished_at_first_line = vendor.finished
                    vendor.gate.set()
    assert finished_at_first_line is False
    lines = [json.loads(line) for line in buffer.decode().splitlines()]
    assert [line["result"]["message"]["content"][0]["text"] for line in lines] == [
        f"Noted: {prompt(i)}" for i in range(3)]


async def test_results_url_is_moved_onto_the_gateway_without_a_restore_and_dropped_when_it_leaves_the_vendor(
        batches):
    from anthropic import AnthropicError

    vendor, gw, sdk = await batches(REDACT_ONLY)  # nothing reversible: no restorer for this vendor
    created = await sdk.messages.batches.create(requests=batch_requests(2))
    assert "John Smith" not in vendor.received_text and "<PERSON>" in vendor.received_text
    batch = await sdk.messages.batches.retrieve(created.id)
    assert batch.results_url == f"{gw.url}/acme/v1/messages/batches/{created.id}/results"
    results = [r async for r in await sdk.messages.batches.results(created.id)]
    assert [r.result.message.content[0].text for r in results] == [
        f"Noted: Please write to <PERSON> at <EMAIL_ADDRESS> about refund {i}." for i in range(2)]

    elsewhere, gw2, sdk2 = await batches(shipped(), results_base="https://files.anthropic-results.example.net")
    created = await sdk2.messages.batches.create(requests=batch_requests(2))
    assert (await sdk2.messages.batches.retrieve(created.id)).results_url is None
    with pytest.raises(AnthropicError, match="No `results_url`"):
        await sdk2.messages.batches.results(created.id)
    assert elsewhere.downloads == []


async def test_behind_a_proxy_the_results_url_points_at_the_configured_public_url(batches):
    """A load balancer in front rewrites Host and scheme: the link must use the address callers reach."""
    vendor, gw, sdk = await batches(shipped(), top_extra="public_url: https://vendorgate.corp.example:8443/\n")
    created = await sdk.messages.batches.create(requests=batch_requests(1))
    batch = await sdk.messages.batches.retrieve(created.id)
    assert batch.results_url == f"https://vendorgate.corp.example:8443/acme/v1/messages/batches/{created.id}/results"


@pytest.mark.parametrize("bad", ["vendorgate.corp.example", "ftp://gw.example", "https://gw.example/base",
                                 "https://user:pw@gw.example", "https://gw.example/?q=1"])
def test_a_public_url_that_is_not_an_origin_is_a_config_error_naming_the_field(write_config, bad):
    from gateway.config import ConfigError, load_config

    cfg = write_config("http://127.0.0.1:9", policy=shipped(), top_extra=f"public_url: '{bad}'\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "public_url" in str(err.value) and "vendorgate.yaml:3" in str(err.value) and "pw" not in str(err.value)
