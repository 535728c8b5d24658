"""An OpenAI-compatible vendor on loopback for tests: it records every request
body it received and answers chat completions by echoing the last user message
(`Noted: ...`), or `answer` when a test sets one. With `stream: true` the reply
goes out as SSE chunks of `chunk_size` characters, so tokens are cut in the middle.
Embeddings are a deterministic function of the text the vendor received."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field

from aiohttp import web

from support import free_port


def embed(text: str, dims: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255, 4) for b in digest[:dims]]


@dataclass
class OpenAIUpstream:
    url: str = ""
    received: list[dict] = field(default_factory=list)
    answer: str | None = None
    chunk_size: int = 4
    runner: web.AppRunner | None = None

    @property
    def received_text(self) -> str:
        return "\n".join(json.dumps(r, ensure_ascii=False) for r in self.received)

    async def start(self) -> "OpenAIUpstream":
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        await self.runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        reply = self.answer if self.answer is not None else f"Noted: {user}"
        base = {"id": "chatcmpl-test", "created": 1700000000, "model": body["model"]}
        if not body.get("stream"):
            return web.json_response({**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict, finish=None) -> None:
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        for i in range(0, len(reply), self.chunk_size):
            await send({"content": reply[i : i + self.chunk_size]})
        await send({}, "stop")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(inputs):
            vector = embed(text)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": 1, "total_tokens": 1}})
