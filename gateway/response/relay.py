"""The `relay` stage: stream the vendor's answer back, with tokens restored.

JSON is read whole, restored string by string and re-serialised only when
something changed; `text/event-stream` and other text are restored as they
stream (`SSERestorer`, `StreamRestorer`), so the caller gets each event as
soon as no token can still be starting in it. Compressed responses are decoded
on the fly (we ask for identity, but a vendor may compress anyway). Anything
else, or an encoding we can't decode, passes through unchanged. A format preset's
links (vendor URLs the caller fetches next) are moved onto the gateway in any
JSON answer, also when the policy restores nothing.

Streamed responses are returned without their end: the audit middleware writes
the request's record first, then aiohttp ends the response, so a caller that
has the whole answer can also find its record.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.payload.encoding import DECODABLE, ResponseTooLarge, StreamDecoder, codings
from gateway.payload.fields import media_type
from gateway.pipeline.flow import Flow, Relayed
from gateway.refusal import Refusal
from gateway.reversible.dialects import Dialect
from gateway.reversible.lines import JSONLinesRestorer
from gateway.reversible.restore import Restorer, SSERestorer

MAX_JSON_BYTES = 64 * 1024 * 1024
NO_BODY_STATUSES = frozenset({204, 304})
JSON_LINES = frozenset({"application/x-jsonl", "application/jsonl", "application/jsonlines", "application/x-ndjson",
                        "application/ndjson"})
Reshape = Callable[[Any, Restorer], Awaitable[tuple[Any, Restorer]]]
Links = Callable[[Any], Any]  # a parsed JSON answer -> the same with the vendor's links on the gateway
REQUEST_ID_HEADER = "X-Vendorgate-Request-Id"


@dataclass(frozen=True)
class RelayRules:
    """Per-vendor bounds on what comes back: decoded size, a stream's duration and bytes, and the
    values that must never reach the caller (the injected vendor credential)."""

    max_response_bytes: int = MAX_JSON_BYTES
    stream_max_seconds: float | None = None
    stream_max_bytes: int | None = None
    scrub: tuple[str, ...] = ()


class Scrubber:
    """Removes `secrets` from a byte stream, also when one is split across chunks: only a tail
    that could still begin a secret is held back."""

    REPLACEMENT = b"[vendor credential removed]"

    def __init__(self, secrets: tuple[str, ...]):
        self.secrets = sorted({s.encode() for s in secrets if len(s) >= 8}, key=len, reverse=True)
        self._held = b""
        self.removed = 0

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def feed(self, data: bytes) -> bytes:
        buf = self._held + data
        for secret in self.secrets:
            self.removed += buf.count(secret)
            buf = buf.replace(secret, self.REPLACEMENT)
        hold = 0
        for k in range(min(len(buf), max(len(s) for s in self.secrets) - 1), 0, -1):
            if any(s.startswith(buf[-k:]) for s in self.secrets):
                hold = k
                break
        self._held = buf[len(buf) - hold:] if hold else b""
        return buf[:len(buf) - hold]

    def finish(self) -> bytes:
        out, self._held = self._held, b""
        return out


class StreamLimit(Exception):
    pass


async def _decode(decoder: StreamDecoder, data: bytes) -> bytes:
    """Decompression is CPU work: off the event loop, bounded by the decoder's caps."""
    if not decoder.steps:
        return data
    return await asyncio.to_thread(decoder.feed, data)


async def _chunks(upstream, rules: RelayRules, bounded: bool):
    """The upstream body; a streamed one stops at the vendor's duration and byte bounds."""
    deadline = time.monotonic() + rules.stream_max_seconds if bounded and rules.stream_max_seconds else None
    received = 0
    iterator = upstream.content.iter_any().__aiter__()
    while True:
        try:
            if deadline is None:
                chunk = await iterator.__anext__()
            else:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())) as window:
                    chunk = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            if deadline is not None and window.expired():
                raise StreamLimit(f"response stream exceeded {rules.stream_max_seconds:g}s; ended by the gateway") \
                    from None
            raise
        received += len(chunk)
        if bounded and rules.stream_max_bytes is not None and received > rules.stream_max_bytes:
            raise StreamLimit(f"response stream exceeded {rules.stream_max_bytes} bytes; ended by the gateway")
        yield chunk


def restorable_kind(method: str, status: int, headers, hint: str | None = None) -> str | None:
    """"json", "jsonl", "sse", "text", or None for a response to pass through unchanged.
    `hint`: what the vendor's format preset knows this route returns (a batch file, an export)."""
    if method == "HEAD" or status in NO_BODY_STATUSES or status < 200:
        return None
    if any(c not in DECODABLE for c in codings(headers.get("Content-Encoding", ""))):
        return None
    if hint and 200 <= status < 300:
        return hint
    mtype, _ = media_type(headers.get("Content-Type", ""))
    if mtype == "text/event-stream":
        return "sse"
    if mtype in JSON_LINES:
        return "jsonl"
    if mtype == "application/json" or mtype.endswith("+json"):
        return "json"
    if mtype.startswith("text/"):
        return "text"
    return None


def restored_headers(headers: CIMultiDict, kind: str, charset: str) -> CIMultiDict:
    out = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in ("content-encoding", "etag", "content-md5"))
    if kind == "text" and charset != "utf-8":
        mtype, _ = media_type(headers.get("Content-Type", ""))
        out["Content-Type"] = f"{mtype}; charset=utf-8"
    return out


async def relay(request: web.Request, upstream: aiohttp.ClientResponse, headers: CIMultiDict,
                restorer: Restorer | None, flow: Flow, rules: RelayRules = RelayRules(),
                dialect: Dialect | None = None, hint: str | None = None,
                reshape: Reshape | None = None, links: Links | None = None) -> web.StreamResponse:
    """The caller's response; what was relayed goes to `flow.relayed` once, when it is known.
    `dialect` reads the vendor's stream events; `hint` is the preset's response kind for this route;
    `reshape` is the preset's step on a JSON answer, or on each line of JSON Lines, before its restore
    (the Label Studio and Labelbox offset maps); `links` moves the vendor URLs in a JSON answer onto
    the gateway, with or without a restore."""
    scrubber = Scrubber(rules.scrub)
    kind = (restorer or links) and restorable_kind(request.method, upstream.status, upstream.headers, hint)
    if not kind or (restorer is None and kind != "json"):
        return await _relay_plain(request, upstream, headers, flow, rules, scrubber)
    _, charset = media_type(upstream.headers.get("Content-Type", ""))
    decoder = StreamDecoder(upstream.headers.get("Content-Encoding", ""), rules.max_response_bytes)
    headers = restored_headers(headers, kind, charset)
    if kind == "json":
        return await _relay_json(upstream, headers, restorer, decoder, flow, rules, scrubber, reshape, links)
    return await _relay_stream(request, upstream, headers, restorer, decoder, kind, charset, flow, rules, scrubber,
                               dialect, reshape)


async def _relay_plain(request, upstream, headers, flow: Flow, rules: RelayRules, scrubber: Scrubber) -> web.StreamResponse:
    decoder = StreamDecoder("")
    if scrubber and codings(upstream.headers.get("Content-Encoding", "")):
        # the credential must be looked for in the decoded body; we asked for identity
        if any(c not in DECODABLE for c in codings(upstream.headers["Content-Encoding"])):
            flow.relayed = Relayed(0, error="vendor response in an encoding the gateway cannot check")
            raise Refusal(502, "vendor response in an encoding the gateway cannot check for the vendor credential",
                          outcome="error")
        decoder = StreamDecoder(upstream.headers["Content-Encoding"], rules.max_response_bytes)
        headers = CIMultiDict((k, v) for k, v in headers.items()
                              if k.lower() not in ("content-encoding", "etag", "content-md5"))

    async def passed(data: bytes) -> bytes:
        return data

    async def nothing() -> bytes:
        return b""

    return await _pump(request, upstream, headers, decoder, passed, nothing, flow, rules, scrubber)


async def _relay_json(upstream, headers, restorer: Restorer | None, decoder: StreamDecoder, flow: Flow,
                      rules: RelayRules, scrubber: Scrubber, reshape: Reshape | None = None,
                      links: Links | None = None) -> web.Response:
    body = bytearray()
    received = 0
    limit = min(MAX_JSON_BYTES, rules.max_response_bytes)
    try:
        async for chunk in _chunks(upstream, rules, bounded=False):
            received += len(chunk)
            body += await _decode(decoder, chunk)
            if len(body) > limit:
                raise ResponseTooLarge(f"vendor JSON response exceeds {limit} bytes; cannot restore it")
        body += await _decode(decoder, b"")
        raw = bytes(body)
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError:
            text = raw.decode("utf-8", "replace")
            restored = await restorer.restore_text(text) if restorer else text
            out = restored.encode("utf-8") if restorer and restorer.restored else raw
        else:
            shaped = links(data) if links is not None else data  # a new document when a link moved
            if reshape is not None and restorer is not None:  # a new document too: `data` stays the vendor's
                shaped, restorer = await reshape(shaped, restorer)
            new = await restorer.restore_json(shaped) if restorer else shaped
            out = json.dumps(new, ensure_ascii=False).encode("utf-8") if new != data else raw
        if scrubber:
            out = scrubber.feed(out) + scrubber.finish()
    except Exception as exc:  # nothing was sent yet: answer with an error instead
        raise Refusal(502, f"vendor response could not be restored: {type(exc).__name__}", outcome="error") from None
    finally:
        flow.relayed = (Relayed(received, restorer.restored, restorer.foreign_tokens) if restorer
                        else Relayed(received))
    response = web.Response(status=upstream.status, reason=upstream.reason, headers=headers, body=out)
    response.headers[REQUEST_ID_HEADER] = flow.request_id
    return response


async def _relay_stream(request, upstream, headers, restorer: Restorer, decoder: StreamDecoder, kind: str,
                        charset: str, flow: Flow, rules: RelayRules, scrubber: Scrubber,
                        dialect: Dialect | None = None, reshape: Reshape | None = None) -> web.StreamResponse:
    if kind == "sse":
        sse = SSERestorer(restorer, dialect)
        feed, finish = sse.feed, sse.finish
    elif kind == "jsonl":
        lines = JSONLinesRestorer(restorer, reshape)  # the preset's step runs on each line
        feed, finish = lines.feed, lines.finish
    else:
        stream = restorer.stream()
        text = codecs.getincrementaldecoder(_known_charset(charset))(errors="replace")

        async def feed(data: bytes) -> bytes:
            return (await stream.feed(text.decode(data))).encode("utf-8")

        async def finish() -> bytes:
            return (await stream.feed(text.decode(b"", final=True)) + await stream.finish()).encode("utf-8")

    return await _pump(request, upstream, headers, decoder, feed, finish, flow, rules, scrubber, restorer)


async def _pump(request, upstream, headers, decoder: StreamDecoder, feed, finish, flow: Flow, rules: RelayRules,
                scrubber: Scrubber, restorer: Restorer | None = None) -> web.StreamResponse:
    """Relays the vendor's body chunk by chunk: decode, `feed` (restore or pass), scrub the credential.
    An interruption ends the stream and is recorded in `flow.relayed`: the caller has the status already."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    response.headers[REQUEST_ID_HEADER] = flow.request_id
    await response.prepare(request)
    received, error = 0, ""
    try:
        async for chunk in _chunks(upstream, rules, bounded=True):
            received += len(chunk)
            out = await feed(await _decode(decoder, chunk))
            if scrubber:
                out = scrubber.feed(out)
            if out:
                await response.write(out)
        out = (await feed(await _decode(decoder, b"")) if decoder.steps or restorer else b"") + await finish()
        if scrubber:
            out = scrubber.feed(out) + scrubber.finish()
        if out:
            await response.write(out)
    except (TimeoutError, aiohttp.ClientError) as exc:
        error = f"upstream response interrupted: {type(exc).__name__}"
    except (StreamLimit, ResponseTooLarge) as exc:
        error = str(exc)
    except Exception as exc:  # a bad encoding or an unreachable vault: the stream ends here
        error = f"vendor response could not be {'restored' if restorer else 'relayed'}: {type(exc).__name__}"
    finally:
        flow.relayed = (Relayed(received, restorer.restored, restorer.foreign_tokens, error) if restorer
                        else Relayed(received, error=error))
    return response


def _known_charset(charset: str) -> str:
    try:
        codecs.lookup(charset)
    except LookupError:
        return "utf-8"
    return charset
