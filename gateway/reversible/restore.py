"""Put originals back into a vendor's response.

Only what was issued to the same vendor is restored, and by default only what
was issued to the same caller (`scope`: a vault scope key such as
`caller:billing-svc`; `""` restores nothing but the request's own `known`
surrogates; None restores anything the vendor was given): tokenize surrogates
through the vault, encrypt tokens by decrypting with that vendor's key, and
synthetic / fpe values by exact match against the surrogates issued for the
request being answered (`known`). Anything token-shaped that does not resolve
is left alone and counted in `foreign_tokens`.

Streaming keeps the whole-text result: a chunk is released up to the first
place where a token could still be starting, so at most `max_hold` characters
wait at a chunk boundary, and only when they could be a token's beginning.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from gateway.reversible.dialects import JSON_TEXT_KEYS, KNOWN, OPAQUE_KEYS, Channel, Dialect
from gateway.reversible.tokens import (
    AFTER,
    BEFORE,
    ENCRYPT_PATTERN,
    ENCRYPT_PREFIX,
    MAX_SURROGATE_LENGTH,
    Issued,
    TokenError,
    canonical,
    decrypt_token,
    max_token_length,
    tokenize_pattern,
)

if TYPE_CHECKING:
    from gateway.keys import KeyProvider
    from gateway.reversible.vault import TokenVault


Escape = Callable[[str], str]


def json_escape(value: str) -> str:
    """An original as it goes inside a JSON string (tool arguments are JSON text)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _resolves_as_token(shaped: re.Pattern, surrogate: str) -> bool:
    """True when the token patterns match all of `surrogate` and `_resolve` keys it as `surrogate`."""
    m = shaped.fullmatch(surrogate)
    if m is None:
        return False
    if m.group("ct"):
        return True
    return f"{m.group('ttype').upper()}_{canonical(m.group('tcode'))}".lower() == surrogate


def _is_word(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


class Restorer:
    """Restores tokens for one vendor and one response."""

    def __init__(
        self,
        vendor: str,
        vault: TokenVault,
        never_restore: Iterable[str] = frozenset(),
        known: Iterable[Issued] = (),
        caller_literals: Iterable[str] = frozenset(),
        entity_types: Iterable[str] | None = None,
        keys: KeyProvider | None = None,
        scope: str | None = None,
    ):
        self.vendor = vendor
        self.scope = scope
        self.vault = vault
        self.keys = keys if keys is not None else vault.keys
        self.never_restore = {t.upper() for t in never_restore}
        self.caller_literals = {c.lower() for c in caller_literals}
        self.known = {i.surrogate.lower(): i for i in known}
        self.foreign_tokens = 0
        self.restored = 0
        types = None if entity_types is None else {t.upper() for t in entity_types} | {
            i.entity_type.upper() for i in self.known.values()
        }
        known_values = sorted(self.known, key=len, reverse=True)
        shaped = [ENCRYPT_PATTERN, tokenize_pattern(types)]
        # Token-shaped surrogates are found by the token patterns and resolve to the same key; only the
        # others (fakes, pseudonyms) need spelling out: an alternation of thousands of tokens costs a
        # second to compile and matches nothing the patterns don't.
        token = re.compile("|".join(shaped), re.IGNORECASE)
        spelled = [k for k in known_values if not _resolves_as_token(token, k)]
        alternatives = [f"(?P<known>{'|'.join(re.escape(k) for k in spelled)})"] if spelled else []
        self.pattern = re.compile(f"{BEFORE}(?:{'|'.join(alternatives + shaped)}){AFTER}", re.IGNORECASE)
        self.max_hold = max_token_length(self.known)
        self._known_prefix_of = known_values
        if types is None:
            self._token_start = re.compile(r"[a-z][a-z0-9_]*")
        else:
            heads = {t.lower() + "_" for t in types} | {ENCRYPT_PREFIX}
            self._heads = {h[:i] for h in heads for i in range(1, len(h) + 1)}
            names = "|".join(re.escape(t.lower()) for t in sorted(types, key=len, reverse=True))
            self._token_start = re.compile(
                rf"{ENCRYPT_PREFIX}[a-z0-9_]*" + (rf"|(?:{names})_[0-9a-z]{{0,{MAX_SURROGATE_LENGTH}}}" if names else "")
            )
        self._types = types
        self._cache: dict[str, Issued | None] = {}
        self._scoped: set[str] = set()  # keys checked to be in scope
        self._checked: set[str] = set()  # encrypt tokens checked not to be shredded

    def with_known(self, extra: Iterable[Issued]) -> Restorer:
        """The same restorer that also knows `extra` (values a format preset found for this answer)."""
        extra = list(extra)
        if not extra:
            return self
        return Restorer(self.vendor, self.vault, self.never_restore, [*self.known.values(), *extra],
                        self.caller_literals, self._types, self.keys, self.scope)

    async def restore_text(self, text: str, escape: Escape | None = None) -> str:
        """`escape`, for text that is JSON (tool arguments): how an original is written into it."""
        buffer = " " + text
        matches = list(self.pattern.finditer(buffer, 1))
        return await self._render(buffer, 1, len(buffer), matches, escape)

    def stream(self, escape: Escape | None = None) -> StreamRestorer:
        return StreamRestorer(self, escape)

    def could_start(self, tail: str) -> bool:
        """True if more text could make `tail` (or all of it) a token to restore."""
        low = tail.lower()
        if any(k.startswith(low) for k in self._known_prefix_of):
            return True
        if self._types is not None and low in self._heads:
            return True
        return self._token_start.fullmatch(low) is not None

    def cut(self, buffer: str) -> tuple[int, list[re.Match]]:
        """Where to stop releasing `buffer` (buffer[0] is context, never output)."""
        n = len(buffer)
        matches = list(self.pattern.finditer(buffer, 1))
        lo = max(1, n - self.max_hold)
        covered = set()
        for m in matches:
            if m.end() < n and m.end() > lo:
                covered.update(range(max(m.start() + 1, lo), m.end()))
        for s in range(lo, n):
            if _is_word(buffer[s - 1]) or s in covered:
                continue
            if self.could_start(buffer[s:]):
                return s, matches
        return n, matches

    async def _render(self, buffer: str, start: int, stop: int, matches: list[re.Match],
                      escape: Escape | None = None) -> str:
        chosen = [m for m in matches if m.start() < stop]
        resolved = await self._resolve(chosen)
        out, pos = [], start
        for m in chosen:
            out.append(buffer[pos : m.start()])
            issued = resolved.get(m.start())
            out.append((escape(issued.original) if escape else issued.original) if issued else m.group(0))
            pos = m.end()
        out.append(buffer[pos:stop])
        return "".join(out)

    async def _resolve(self, matches: list[re.Match]) -> dict[int, Issued]:
        """Start offset -> what the match stands for, for matches to restore."""
        keyed: dict[int, str] = {}
        ciphertexts: set[str] = set()
        for m in matches:
            text = m.group(0)
            if text.lower() in self.caller_literals:
                continue
            if "known" in m.re.groupindex and m.group("known"):
                key = text.lower()
            elif m.group("ct"):
                key = text.lower()
                if key not in self._cache:
                    self._cache[key] = self._decrypt(text)
                ciphertexts.add(key)
            else:
                key = f"{m.group('ttype').upper()}_{canonical(m.group('tcode'))}".lower()
            keyed[m.start()] = key
        decrypted = [k for k in ciphertexts if k not in self._checked and self._cache.get(k) is not None]
        if decrypted:  # an erased subject's encrypt tokens: the vault keeps a tombstone
            for k in await self.vault.shredded(self.vendor, decrypted):
                self._cache[k] = None
            self._checked.update(decrypted)
        missing = [k for k in set(keyed.values()) if k not in self._cache and k not in self.known]
        if missing:
            found = await self.vault.lookup(self.vendor, missing)
            for k in missing:
                self._cache[k] = found.get(k)
        await self._outside_scope([k for k in set(keyed.values()) if k not in self.known])
        result = {}
        for start, key in keyed.items():
            issued = self.known.get(key) or self._cache.get(key)
            if issued is None:
                self.foreign_tokens += 1
            elif issued.entity_type.upper() not in self.never_restore:
                result[start] = issued
                self.restored += 1
        return result

    async def _outside_scope(self, keys: list[str]) -> None:
        """Tokens issued to the vendor but not in this restorer's scope are foreign: forgotten here."""
        if self.scope is None:
            return
        keys = [k for k in keys if k not in self._scoped and self._cache.get(k) is not None]
        if not keys:
            return
        inside = await self.vault.in_scope(self.vendor, self.scope, keys) if self.scope else set()
        for k in keys:
            if k in inside:
                self._scoped.add(k)
            else:
                self._cache[k] = None

    def _decrypt(self, token: str) -> Issued | None:
        try:
            entity_type, value = decrypt_token(self.keys, self.vendor, token)
        except TokenError:
            return None
        return Issued(token, entity_type, value)

    async def restore_json(self, value: Any) -> Any:
        """Restore every string inside a parsed JSON document (keys untouched)."""
        if isinstance(value, str):
            return await self.restore_text(value)
        if isinstance(value, list):
            return [await self.restore_json(v) for v in value]
        if isinstance(value, dict):  # JSON text in a string (tool arguments): originals go in escaped
            return {k: await (self.restore_text(v, json_escape) if k in JSON_TEXT_KEYS and isinstance(v, str)
                              else self.restore_json(v)) for k, v in value.items()}
        return value


class StreamRestorer:
    """Chunked text in, restored text out; same result as restoring the whole."""

    def __init__(self, restorer: Restorer, escape: Escape | None = None):
        self.restorer = restorer
        self.escape = escape
        self._context = " "
        self._held = ""

    async def feed(self, chunk: str) -> str:
        buffer = self._context + self._held + chunk
        stop, matches = self.restorer.cut(buffer)
        out = await self.restorer._render(buffer, 1, stop, matches, self.escape)
        self._context = buffer[stop - 1]
        self._held = buffer[stop:]
        return out

    async def finish(self) -> str:
        buffer = self._context + self._held
        self._held = ""
        matches = list(self.restorer.pattern.finditer(buffer, 1))
        return await self.restorer._render(buffer, 1, len(buffer), matches, self.escape)

    @property
    def holding(self) -> bool:
        return bool(self._held)


class SSERestorer:
    """Restores a `text/event-stream` body, including tokens split across events.

    Every string of every event is restored. Strings that are pieces of a
    longer text (the `dialect` says which: chat and completions deltas, tool-call
    argument fragments, Responses API `*.delta` events, Anthropic text, tool
    input and thinking deltas) stream per channel — choice, tool call, item and
    content index, content block — through one `StreamRestorer` each, so a token
    split across events is restored and at most one token's length is held
    back. Any other string (ids, `*.done` texts, `response.completed`'s output)
    is restored on its own. A held-back tail goes out in the channel's next
    piece, in the event that ends the channel, or in an event added just before
    the one that ends it (`*.done`, `content_block_stop`, a finish, `[DONE]`,
    the end of the body). A `data:` payload that is not JSON is one text stream.
    """

    def __init__(self, restorer: Restorer, dialect: Dialect | None = None):
        self.restorer = restorer
        self.dialect = dialect or KNOWN
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._streams: dict[Channel, StreamRestorer] = {}
        self._templates: dict[Channel, tuple[list[str], dict]] = {}

    async def restore(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            out = await self.feed(chunk)
            if out:
                yield out
        out = await self.finish()
        if out:
            yield out

    async def feed(self, chunk: bytes) -> bytes:
        self._pending += self._decoder.decode(chunk)
        return await self._drain(final=False)

    async def finish(self) -> bytes:
        self._pending += self._decoder.decode(b"", final=True)
        out = await self._drain(final=True)
        if self._pending.strip("\n"):
            out += await self._event(self._pending.strip("\n"))
        self._pending = ""
        return out + await self._flush_all()

    async def _drain(self, final: bool) -> bytes:
        text = self._pending
        keep_cr = not final and text.endswith("\r")
        if keep_cr:
            text = text[:-1]
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        *blocks, rest = text.split("\n\n")
        self._pending = rest + ("\r" if keep_cr else "")
        out = b""
        for block in blocks:
            out += await self._event(block)
        return out

    async def _event(self, block: str) -> bytes:
        lines = block.split("\n")
        data_at = [i for i, line in enumerate(lines) if line.startswith("data:")]
        if not data_at:
            return (block + "\n\n").encode()
        data = "\n".join(_field_value(lines[i]) for i in data_at)
        other = [line for i, line in enumerate(lines) if i not in set(data_at)]
        if data.strip() == "[DONE]":
            return await self._flush_all() + (block + "\n\n").encode()
        try:
            obj = json.loads(data)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            new = await self._stream(TEXT).feed(data)
            self._templates.setdefault(TEXT, (other, {}))
            return block.encode() + b"\n\n" if new == data else _render_event(other, new)
        if self.dialect.skip(obj):
            return (block + "\n\n").encode()
        pieces = self.dialect.pieces(obj)
        ending = self.dialect.ends(obj)
        here = {p.channel for p in pieces}
        prefix = b""
        for channel in list(self._streams):
            if channel not in here and _ends(channel, ending):
                prefix += await self._flush(channel)
        changed = False
        for piece in pieces:
            before = piece.holder[piece.key]
            stream = self._stream(piece.channel, piece.json_text)
            after = await stream.feed(before)
            if _ends(piece.channel, ending):
                after += await stream.finish()
                del self._streams[piece.channel]
            if after != before:
                piece.holder[piece.key] = after
                changed = True
            self._templates[piece.channel] = (other, obj)
        if await self._restore_rest(obj, {(id(p.holder), p.key) for p in pieces}):
            changed = True
        if not changed:
            return prefix + (block + "\n\n").encode()
        return prefix + _render_event(other, json.dumps(obj, ensure_ascii=False, separators=(",", ":")))

    async def _restore_rest(self, node: Any, skip: set) -> bool:
        """Restore, in place, every string that is not a streamed piece; True if any changed."""
        changed = False
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            if isinstance(value, str):
                if key in OPAQUE_KEYS or (id(node), key) in skip or not value:
                    continue
                new = await self.restorer.restore_text(value, json_escape if key in JSON_TEXT_KEYS else None)
                if new != value:
                    node[key] = new
                    changed = True
            elif isinstance(value, (dict, list)):
                changed = await self._restore_rest(value, skip) or changed
        return changed

    def _stream(self, key: Channel, json_text: bool = False) -> StreamRestorer:
        if key not in self._streams:
            self._streams[key] = self.restorer.stream(json_escape if json_text else None)
        return self._streams[key]

    async def _flush(self, key: Channel) -> bytes:
        stream = self._streams.pop(key, None)
        if stream is None:
            return b""
        text = await stream.finish()
        if not text:
            return b""
        other, template = self._templates.get(key, ([], {}))
        event = None if key == TEXT else self.dialect.carrier(key, template, text)
        if event is None:
            return _render_event(other if key == TEXT else [], text)
        return _render_event(other, json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    async def _flush_all(self) -> bytes:
        out = b""
        for key in list(self._streams):
            out += await self._flush(key)
        return out


TEXT: Channel = ("text",)


def _ends(channel: Channel, ending: list[Channel]) -> bool:
    return any(channel[: len(p)] == p for p in ending)


def _field_value(line: str) -> str:
    value = line[5:]
    return value[1:] if value.startswith(" ") else value


def _render_event(other_lines: list[str], data: str) -> bytes:
    lines = list(other_lines) + [f"data: {part}" for part in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()
