"""Restore a JSON Lines body as it streams: one line at a time.

OpenAI batch output files (`application/octet-stream`) and Anthropic Message
Batch results (`application/x-jsonl`) come back as JSON Lines;
each complete line is parsed, restored string by string (tool `arguments` as
JSON text) and written back, byte for byte when nothing changed. A line that
is not JSON is restored as text. A body that does not start like JSON (the same
route serves other uploaded files) passes through unchanged. `reshape`, a format
preset's step on a JSON answer, runs on each line before its restore (a
Labelbox export: one data row a line, its offsets mapped back).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.reversible.restore import Restorer

Reshape = Callable[[Any, Restorer], Awaitable[tuple[Any, Restorer]]]

MAX_LINE_BYTES = 64 * 1024 * 1024


class LineTooLong(Exception):
    pass


class JSONLinesRestorer:
    def __init__(self, restorer: Restorer, reshape: Reshape | None = None):
        self.restorer = restorer
        self.reshape = reshape
        self._pending = b""
        self._plain: bool | None = None  # decided by the first non-blank byte

    async def feed(self, chunk: bytes) -> bytes:
        if self._plain is None and chunk.strip():
            self._plain = chunk.lstrip()[:1] not in (b"{", b"[")
        if self._plain:
            data, self._pending = self._pending + chunk, b""
            return data
        data = self._pending + chunk
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        if len(self._pending) > MAX_LINE_BYTES:
            raise LineTooLong(f"a JSON Lines line exceeds {MAX_LINE_BYTES} bytes")
        return await self._lines(data[:cut])

    async def finish(self) -> bytes:
        data, self._pending = self._pending, b""
        return await self._lines(data)

    async def _lines(self, data: bytes) -> bytes:
        out = []
        for line in data.splitlines(keepends=True):
            content = line.rstrip(b"\r\n")
            try:
                value = json.loads(content)
            except ValueError:
                text = content.decode("utf-8", "replace")
                new_text = await self.restorer.restore_text(text)
                out.append(line if new_text == text else new_text.encode() + line[len(content):])
                continue
            new = await self._restore(value)
            out.append(line if new == value else
                       json.dumps(new, ensure_ascii=False, separators=(",", ":")).encode() + line[len(content):])
        return b"".join(out)

    async def _restore(self, value: Any) -> Any:
        if self.reshape is None:
            return await self.restorer.restore_json(value)
        shaped, restorer = await self.reshape(value, self.restorer)
        if restorer is self.restorer:
            return await restorer.restore_json(shaped)
        new = await restorer.restore_json(shaped)  # the line's own restorer: its counts add to the answer's
        self.restorer.restored += restorer.restored
        self.restorer.foreign_tokens += restorer.foreign_tokens
        return new
