"""Every streamed field restored, through the real SDKs (openai, anthropic) and the
gateway with `format: openai` / `format: anthropic` and the shipped policies,
against loopback vendors that speak the real wire formats and echo what they
received into every kind of field: chat content, refusals and tool-call
arguments; Responses API text deltas, `*.done` events and `response.completed`;
Anthropic text, tool input (`input_json_delta`) and thinking deltas.

Each test checks what the vendor received (no original) and what the SDK
returned (every original back), and that the first text event reached the
SDK while the vendor was still holding the rest of its answer."""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import asynccontextmanager
from pathlib import Path

import pytest_asyncio
from vendor_upstreams import AnthropicVendor, OpenAIVendor

REPO = Path(__file__).resolve().parent.parent
NAME, EMAIL = "John Smith", "john.smith@example.com"
PROMPT = f"Please write to {NAME} at {EMAIL} about the refund."
TOKEN = re.compile(r"\b(?:PERSON|EMAIL_ADDRESS)_[0-9A-Z]{10,26}\b")
TOOLS = [{"type": "function", "function": {"name": "send_receipt", "description": "Send a receipt",
                                           "parameters": {"type": "object", "properties": {"note": {"type": "string"}}}}}]


def note_args(text: str) -> dict:
    return {"note": text, "to": [w for w in text.split() if "@" in w or "EMAIL" in w]}


def assert_vendor_saw_only_tokens(vendor) -> None:
    seen = vendor.received_text
    for value in (NAME, EMAIL, "john.smith", "Smith"):
        assert value not in seen
    assert len(set(TOKEN.findall(seen))) == 2, seen


@pytest_asyncio.fixture
async def gateway_for(write_config, start_gateway):
    @asynccontextmanager
    async def start(vendor, fmt: str, policy: str):
        text = (REPO / "policies" / policy).read_text()
        yield await start_gateway(write_config(vendor.url, policy=text, vendor_extra=f"format: {fmt}\n"))

    return start


@pytest_asyncio.fixture
async def openai_stack(gateway_for):
    from openai import AsyncOpenAI

    vendor = await OpenAIVendor().start()
    async with gateway_for(vendor, "openai", "openai.yaml") as gw:
        sdk = AsyncOpenAI(base_url=f"{gw.url}/acme/v1", api_key="sk-test-not-a-real-key", max_retries=0, timeout=60)
        yield sdk, vendor
        await sdk.close()
    await vendor.close()


@pytest_asyncio.fixture
async def anthropic_stack(gateway_for):
    from anthropic import AsyncAnthropic

    vendor = await AnthropicVendor().start()
    async with gateway_for(vendor, "anthropic", "anthropic.yaml") as gw:
        sdk = AsyncAnthropic(base_url=f"{gw.url}/acme", api_key="sk-ant-test-not-real", max_retries=0, timeout=60)
        yield sdk, vendor
        await sdk.close()
    await vendor.close()


def release(vendor, seen_first: list) -> None:
    """Called on the first text piece the SDK sees: the vendor must still be waiting."""
    if not seen_first:
        seen_first.append(vendor.finished)
        vendor.gate.set()


async def test_openai_chat_stream_restores_content_and_streamed_tool_call_arguments(openai_stack):
    sdk, vendor = openai_stack
    vendor.tool_args, vendor.gate = note_args, asyncio.Event()
    stream = await sdk.chat.completions.create(model="gpt-test", stream=True, tools=TOOLS,
                                               messages=[{"role": "user", "content": PROMPT}])
    content, args, first = [], [], []
    async for chunk in stream:
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta and delta.content:
            release(vendor, first)
            content.append(delta.content)
        for call in (delta.tool_calls or []) if delta else []:
            args.append(call.function.arguments or "")
    assert first == [False]  # the first delta reached the SDK before the vendor sent its end
    assert_vendor_saw_only_tokens(vendor)
    assert "".join(content) == f"Noted: {PROMPT}"
    assert json.loads("".join(args)) == note_args(PROMPT)
    sent_args = json.dumps(note_args(vendor.received[0]["messages"][0]["content"]))
    assert len([m for m in TOKEN.finditer(sent_args) if m.start() // 5 != (m.end() - 1) // 5]) >= 2  # really split
    assert vendor.received[0]["tools"] == TOOLS and vendor.received[0]["model"] == "gpt-test"


async def test_openai_chat_stream_restores_refusal_deltas(openai_stack):
    sdk, vendor = openai_stack
    vendor.refuse = True
    stream = await sdk.chat.completions.create(model="gpt-test", stream=True,
                                               messages=[{"role": "user", "content": PROMPT}])
    refusal = [c.choices[0].delta.refusal or "" async for c in stream if c.choices]
    assert_vendor_saw_only_tokens(vendor)
    assert "".join(refusal) == f"Noted: {PROMPT}"


async def test_responses_api_stream_restores_deltas_done_events_and_the_completed_response(openai_stack):
    sdk, vendor = openai_stack
    vendor.tool_args, vendor.gate = note_args, asyncio.Event()
    tools = [{"type": "function", "name": "send_receipt", "parameters": TOOLS[0]["function"]["parameters"]}]
    stream = await sdk.responses.create(model="gpt-test", input=PROMPT, tools=tools, stream=True,
                                        instructions="Answer briefly.")
    events, first = [], []
    async for event in stream:
        if event.type == "response.output_text.delta":
            release(vendor, first)
        events.append(event)
    assert first == [False]
    assert_vendor_saw_only_tokens(vendor)
    expected = f"Noted: {PROMPT}"
    by = {}
    for e in events:
        by.setdefault(e.type, []).append(e)
    assert "".join(e.delta for e in by["response.output_text.delta"]) == expected
    assert by["response.output_text.done"][0].text == expected
    assert by["response.content_part.done"][0].part.text == expected
    assert by["response.output_item.done"][0].item.content[0].text == expected
    assert json.loads("".join(e.delta for e in by["response.function_call_arguments.delta"])) == note_args(PROMPT)
    assert json.loads(by["response.function_call_arguments.done"][0].arguments) == note_args(PROMPT)
    completed = by["response.completed"][0].response
    assert completed.output_text == expected
    assert json.loads(completed.output[1].arguments) == note_args(PROMPT)
    assert not TOKEN.search(json.dumps([e.model_dump() for e in events]))  # no surrogate anywhere


async def test_responses_api_stream_helper_final_response_has_the_originals(openai_stack):
    sdk, vendor = openai_stack
    async with sdk.responses.stream(model="gpt-test", input=[{"role": "user", "content": [
            {"type": "input_text", "text": PROMPT}]}]) as stream:
        texts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert_vendor_saw_only_tokens(vendor)
    assert "".join(texts) == final.output_text == f"Noted: {PROMPT}"


async def test_responses_api_json_answer_is_restored_including_tool_arguments(openai_stack):
    sdk, vendor = openai_stack
    vendor.tool_args = note_args
    reply = await sdk.responses.create(model="gpt-test", input=PROMPT)
    assert_vendor_saw_only_tokens(vendor)
    assert reply.output_text == f"Noted: {PROMPT}"
    assert json.loads(reply.output[1].arguments) == note_args(PROMPT)


async def test_anthropic_stream_restores_text_tool_input_and_thinking(anthropic_stack):
    sdk, vendor = anthropic_stack
    vendor.tool_input, vendor.gate = note_args, asyncio.Event()
    tools = [{"name": "send_receipt", "description": "Send a receipt",
              "input_schema": {"type": "object", "properties": {"note": {"type": "string"}}}}]
    first, texts = [], []
    async with sdk.messages.stream(model="claude-test", max_tokens=512, tools=tools, system="Be brief.",
                                   messages=[{"role": "user", "content": PROMPT}]) as stream:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                release(vendor, first)
                texts.append(event.delta.text)
        final = await stream.get_final_message()
    assert first == [False]
    assert_vendor_saw_only_tokens(vendor)
    sent = vendor.received[0]
    assert sent["tools"] == tools and sent["system"] == "Be brief." and sent["model"] == "claude-test"
    thinking, text, tool = final.content
    assert "".join(texts) == text.text == f"Noted: {PROMPT}"
    assert thinking.thinking == f"The user wants: {PROMPT}"
    assert thinking.signature == "EqQBCkYIBRgCKkBsig"
    assert tool.input == note_args(PROMPT)


async def test_anthropic_json_answer_restores_tool_input_and_thinking(anthropic_stack):
    sdk, vendor = anthropic_stack
    vendor.tool_input = note_args
    message = await sdk.messages.create(model="claude-test", max_tokens=512,
                                        messages=[{"role": "user", "content": [{"type": "text", "text": PROMPT}]}])
    assert_vendor_saw_only_tokens(vendor)
    thinking, text, tool = message.content
    assert text.text == f"Noted: {PROMPT}" and thinking.thinking == f"The user wants: {PROMPT}"
    assert tool.input == note_args(PROMPT)
