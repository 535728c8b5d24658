import asyncio
import json

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.actions.base import ActionContext, Issued
from gateway.actions.encrypt import Encrypt
from gateway.actions.synthetic import Synthetic
from gateway.actions.tokenize import Tokenize
from gateway.keys import LocalKeyProvider
from gateway.reversible.restore import Restorer, SSERestorer
from gateway.reversible.vault import SQLiteVault


@pytest_asyncio.fixture
async def vault(tmp_path, keys):
    vault = await SQLiteVault(tmp_path / "vault.sqlite3", keys).open()
    yield vault
    await vault.close()


async def issue(vault, action, value, entity_type="PERSON", vendor="openai"):
    replaced = action.apply(value, ActionContext(vendor, entity_type, vault.keys))
    await vault.store(vendor, list(replaced.issued))
    return replaced.text, list(replaced.issued)


@pytest.mark.asyncio
async def test_tokenize_surrogate_is_restored_inside_markdown_and_quotes(vault):
    tok, _ = await issue(vault, Tokenize(), "Alice Smith")
    restorer = Restorer("openai", vault)
    text = f'Hello **{tok}**, "{tok}" and ({tok}).'
    assert await restorer.restore_text(text) == 'Hello **Alice Smith**, "Alice Smith" and (Alice Smith).'


@pytest.mark.asyncio
async def test_case_changed_token_is_restored(vault):
    tok, _ = await issue(vault, Tokenize(), "Alice Smith")
    enc, _ = await issue(vault, Encrypt(), "Bob Jones")
    restorer = Restorer("openai", vault)
    assert await restorer.restore_text(f"{tok.lower()} met {enc.upper()}") == "Alice Smith met Bob Jones"


@pytest.mark.asyncio
async def test_token_for_vendor_a_is_not_restored_for_vendor_b(vault):
    tok, _ = await issue(vault, Tokenize(), "Alice Smith", vendor="vendor-a")
    enc, _ = await issue(vault, Encrypt(), "Bob Jones", vendor="vendor-a")
    restorer = Restorer("vendor-b", vault)
    text = f"{tok} and {enc}"
    assert await restorer.restore_text(text) == text
    assert restorer.foreign_tokens == 2


@pytest.mark.asyncio
async def test_never_restore_types_stay_as_tokens(vault):
    tok, _ = await issue(vault, Tokenize(), "078-05-1120", "US_SSN")
    name, _ = await issue(vault, Tokenize(), "Alice")
    restorer = Restorer("openai", vault, never_restore={"US_SSN"})
    assert await restorer.restore_text(f"{name}: {tok}") == f"Alice: {tok}"
    assert restorer.foreign_tokens == 0


@pytest.mark.asyncio
async def test_tokens_the_caller_wrote_themselves_are_left_alone(vault):
    tok, _ = await issue(vault, Tokenize(), "Alice")
    restorer = Restorer("openai", vault, caller_literals={tok})
    assert await restorer.restore_text(f"you said {tok.lower()}") == f"you said {tok.lower()}"


@pytest.mark.asyncio
async def test_synthetic_values_issued_for_the_request_are_restored(vault):
    fake, issued = await issue(vault, Synthetic(), "Alice Smith")
    restorer = Restorer("openai", vault, known=issued)
    assert await restorer.restore_text(f"Dear {fake.upper()}, thanks.") == "Dear Alice Smith, thanks."
    unaware = Restorer("openai", vault)
    assert await unaware.restore_text(f"Dear {fake}") == f"Dear {fake}"


@pytest.mark.asyncio
async def test_token_split_across_chunks_is_restored(vault):
    tok, _ = await issue(vault, Tokenize(), "Alice Smith")
    stream = Restorer("openai", vault, entity_types={"PERSON"}).stream()
    out = [await stream.feed("Hi PERS"), await stream.feed(tok[4:9]), await stream.feed(tok[9:] + "! Bye"), await stream.finish()]
    assert out[0] == "Hi "
    assert "".join(out) == "Hi Alice Smith! Bye"


@pytest.mark.asyncio
async def test_stream_releases_text_that_cannot_start_a_token(vault):
    stream = Restorer("openai", vault, entity_types={"PERSON"}).stream()
    assert await stream.feed("Hello world") == "Hello world"
    assert await stream.feed(" and P") == " and "
    assert await stream.feed("aris.") == "Paris."


class MemoryVault:
    """Lookup-only stand-in so hypothesis can run many examples quickly."""

    def __init__(self, keys, rows):
        self.keys = keys
        self.rows = {s.lower(): Issued(s, t, o) for s, t, o in rows}

    async def lookup(self, vendor, surrogates):
        return {s: self.rows[s.lower()] for s in surrogates if vendor == "openai" and s.lower() in self.rows}

    async def shredded(self, vendor, surrogates):
        return set()


_KEYS = None


def _fixed_keys(tmp_path_factory):
    global _KEYS
    if _KEYS is None:
        _KEYS = LocalKeyProvider.in_data_dir(tmp_path_factory.mktemp("hyp-keys"))
    return _KEYS


PIECES = [
    "PERSON_7QX2K4M9TB", "person_7qx2k4m9tb", "PERSON_0000000000", "EMAIL_ADDRESS_Q2W3E4R5T6",
    "Ryan Gallagher", "ryan", "Ryan Gal", "PERS", "ON_", "_", "**", '"', " ", ".", ",", "\n", "x", "9",
    "Hello", "vg1", "vg1k1_PERSON_", "SOME_WORD_LONGERWORD12", "PERSON_7QX2K4M9TBZZ",
]


def _memory_vault(keys):
    return MemoryVault(keys, [("PERSON_7QX2K4M9TB", "PERSON", "Alice"), ("EMAIL_ADDRESS_Q2W3E4R5T6", "EMAIL_ADDRESS", "a@b.c")])


KNOWN = [Issued("Ryan Gallagher", "PERSON", "Carol"), Issued("Ryan", "PERSON", "Dan")]


async def whole_and_streamed(vault, text, cuts, types):
    whole = Restorer("openai", vault, known=KNOWN, entity_types=types)
    expected = await whole.restore_text(text)
    streamer = Restorer("openai", vault, known=KNOWN, entity_types=types)
    stream = streamer.stream()
    out, start = [], 0
    for end in sorted(set(cuts)) + [len(text)]:
        out.append(await stream.feed(text[start:end]))
        start = end
    out.append(await stream.finish())
    return (expected, whole.foreign_tokens), ("".join(out), streamer.foreign_tokens)


@given(parts=st.lists(st.sampled_from(PIECES + ["ENC"]), max_size=25), typed=st.booleans(), data=st.data())
@settings(max_examples=300, deadline=None)
def test_streaming_any_chunking_equals_restoring_the_whole(tmp_path_factory, parts, typed, data):
    keys = _fixed_keys(tmp_path_factory)
    enc = Encrypt().apply("Bob Jones", ActionContext("openai", "PERSON", keys)).text
    text = "".join(enc if p == "ENC" else p for p in parts)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=12))
    types = {"PERSON", "EMAIL_ADDRESS"} if typed else None
    whole, streamed = asyncio.run(whole_and_streamed(_memory_vault(keys), text, cuts, types))
    assert streamed == whole


@pytest.mark.parametrize("types", [None, {"PERSON"}])
@pytest.mark.parametrize(
    "text",
    ["Ryan Gallagher_ ok", "ENC_ tail", "xPERSON_7QX2K4M9TB.", "Ryan Gal x", "Ryan Gallagherson", "Ryan, Ryan Gallagher"],
)
@pytest.mark.asyncio
async def test_streaming_split_at_each_position_equals_the_whole(keys, text, types):
    text = text.replace("ENC", Encrypt().apply("Bob Jones", ActionContext("openai", "PERSON", keys)).text)
    for cut in range(len(text) + 1):
        whole, streamed = await whole_and_streamed(_memory_vault(keys), text, [cut], types)
        assert streamed == whole, cut


def sse(*payloads: str) -> bytes:
    return "".join(f"data: {p}\n\n" for p in payloads).encode()


def chat_chunk(content=None, finish=None, index=0):
    delta = {} if content is None else {"content": content}
    return json.dumps({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})


def contents(body: bytes) -> str:
    text = ""
    for block in body.decode().split("\n\n"):
        data = "\n".join(line[6:] for line in block.split("\n") if line.startswith("data: "))
        if data and data != "[DONE]":
            for choice in json.loads(data)["choices"]:
                text += choice["delta"].get("content") or ""
    return text


@pytest.mark.asyncio
async def test_token_split_across_sse_events_is_restored(vault):
    tok, _ = await issue(vault, Tokenize(), "Alice Smith")
    body = sse(chat_chunk("Hi "), chat_chunk(tok[:4]), chat_chunk(tok[4:]), chat_chunk(", bye"), chat_chunk(finish="stop"), "[DONE]")
    sse_restorer = SSERestorer(Restorer("openai", vault, entity_types={"PERSON"}))
    out = b"".join([await sse_restorer.feed(body[i : i + 7]) for i in range(0, len(body), 7)]) + await sse_restorer.finish()
    assert contents(out) == "Hi Alice Smith, bye"
    assert out.decode().endswith("data: [DONE]\n\n")
    first = json.loads(out.decode().split("\n\n")[1][6:])
    assert first["id"] == "c1" and first["object"] == "chat.completion.chunk"


@pytest.mark.asyncio
async def test_held_tail_is_flushed_before_done(vault):
    tok, _ = await issue(vault, Tokenize(), "Alice Smith")
    sse_restorer = SSERestorer(Restorer("openai", vault))
    out = await sse_restorer.feed(sse(chat_chunk("Bye " + tok), "[DONE]")) + await sse_restorer.finish()
    assert contents(out) == "Bye Alice Smith"
    assert out.decode().endswith("data: [DONE]\n\n")


@pytest.mark.asyncio
async def test_anthropic_text_deltas_are_restored_across_events(vault):
    tok, _ = await issue(vault, Tokenize(), "Alice Smith")

    def delta(text):
        return "event: content_block_delta\n" + "data: " + json.dumps(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
        ) + "\n\n"

    body = (delta("Hi " + tok[:6]) + delta(tok[6:]) + 'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n').encode()
    sse_restorer = SSERestorer(Restorer("openai", vault))
    out = (await sse_restorer.feed(body) + await sse_restorer.finish()).decode()
    texts = [json.loads(b.split("data: ")[1])["delta"]["text"] for b in out.split("\n\n") if "content_block_delta" in b]
    assert "".join(texts) == "Hi Alice Smith"
    assert out.index("content_block_stop") > out.rindex("text_delta")


@pytest.mark.asyncio
async def test_plain_text_events_are_one_stream(vault):
    tok, _ = await issue(vault, Tokenize(), "Alice Smith")
    sse_restorer = SSERestorer(Restorer("openai", vault))
    out = (await sse_restorer.feed(sse("Hi " + tok[:3], tok[3:] + "!")) + await sse_restorer.finish()).decode()
    assert "".join(line[6:] for line in out.split("\n") if line.startswith("data: ")) == "Hi Alice Smith!"


@pytest.mark.asyncio
async def test_sse_events_are_emitted_before_the_upstream_finishes(vault):
    events = []

    async def upstream():
        for i, part in enumerate(["Hello ", "world", ", all fine."]):
            events.append(f"produced {i}")
            yield sse(chat_chunk(part))
        events.append("produced done")
        yield sse("[DONE]")

    sse_restorer = SSERestorer(Restorer("openai", vault, entity_types={"PERSON"}))
    async for chunk in sse_restorer.restore(upstream()):
        events.append("emitted " + contents(chunk))
    assert events.index("emitted Hello ") < events.index("produced 1")
    assert events[-1] == "emitted "
