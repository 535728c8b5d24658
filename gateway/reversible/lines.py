"""Restore a JSON Lines body as it streams: one line at a time.

OpenAI batch output files come back as JSON Lines (`application/octet-stream`);
each complete line is parsed, restored string by string (tool `arguments` as
JSON text) and written back, byte for byte when nothing changed. A line that
is not JSON is restored as text. A body that does not start like JSON (the same
route serves other uploaded files) passes through unchanged.
"""

from __future__ import annotations

import json

from gateway.reversible.restore import Restorer

MAX_LINE_BYTES = 64 * 1024 * 1024


class LineTooLong(Exception):
    pass


class JSONLinesRestorer:
    def __init__(self, restorer: Restorer):
        self.restorer = restorer
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
            new = await self.restorer.restore_json(value)
            out.append(line if new == value else
                       json.dumps(new, ensure_ascii=False, separators=(",", ":")).encode() + line[len(content):])
        return b"".join(out)
