"""The `relay` stage: stream the vendor's answer back, with tokens restored.

JSON is read whole, restored string by string and re-serialised only when
something changed; `text/event-stream` and other text are restored as they
stream (`SSERestorer`, `StreamRestorer`), so the caller gets each event as
soon as no token can still be starting in it. Compressed responses are decoded
on the fly (we ask for identity, but a vendor may compress anyway). Anything
else, or an encoding we can't decode, passes through unchanged.

Streamed responses are returned without their end: the audit middleware writes
the request's record first, then aiohttp ends the response, so a caller that
has the whole answer can also find its record.
"""

from __future__ import annotations

import codecs
import json

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.payload.encoding import DECODABLE, StreamDecoder, codings
from gateway.payload.fields import media_type
from gateway.pipeline.flow import Flow, Relayed
from gateway.refusal import Refusal
from gateway.reversible.dialects import Dialect
from gateway.reversible.lines import JSONLinesRestorer
from gateway.reversible.restore import Restorer, SSERestorer

MAX_JSON_BYTES = 64 * 1024 * 1024
NO_BODY_STATUSES = frozenset({204, 304})
REQUEST_ID_HEADER = "X-Vendorgate-Request-Id"


class ResponseTooLarge(Exception):
    pass


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
                restorer: Restorer | None, flow: Flow, dialect: Dialect | None = None,
                hint: str | None = None) -> web.StreamResponse:
    """The caller's response; what was relayed goes to `flow.relayed` once, when it is known.
    `dialect` reads the vendor's stream events; `hint` is the preset's response kind for this route."""
    kind = restorer and restorable_kind(request.method, upstream.status, upstream.headers, hint)
    if not kind:
        return await _relay_plain(request, upstream, headers, flow)
    _, charset = media_type(upstream.headers.get("Content-Type", ""))
    decoder = StreamDecoder(upstream.headers.get("Content-Encoding", ""))
    headers = restored_headers(headers, kind, charset)
    if kind == "json":
        return await _relay_json(upstream, headers, restorer, decoder, flow)
    return await _relay_stream(request, upstream, headers, restorer, decoder, kind, charset, flow, dialect)


async def _relay_plain(request, upstream, headers, flow: Flow) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    response.headers[REQUEST_ID_HEADER] = flow.request_id
    await response.prepare(request)
    received, error = 0, ""
    try:
        async for chunk in upstream.content.iter_any():
            received += len(chunk)
            await response.write(chunk)
    except (TimeoutError, aiohttp.ClientError) as exc:
        error = f"upstream response interrupted: {type(exc).__name__}"
    finally:
        flow.relayed = Relayed(received, error=error)
    return response


async def _relay_json(upstream, headers, restorer: Restorer, decoder: StreamDecoder, flow: Flow) -> web.Response:
    body = bytearray()
    received = 0
    try:
        async for chunk in upstream.content.iter_any():
            received += len(chunk)
            body += decoder.feed(chunk)
            if len(body) > MAX_JSON_BYTES:
                raise ResponseTooLarge(f"vendor JSON response exceeds {MAX_JSON_BYTES} bytes; cannot restore it")
        body += decoder.flush()
        raw = bytes(body)
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError:
            restored = await restorer.restore_text(raw.decode("utf-8", "replace"))
            out = restored.encode("utf-8") if restorer.restored else raw
        else:
            new = await restorer.restore_json(data)
            out = json.dumps(new, ensure_ascii=False).encode("utf-8") if new != data else raw
    except Exception as exc:  # nothing was sent yet: answer with an error instead
        raise Refusal(502, f"vendor response could not be restored: {type(exc).__name__}", outcome="error") from None
    finally:
        flow.relayed = Relayed(received, restorer.restored, restorer.foreign_tokens)
    response = web.Response(status=upstream.status, reason=upstream.reason, headers=headers, body=out)
    response.headers[REQUEST_ID_HEADER] = flow.request_id
    return response


async def _relay_stream(request, upstream, headers, restorer: Restorer, decoder: StreamDecoder, kind: str,
                        charset: str, flow: Flow, dialect: Dialect | None = None) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    response.headers[REQUEST_ID_HEADER] = flow.request_id
    await response.prepare(request)
    if kind == "sse":
        sse = SSERestorer(restorer, dialect)
        feed, finish = sse.feed, sse.finish
    elif kind == "jsonl":
        lines = JSONLinesRestorer(restorer)
        feed, finish = lines.feed, lines.finish
    else:
        stream = restorer.stream()
        text = codecs.getincrementaldecoder(_known_charset(charset))(errors="replace")

        async def feed(data: bytes) -> bytes:
            return (await stream.feed(text.decode(data))).encode("utf-8")

        async def finish() -> bytes:
            return (await stream.feed(text.decode(b"", final=True)) + await stream.finish()).encode("utf-8")

    received, error = 0, ""
    try:
        async for chunk in upstream.content.iter_any():
            received += len(chunk)
            out = await feed(decoder.feed(chunk))
            if out:
                await response.write(out)
        out = await feed(decoder.flush()) + await finish()
        if out:
            await response.write(out)
    except (TimeoutError, aiohttp.ClientError) as exc:
        error = f"upstream response interrupted: {type(exc).__name__}"
    except Exception as exc:  # a bad encoding or an unreachable vault: the stream ends here
        error = f"vendor response could not be restored: {type(exc).__name__}"
    finally:
        flow.relayed = Relayed(received, restorer.restored, restorer.foreign_tokens, error)
    return response


def _known_charset(charset: str) -> str:
    try:
        codecs.lookup(charset)
    except LookupError:
        return "utf-8"
    return charset
