"""The SSE restorer with the stream dialects, event by event: channels, held
tails flushed before the event that ends their channel, JSON-escaped originals
in tool arguments, media events untouched, JSON Lines restored line by line."""

from __future__ import annotations

import json

import pytest_asyncio

from gateway.actions.base import ActionContext
from gateway.actions.tokenize import Tokenize
from gateway.keys import LocalKeyProvider
from gateway.reversible.lines import JSONLinesRestorer
from gateway.reversible.restore import Restorer, SSERestorer
from gateway.reversible.vault import SQLiteVault


@pytest_asyncio.fixture
async def vault(tmp_path):
    vault = await SQLiteVault(tmp_path / "vault.sqlite3", LocalKeyProvider.in_data_dir(tmp_path / "keys")).open()
    yield vault
    await vault.close()


async def issue(vault, value, entity_type="PERSON"):
    replaced = Tokenize().apply(value, ActionContext("openai", entity_type, vault.keys))
    await vault.store("openai", list(replaced.issued))
    return replaced.text


def ev(obj: dict, name: str | None = None) -> str:
    return (f"event: {name}\n" if name else "") + "data: " + json.dumps(obj) + "\n\n"


def events(out: bytes) -> list[dict]:
    return [json.loads(b.split("data: ", 1)[1]) for b in out.decode().split("\n\n") if "data: {" in b]


async def run(vault, body: str, step: int = 9) -> bytes:
    sse = SSERestorer(Restorer("openai", vault, entity_types={"PERSON"}))
    data = body.encode()
    out = b"".join([await sse.feed(data[i : i + step]) for i in range(0, len(data), step)])
    return out + await sse.finish()


async def test_tool_argument_originals_are_json_escaped_so_the_arguments_stay_json(vault):
    tok = await issue(vault, 'Ann "Jo" O\\Lee')
    args = json.dumps({"name": tok, "n": 1})
    body = "".join(ev({"type": "content_block_delta", "index": 1,
                       "delta": {"type": "input_json_delta", "partial_json": args[i : i + 4]}}, "content_block_delta")
                   for i in range(0, len(args), 4)) + ev({"type": "content_block_stop", "index": 1})
    out = events(await run(vault, body))
    joined = "".join(e["delta"]["partial_json"] for e in out if e["type"] == "content_block_delta")
    assert json.loads(joined) == {"name": 'Ann "Jo" O\\Lee', "n": 1}
    assert out[-1]["type"] == "content_block_stop"


async def test_responses_held_tail_goes_out_before_the_done_event_and_done_text_is_restored(vault):
    tok = await issue(vault, "Alice Smith")
    at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    body = (ev({"type": "response.output_text.delta", **at, "delta": "Bye " + tok[:3]})
            + ev({"type": "response.output_text.delta", **at, "delta": tok[3:]})
            + ev({"type": "response.output_text.done", **at, "text": "Bye " + tok}))
    out = events(await run(vault, body))
    deltas = [e["delta"] for e in out if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "Bye Alice Smith"
    assert out[-1] == {"type": "response.output_text.done", **at, "text": "Bye Alice Smith"}


async def test_channels_are_separate_per_choice_and_tool_call(vault):
    tok = await issue(vault, "Alice Smith")

    def chunk(i, delta):
        return ev({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": i, "delta": delta}]})

    body = (chunk(0, {"content": "A " + tok[:5]}) + chunk(1, {"content": "B " + tok[:8]})
            + chunk(0, {"content": tok[5:]}) + chunk(1, {"content": tok[8:] + "."})
            + chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":"' + tok[:2]}}]})
            + chunk(0, {"tool_calls": [{"index": 1, "function": {"arguments": '{"b":"x'}}]})
            + chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": tok[2:] + '"}'}}]})
            + chunk(0, {"tool_calls": [{"index": 1, "function": {"arguments": '"}'}}]}) + "data: [DONE]\n\n")
    out = events(await run(vault, body))
    text = {0: "", 1: ""}
    args = {0: "", 1: ""}
    for e in out:
        for c in e["choices"]:
            text[c["index"]] += c["delta"].get("content") or ""
            for call in c["delta"].get("tool_calls") or []:
                args[call["index"]] += call["function"]["arguments"]
    assert text == {0: "A Alice Smith", 1: "B Alice Smith."}
    assert json.loads(args[0]) == {"a": "Alice Smith"} and json.loads(args[1]) == {"b": "x"}


async def test_ids_and_other_strings_are_restored_whole_media_events_are_not_touched(vault):
    tok = await issue(vault, "Alice Smith")
    audio = {"type": "response.audio.delta", "item_id": "a", "output_index": 0, "content_index": 0,
             "delta": "UklGR" + tok}
    body = ev({"type": "message_start", "message": {"id": "m", "content": [], "note": f"for {tok}"}}) + ev(audio)
    out = events(await run(vault, body))
    assert out[0]["message"]["note"] == "for Alice Smith"
    assert out[1] == audio


async def test_json_lines_are_restored_line_by_line_as_they_arrive(vault):
    tok = await issue(vault, "Alice Smith")
    line = json.dumps({"custom_id": "r1", "response": {"body": {"choices": [{"message": {
        "content": f"Hi {tok}", "tool_calls": [{"function": {"arguments": json.dumps({"who": tok})}}]}}]}}})
    untouched = '{"custom_id":  "r2", "response": null}'
    lines = JSONLinesRestorer(Restorer("openai", vault, entity_types={"PERSON"}))
    body = (line + "\n" + untouched + "\n").encode()
    first = await lines.feed(body[: len(line) + 1 + 5])
    rest = await lines.feed(body[len(line) + 1 + 5 :]) + await lines.finish()
    restored = json.loads(first)
    message = restored["response"]["body"]["choices"][0]["message"]
    assert message["content"] == "Hi Alice Smith"
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"who": "Alice Smith"}
    assert rest == (untouched + "\n").encode()  # unchanged lines byte for byte


async def test_a_file_that_is_not_json_lines_passes_through_unchanged(vault):
    tok = await issue(vault, "Alice Smith")
    lines = JSONLinesRestorer(Restorer("openai", vault, entity_types={"PERSON"}))
    pdf = b"%PDF-1.7\n" + tok.encode() + b"\n\x00\xff binary"
    assert await lines.feed(pdf[:12]) + await lines.feed(pdf[12:]) + await lines.finish() == pdf
