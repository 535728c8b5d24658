"""What a vendor's streamed events look like, for the SSE restorer.

A stream dialect says, for one parsed `data:` event, which strings in it are
*pieces* of a longer text that arrives over several events (a chat delta, a
tool call's argument fragment, a thinking delta), on which *channel* (choice
index, tool-call index, item id, content index) each piece continues, which
channels end with this event, and how to write a new event that carries a
held-back tail of one channel. Every other string in an event is restored on
its own, as a whole (ids, `*.done` texts, `response.completed`'s full output).

Dialects: OpenAI chat completions and completions, the OpenAI Responses API,
and the Anthropic Messages API. `KNOWN` tries each; events are unambiguous
between them (`choices`, `response.*` types, Anthropic block types).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

Channel = tuple


@dataclass(frozen=True)
class Piece:
    """`holder[key]` is the next piece of `channel`'s text; `json_text`: the text
    is JSON (tool arguments), so a restored original must be escaped as a JSON string."""

    channel: Channel
    holder: dict
    key: str
    json_text: bool = False


# Strings never restored: opaque values, media, and the event's own vocabulary.
OPAQUE_KEYS = frozenset({"type", "object", "signature", "encrypted_content", "b64_json", "partial_image_b64"})
# Strings that hold JSON text (tool-call arguments): originals go in escaped.
JSON_TEXT_KEYS = frozenset({"arguments", "partial_json"})


class Dialect:
    name = "none"

    def pieces(self, event: dict) -> list[Piece]:
        return []

    def ends(self, event: dict) -> list[Channel]:
        """Channel prefixes that end at this event: `()` ends every channel."""
        return []

    def skip(self, event: dict) -> bool:
        """True for an event whose strings are not text (streamed audio)."""
        return False

    def carrier(self, channel: Channel, template: dict, text: str) -> dict | None:
        return None


class OpenAIChat(Dialect):
    """`chat.completion.chunk` (and legacy completions): `choices[i].delta.content`,
    `.refusal`, `.reasoning_content`, `.tool_calls[k].function.arguments`, `choices[i].text`."""

    name = "openai-chat"
    DELTA_TEXT = ("content", "refusal", "reasoning_content", "reasoning")

    def pieces(self, event: dict) -> list[Piece]:
        out = []
        for j, choice in enumerate(event.get("choices") or []):
            if not isinstance(choice, dict):
                continue
            i = choice.get("index", j)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                for key in self.DELTA_TEXT:
                    if isinstance(delta.get(key), str):
                        out.append(Piece(("choice", i, key), delta, key))
                for k, call in enumerate(delta.get("tool_calls") or []):
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                        out.append(Piece(("choice", i, "tool", call.get("index", k)), fn, "arguments", True))
            elif isinstance(choice.get("text"), str):
                out.append(Piece(("choice", i, "text"), choice, "text"))
        return out

    def ends(self, event: dict) -> list[Channel]:
        return [("choice", c.get("index", j)) for j, c in enumerate(event.get("choices") or [])
                if isinstance(c, dict) and c.get("finish_reason") is not None]

    def carrier(self, channel: Channel, template: dict, text: str) -> dict:
        event = copy.deepcopy(template)
        event.pop("usage", None)
        i, kind = channel[1], channel[2]
        choice: dict[str, Any] = {"index": i}
        if kind == "text":
            choice.update(text=text, logprobs=None)
        elif kind == "tool":
            choice["delta"] = {"tool_calls": [{"index": channel[3], "function": {"arguments": text}}]}
        else:
            choice["delta"] = {kind: text}
        choice["finish_reason"] = None
        event["choices"] = [choice]
        return event


class OpenAIResponses(Dialect):
    """Responses API events: every `response.*.delta` with a string `delta` is a
    piece of the channel (family, item, content/summary index); the matching
    `*.done`, `response.output_item.done` and the terminal events end it.
    `response.audio.delta` is audio, never text."""

    name = "openai-responses"
    TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})
    MEDIA = frozenset({"response.audio.delta", "response.image_generation_call.partial_image"})

    @staticmethod
    def _where(event: dict) -> tuple:
        item = event.get("item_id", event.get("output_index"))
        index = event.get("content_index", event.get("summary_index", event.get("part_index")))
        return item, index

    def pieces(self, event: dict) -> list[Piece]:
        kind = event.get("type")
        if (isinstance(kind, str) and kind.startswith("response.") and kind.endswith(".delta")
                and kind not in self.MEDIA and isinstance(event.get("delta"), str)):
            family = kind[: -len(".delta")]
            json_text = family.endswith("_arguments")
            return [Piece(("resp", *self._where(event), family), event, "delta", json_text)]
        return []

    def ends(self, event: dict) -> list[Channel]:
        kind = event.get("type")
        if not isinstance(kind, str):
            return []
        if kind in self.TERMINAL:
            return [()]
        if kind == "response.output_item.done":
            item = event.get("item") if isinstance(event.get("item"), dict) else {}
            return [("resp", item.get("id", event.get("output_index")))]
        if kind.startswith("response.") and kind.endswith(".done"):
            return [("resp", *self._where(event), kind[: -len(".done")])]
        return []

    def skip(self, event: dict) -> bool:
        return event.get("type") in self.MEDIA

    def carrier(self, channel: Channel, template: dict, text: str) -> dict:
        event = copy.deepcopy(template)
        event["delta"] = text
        if isinstance(event.get("logprobs"), list):
            event["logprobs"] = []
        return event


class Anthropic(Dialect):
    """Messages API: `content_block_delta` with `text_delta.text`,
    `input_json_delta.partial_json` (tool input, JSON text) or
    `thinking_delta.thinking`, per block index; `content_block_stop` ends the
    block, `message_delta` / `message_stop` end everything."""

    name = "anthropic"
    DELTA_FIELDS = {"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking"}

    def pieces(self, event: dict) -> list[Piece]:
        delta = event.get("delta")
        if event.get("type") != "content_block_delta" or not isinstance(delta, dict):
            return []
        key = self.DELTA_FIELDS.get(delta.get("type"))
        if key is None or not isinstance(delta.get(key), str):
            return []
        return [Piece(("block", event.get("index", 0), delta["type"]), delta, key, key == "partial_json")]

    def ends(self, event: dict) -> list[Channel]:
        kind = event.get("type")
        if kind == "content_block_stop":
            return [("block", event.get("index", 0))]
        if kind in ("message_delta", "message_stop", "error"):
            return [()]
        return []

    def carrier(self, channel: Channel, template: dict, text: str) -> dict:
        event = copy.deepcopy(template)
        event["delta"] = {"type": channel[2], self.DELTA_FIELDS[channel[2]]: text}
        return event


class Known(Dialect):
    """Every dialect above: the event's own shape says which one it is."""

    name = "known"

    def __init__(self, *dialects: Dialect):
        self.dialects = dialects

    def _of(self, event: dict) -> Dialect:
        if "choices" in event:
            return self.dialects[0]
        kind = event.get("type")
        if isinstance(kind, str) and kind.startswith("response."):
            return self.dialects[1]
        return self.dialects[2]

    def pieces(self, event: dict) -> list[Piece]:
        return self._of(event).pieces(event)

    def ends(self, event: dict) -> list[Channel]:
        return self._of(event).ends(event)

    def skip(self, event: dict) -> bool:
        return self._of(event).skip(event)

    def carrier(self, channel: Channel, template: dict, text: str) -> dict | None:
        dialect = {"choice": self.dialects[0], "resp": self.dialects[1], "block": self.dialects[2]}.get(channel[0])
        return dialect.carrier(channel, template, text) if dialect else None


OPENAI_CHAT = OpenAIChat()
OPENAI_RESPONSES = OpenAIResponses()
ANTHROPIC = Anthropic()
KNOWN = Known(OPENAI_CHAT, OPENAI_RESPONSES, ANTHROPIC)
