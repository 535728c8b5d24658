"""The vendor route: route → read the request → protect → forward → relay.

Each step sets its result on the request's `Flow`; refusals are raised and
answered by the middleware, which also writes the audit record.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

import aiohttp
from aiohttp import web

from gateway.app.auth import without_gateway_key
from gateway.app.headers import (
    CONVERSATION_HEADER,
    ResponseRules,
    injected_secret,
    outbound_headers,
    response_headers,
    select_request_headers,
)
from gateway.app.links import gateway_origin, link_rewriter
from gateway.app.middleware import ERROR_SHAPE, FLOW, REQUEST_ID, audit_path, audit_record
from gateway.app.routing import RouteError, check_path, split_route, upstream_url
from gateway.audit.journal import Journal, JournalError
from gateway.config import Settings
from gateway.payload.sendbody import request_data
from gateway.pipeline.compiled import compiled
from gateway.pipeline.flow import Flow, Outbound, Protected, Upstream
from gateway.pipeline.protect import Services, protect
from gateway.refusal import Refusal
from gateway.response.relay import RelayRules, relay
from gateway.reversible.restore import Restorer
from gateway.vendors import preset

DROPPED_HEADER = "X-Vendorgate-Dropped-Tasks"
MAX_DROPPED_LISTED = 500


@dataclass
class Gateway:
    settings: Settings
    services: Services
    session: aiohttp.ClientSession
    journal: Journal | None = None  # the write-ahead journal: written before anything is forwarded

    async def handle(self, request: web.Request) -> web.StreamResponse:
        flow = request[FLOW]
        limits = self.settings.config.limits
        check_header_size(request, limits.max_header_bytes)
        vendor_name, rest = split_route(request.raw_path)
        vendor = self.settings.config.vendors.get(vendor_name)
        if vendor is None:  # the segment is never echoed: it may be anything, a token included
            flow.path = "/"
            raise Refusal(404, "unknown vendor (the first path segment names a configured vendor)",
                          outcome="rejected")
        flow.vendor = vendor_name
        fmt = preset(vendor.format)
        if fmt.error is not None:
            request[ERROR_SHAPE] = fmt.error  # refusals answer in the vendor's error format
        flow.path = audit_path(rest)
        flow.policy = policy = self.settings.policies[vendor_name]
        check_path(rest)
        body = await read_body(request, vendor.max_body_bytes, limits.body_timeout_seconds)
        headers = select_request_headers(without_gateway_key(request), vendor.credential, vendor.forward_headers,
                                         vendor.caller_credentials)
        scope = restore_scope(vendor.restore_scope, flow, request)
        out = Outbound(vendor=vendor_name, path=rest, query=request.query_string, body=body,
                       content_type=request.headers.get("Content-Type", ""),
                       content_encoding=request.headers.get("Content-Encoding", ""),
                       headers=tuple(headers), scope=scope or "", caller=flow.caller)
        flow.protected = protected = await protect(out, policy, self.services, vendor.max_body_bytes)
        if fmt.outbound is not None:
            flow.protected = protected = await fmt.outbound(request.method, out, protected, policy,
                                                            self.services.vault, self.services.keys)
        return await self.forward(request, flow, vendor, protected,
                                  self.restorer(vendor_name, policy, scope, protected.issued, protected.caller_literals))

    def restorer(self, vendor_name: str, policy, scope: str | None = None, known=(), caller_literals=()) -> Restorer | None:
        """None when the policy issues nothing reversible: the response passes through as is.
        `known`: the request's own surrogates; `caller_literals`: values the caller sent as they were."""
        vault = self.services.vault
        reversible = compiled(policy).reversible_types
        if vault is None or not reversible:
            return None
        return Restorer(vendor_name, vault, never_restore=policy.never_restore, known=list(known),
                        caller_literals=set(caller_literals), entity_types=reversible,
                        keys=self.services.keys, scope=scope)

    async def journal_before_forward(self, flow: Flow, sent: int) -> None:
        if self.journal is None:
            return
        try:
            await self.journal.opened(replace(audit_record(flow), bytes_sent=sent))
        except JournalError as exc:
            raise Refusal(503, f"{exc}; request not forwarded", outcome="error") from None

    async def forward(self, request: web.Request, flow: Flow, vendor, protected: Protected,
                      restorer: Restorer | None) -> web.StreamResponse:
        url = upstream_url(vendor.upstream, protected.path, protected.query)
        headers = outbound_headers(protected.headers, vendor.credential)
        headers[REQUEST_ID] = flow.request_id  # the caller's, when it looked like an id, else ours
        secret = injected_secret(vendor.credential)
        scrub = (vendor.credential.prefix + secret, secret) if secret else ()
        fmt = preset(vendor.format)
        if restorer is not None or scrub or fmt.links:
            headers["Accept-Encoding"] = "identity"  # we restore the body, so we must read it
        if protected.body:
            headers["Content-Length"] = str(len(protected.body))
        timeout = aiohttp.ClientTimeout(total=None, connect=min(10.0, vendor.timeout_seconds),
                                        sock_read=vendor.timeout_seconds)
        sent = len(protected.body)
        await self.journal_before_forward(flow, sent)
        flow.forwarded_at = time.perf_counter()
        try:
            upstream = await self.session.request(
                request.method, url, headers=headers, data=request_data(protected.body),
                allow_redirects=False, timeout=timeout, auto_decompress=False,
            )
        except TimeoutError:
            flow.upstream = Upstream(None, sent, reached=False, maybe_received=True)
            raise Refusal(504, "vendor did not answer in time", outcome="error") from None
        except aiohttp.ClientConnectorError as exc:
            flow.upstream = Upstream(None, sent, reached=False, maybe_received=False)
            raise Refusal(502, f"vendor unreachable: {type(exc).__name__}", outcome="error") from None
        except aiohttp.ClientError as exc:
            flow.upstream = Upstream(None, sent, reached=False, maybe_received=True)
            raise Refusal(502, f"vendor unreachable: {type(exc).__name__}", outcome="error") from None
        finally:
            flow.upstream_seconds = time.perf_counter() - flow.forwarded_at
        flow.upstream = Upstream(upstream.status, sent, reached=True, maybe_received=True)
        back = response_headers(upstream.headers, ResponseRules(vendor.upstream, flow.vendor, vendor.set_cookie, scrub))
        if protected.dropped_tasks:  # `on_block: drop_task`: which tasks of the caller's batch were left out
            back[DROPPED_HEADER + "-Count"] = str(len(protected.dropped_tasks))
            if len(protected.dropped_tasks) <= MAX_DROPPED_LISTED:  # a header line stays short
                back[DROPPED_HEADER] = ",".join(map(str, protected.dropped_tasks))
        rules = RelayRules(vendor.max_response_bytes, vendor.stream_max_seconds, vendor.stream_max_bytes, scrub)
        links = link_rewriter(fmt.links, self.settings.config.public_url or gateway_origin(request), vendor.upstream, flow.vendor) if fmt.links else None
        async with upstream:
            return await relay(request, upstream, back, restorer, flow, rules, fmt.dialect,
                               fmt.response_kind(request.method, protected.path), fmt.inbound_json, links)


def restore_scope(kind: str, flow: Flow, request: web.Request) -> str | None:
    """The vault scope whose tokens this request's answer may restore: None = any of the vendor's,
    "" = none but this request's own."""
    if kind == "vendor":
        return None
    if kind == "request":
        return ""
    if kind == "conversation":
        return f"caller:{flow.caller}\0conversation:{request.headers.get(CONVERSATION_HEADER, '')[:128]}"
    return f"caller:{flow.caller}"


def check_header_size(request: web.Request, limit: int) -> None:
    size = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
    if size > limit:
        raise Refusal(431, f"request headers exceed {limit} bytes in total", outcome="rejected")


class BodyTooLarge(RouteError):
    def __init__(self, limit: int):
        super().__init__(413, f"request body exceeds {limit} bytes")


async def read_body(request: web.Request, limit: int, seconds: float) -> bytearray:
    """The whole body, at most `limit` bytes (413), within `seconds` (408)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    body = bytearray()  # grown in place: no second copy of a large body while joining
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.content.iter_any():
                if len(body) + len(chunk) > limit:
                    raise BodyTooLarge(limit)
                body += chunk
    except TimeoutError:
        raise Refusal(408, f"request body not received within {seconds:g}s", outcome="rejected") from None
    return body
