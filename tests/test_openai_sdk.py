"""The official openai SDK through the gateway, with the shipped llm-api policy,
against an OpenAI-compatible vendor on loopback that echoes the prompt."""

from __future__ import annotations

import re

import pytest_asyncio
from support import OpenAIUpstream, embed

NAME, EMAIL, CARD = "John Smith", "john.smith@example.com", "4111 1111 1111 1111"
PROMPT = f"Please write to {NAME} at {EMAIL} about the refund to card {CARD}."
TOKEN = re.compile(r"\b(?:PERSON|EMAIL_ADDRESS)_[0-9A-Z]{10,26}\b")
CARD_TOKEN = re.compile(r"\bvg1k1_CREDIT_CARD_[0-9A-Z]+\b")


@pytest_asyncio.fixture
async def client(openai_vendor, openai_sdk_through_gateway):
    async with openai_sdk_through_gateway(openai_vendor, "llm-api.yaml") as sdk:
        yield sdk


def assert_vendor_saw_only_tokens(vendor: OpenAIUpstream) -> str:
    seen = vendor.received_text
    for value in (NAME, EMAIL, CARD, "john.smith"):
        assert value not in seen
    assert len(set(TOKEN.findall(seen))) == 2, seen
    assert CARD_TOKEN.search(seen), seen
    return seen


async def test_chat_completion_answer_comes_back_with_the_original_values(client, openai_vendor):
    reply = await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": PROMPT}])
    seen = assert_vendor_saw_only_tokens(openai_vendor)
    answer = reply.choices[0].message.content
    card_token = CARD_TOKEN.search(seen).group(0)
    # never_restore: the card stays encrypted even though the vendor echoed it
    assert answer == f"Noted: {PROMPT}".replace(CARD, card_token)


async def test_streamed_answer_is_restored_across_chunk_boundaries(client, openai_vendor):
    stream = await client.chat.completions.create(model="gpt-test", stream=True,
                                                  messages=[{"role": "user", "content": PROMPT}])
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    seen = assert_vendor_saw_only_tokens(openai_vendor)
    card_token = CARD_TOKEN.search(seen).group(0)
    assert "".join(pieces) == f"Noted: {PROMPT}".replace(CARD, card_token)
    assert len([p for p in pieces if p]) > 10  # still a stream, not one buffered answer
    vendor_reply = "Noted: " + openai_vendor.received[0]["messages"][0]["content"]
    cut = [m for m in TOKEN.finditer(vendor_reply) if m.start() // 4 != (m.end() - 1) // 4]
    assert len(cut) == 2  # the vendor really sent both tokens split over several events


async def test_embeddings_are_computed_on_tokens_and_stable_per_value(client, openai_vendor):
    first = await client.embeddings.create(model="text-embedding-test", input=[f"{NAME} asked for a refund"],
                                           encoding_format="float")
    again = await client.embeddings.create(model="text-embedding-test", input=[f"{NAME} asked for a refund"])
    seen = openai_vendor.received[0]["input"][0]
    assert NAME not in openai_vendor.received_text
    assert TOKEN.match(seen) and seen.endswith(" asked for a refund")
    assert first.data[0].embedding == embed(seen)
    assert [round(x, 4) for x in again.data[0].embedding] == embed(seen)  # same name, same token for the vendor
