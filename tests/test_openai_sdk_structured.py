"""The official openai SDK through the gateway with the shipped structured LLM
policy (policies/llm-api-structured.yaml): tool-call arguments are JSON inside
a string; the vendor on loopback must receive them parsed, protected field by
field and re-serialised, next to protected message text."""

from __future__ import annotations

import json
import re

import pytest_asyncio

EMAIL, CARD, PHONE = "maria.lopez@example.com", "4111 1111 1111 1111", "+1 415 555 0199"
USER_ID = "user-7731"
EMAIL_TOKEN = re.compile(r"^EMAIL_ADDRESS_[0-9A-Z]{10,26}$")
TOOLS = [{"type": "function", "function": {
    "name": "send_receipt", "description": "Email a receipt for a card payment",
    "parameters": {"type": "object", "properties": {
        "to": {"type": "string"}, "card_number": {"type": "string"}, "amount": {"type": "number"},
        "note": {"type": "string"}}}}}]
ARGUMENTS = {"to": EMAIL, "card_number": CARD, "amount": 12.5, "note": f"call back on {PHONE} if it bounces",
             "items": [{"sku": "A-1", "qty": 2}]}


@pytest_asyncio.fixture
async def client(openai_vendor, openai_sdk_through_gateway):
    async with openai_sdk_through_gateway(openai_vendor, "llm-api-structured.yaml") as sdk:
        yield sdk


def conversation(prompt: str) -> list[dict]:
    return [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "send_receipt", "arguments": json.dumps(ARGUMENTS)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"status": "sent", "to": EMAIL})},
        {"role": "user", "content": "Thanks, anything else?"},
    ]


async def test_tool_call_arguments_reach_the_vendor_parsed_and_protected_field_by_field(client, openai_vendor):
    prompt = f"Send the receipt to {EMAIL} for the card {CARD}"
    reply = await client.chat.completions.create(
        model="gpt-test", messages=conversation(prompt), tools=TOOLS, user=USER_ID, temperature=0.2,
        metadata={"internal": "route to billing queue 7", "team": "support"})
    [sent] = openai_vendor.received
    seen = openai_vendor.received_text
    for value in (EMAIL, CARD, PHONE, USER_ID, "route to billing queue 7"):
        assert value not in seen

    args_text = sent["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert isinstance(args_text, str)  # still JSON inside a string, as the API requires
    args = json.loads(args_text)
    assert set(args) == set(ARGUMENTS)
    assert EMAIL_TOKEN.match(args["to"])
    assert args["card_number"].endswith("1111") and "4111" not in args["card_number"]
    assert PHONE not in args["note"] and args["note"].startswith("call back on ")
    assert args["amount"] == 12.5 and args["items"] == ARGUMENTS["items"]

    tool_result = json.loads(sent["messages"][2]["content"])
    assert tool_result["status"] == "sent" and tool_result["to"] == args["to"]  # same email, same token
    assert sent["messages"][0]["content"] == f"Send the receipt to {args['to']} for the card {args['card_number']}"
    assert sent["tools"] == TOOLS and sent["temperature"] == 0.2 and sent["model"] == "gpt-test"
    assert sent["metadata"] == {"team": "support"}
    assert sent["user"].startswith("END_USER_")
    assert reply.choices[0].message.content == "Noted: Thanks, anything else?"


async def test_arguments_with_nothing_to_protect_are_forwarded_as_the_same_string(client, openai_vendor):
    arguments = '{"sku":  "A-1", "qty": 2}'  # odd spacing: re-serialising would change it
    messages = [{"role": "user", "content": "Reorder the usual"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "call_9", "type": "function",
                                                                       "function": {"name": "reorder", "arguments": arguments}}]},
                {"role": "user", "content": "Go ahead"}]
    await client.chat.completions.create(model="gpt-test", messages=messages)
    [sent] = openai_vendor.received
    assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == arguments
