"""A top-level JSON array, element by element, decoded a window at a time.

Decoding a whole 50 MB body to one `str` would hold another copy of it (up to
four for text outside Latin-1), so the bytes are decoded in pieces of
`PIECE` bytes into a window that holds the element being parsed; parsed text
is let go. Error positions are reported for the whole body, as `json.loads`
would report them.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator

from gateway.payload.fields import BodyError

PIECE = 1 << 20
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER_TAIL = re.compile(r"[0-9.eE+\- \t\n\r]*")


class Window:
    """The decoded text of a body, from the element being read to what is decoded so far."""

    def __init__(self, body: bytes, charset: str, where: str = ""):
        try:
            self._decoder = codecs.getincrementaldecoder(charset)()
        except LookupError:
            raise BodyError(415, f"unknown charset {charset!r}") from None
        self._view = memoryview(body)
        self._charset, self._where = charset, where
        self._read = 0
        self.text = ""
        self.pos = 0
        self._lines = 0      # newlines in text already let go
        self._column = 0     # characters since the last of them

    @property
    def exhausted(self) -> bool:
        return self._read >= len(self._view)

    def more(self) -> bool:
        """Decode more of the body (twice what the window holds, at least `PIECE`
        bytes); False at the end of the body."""
        if self.exhausted:
            return False
        size = max(PIECE, 2 * (len(self.text) - self.pos))
        end = min(len(self._view), self._read + size)
        try:
            piece = self._decoder.decode(self._view[self._read:end], end == len(self._view))
        except UnicodeDecodeError as exc:
            raise BodyError(400, f"body{self._where} is not valid {self._charset} "
                                 f"(byte {self._read + exc.start})") from None
        self._forget()
        self.text += piece
        self._read = end
        return True

    def skip_ws(self) -> None:
        while True:
            self.pos = _WS.match(self.text, self.pos).end()
            if self.pos < len(self.text) or not self.more():
                return

    def peek(self) -> str:
        """The next character after whitespace, or "" at the end of the body."""
        self.skip_ws()
        return self.text[self.pos:self.pos + 1]

    def decode(self, decoder: json.JSONDecoder):
        """The next JSON value; a value cut by the window end is retried with more text."""
        while True:
            try:
                value, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if not self.more():
                    raise self.error(exc.msg, exc.pos) from None
            except RecursionError:
                raise BodyError(400, "invalid JSON: nests too deeply") from None
            except ValueError as exc:  # NaN / Infinity refused by the decoder
                raise BodyError(400, f"invalid JSON: {exc}") from None
            else:
                # a number cut by the window edge ("12" of "123", "-0" of "-0.5") parses too
                if not _NUMBER_TAIL.fullmatch(self.text, end) or not self.more():
                    self.pos = end
                    return value

    def error(self, msg: str, pos: int | None = None) -> BodyError:
        """`invalid JSON at line L column C: msg`, counted over the whole body."""
        pos = self.pos if pos is None else pos
        newline = self.text.rfind("\n", 0, pos)
        line = self._lines + self.text.count("\n", 0, pos) + 1
        column = pos - newline if newline >= 0 else self._column + pos + 1
        return BodyError(400, f"invalid JSON at line {line} column {column}: {msg}")

    def _forget(self) -> None:
        """Let go of the text before `pos` (already parsed)."""
        done = self.text[:self.pos]
        newline = done.rfind("\n")
        if newline >= 0:
            self._lines += done.count("\n")
            self._column = len(done) - newline - 1
        else:
            self._column += len(done)
        self.text = self.text[self.pos:]
        self.pos = 0


def array_items(window: Window, decoder: json.JSONDecoder, on_item: Callable) -> Iterator:
    """Yield `on_item(value, index)` for each element of the array the window is at."""
    window.pos += 1  # the "["
    index = 0
    if window.peek() == "]":
        window.pos += 1
    else:
        while True:
            window.skip_ws()
            value = window.decode(decoder)
            yield on_item(value, index)
            index += 1
            following = window.peek()
            if following == ",":
                window.pos += 1
                continue
            if following == "]":
                window.pos += 1
                break
            raise window.error("Expecting ',' delimiter")
    if window.peek():
        raise window.error("Extra data")
