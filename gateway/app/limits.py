"""Connection-level limits the app itself cannot see: they act before a request exists.

- a request head must arrive within `header_timeout_seconds` of the connection
  opening (slowloris, half-open connections); between requests on a keep-alive
  connection, `idle_timeout_seconds` (aiohttp's keep-alive timeout, set in
  `handler_args` so it also holds under a plain `AppRunner`);
- at most `max_connections_per_client` connections at once per client address:
  the next one gets `503` and is closed;
- a request aiohttp cannot parse is answered `400` with a fixed JSON body and
  logged as one line naming the error class: never the raw line or header
  value (aiohttp's own answer and traceback quote them, tokens included).

Run the app with `GatewayRunner` to get them. Body read timeout and the total
header size are checked in the handler (`gateway.app.handler`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("vendorgate.connections")
BAD_REQUEST_BODY = json.dumps({"error": "malformed HTTP request"}).encode()


class ParseErrorScrubber(logging.Filter):
    """On aiohttp's server logger: a parse error is logged without its text or traceback (they quote the
    raw request line or header, tokens included). Holds under any runner."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "malformed request: %s", (type(exc).__name__,)
            record.exc_info, record.exc_text = None, None
        return True


def scrub_parse_errors() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ParseErrorScrubber) for f in logger.filters):
        logger.addFilter(ParseErrorScrubber())


def handler_args(limits) -> dict:
    """What aiohttp's request handler takes from `limits` (any runner)."""
    return {"keepalive_timeout": limits.idle_timeout_seconds, "max_headers": limits.max_headers}


class GuardedRequestHandler(RequestHandler):
    header_timeout: float = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_timer = self._loop.call_later(self.header_timeout, self._head_overdue)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_count and getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _head_overdue(self) -> None:
        self._head_timer = None
        if not self._request_count:
            log.info("closed a connection: no complete request head within %ss", self.header_timeout)
            self.force_close()
            if self.transport is not None:
                self.transport.close()

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, None if exc is None else _Scrubbed(exc), None)
        log.warning("malformed request from %s: %s (status %s)", request.remote, type(exc).__name__, status)
        resp = web.Response(status=status, body=BAD_REQUEST_BODY, content_type="application/json")
        resp.force_close()
        return resp


class _Scrubbed(Exception):
    """Stands in for an exception whose text may quote request bytes."""

    def __init__(self, exc: BaseException):
        super().__init__(type(exc).__name__)


class GuardedServer(web.Server):
    """`web.Server` that builds `GuardedRequestHandler`s and counts connections per client address."""

    max_per_client: int = 64
    header_timeout: float = 10.0

    def __call__(self) -> RequestHandler:
        handler = GuardedRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.header_timeout = self.header_timeout
        return handler

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else str(peer)
        self._peers[handler] = address
        self._per_client[address] += 1
        if self._per_client[address] > self.max_per_client:
            log.warning("refused a connection: more than %d open from one client address", self.max_per_client)
            body = json.dumps({"error": "too many connections from this address"}).encode()
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            handler.force_close()
            transport.close()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        address = self._peers.pop(handler, None)
        if address is not None:
            self._per_client[address] -= 1
            if self._per_client[address] <= 0:
                del self._per_client[address]
        super().connection_lost(handler, exc)


class GatewayRunner(web.AppRunner):
    """`web.AppRunner` whose connections are guarded by `limits` (`gateway.config.LimitsConfig`)."""

    def __init__(self, app: web.Application, limits, **kwargs):
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GuardedServer  # same state, guarded connections
        server._peers = {}
        server._per_client = Counter()
        server.max_per_client = self._limits.max_connections_per_client
        server.header_timeout = self._limits.header_timeout_seconds
        return server
