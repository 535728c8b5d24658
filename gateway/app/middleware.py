"""What wraps every vendor request, the way Starlette middleware composes:

- `audit`: creates the request's `Flow`, and in `finally` — whatever happened,
  the caller hung up included — turns it into one audit record, appends it, and
  runs the finished-flow hooks (exposure ledger, SIEM sinks, the log line).
  A streamed response is handed back before its end, so the record is written
  before the caller sees EOF.
- `refusals`: the one handler for `Refusal`: status, JSON body, request id.
- `authenticate` (`gateway/app/auth.py`), inside `refusals`: sets `flow.caller`
  from the caller's API key, or refuses with 401/403 (audited as `rejected`).

Metrics are a finished-flow hook (`gateway/app/metrics.py`).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from gateway.audit import AuditLog, AuditRecord
from gateway.audit.journal import Journal
from gateway.pipeline.flow import Flow
from gateway.refusal import Refusal
from gateway.response.relay import REQUEST_ID_HEADER

log = logging.getLogger("vendorgate.proxy")
FLOW = web.RequestKey("vendorgate.flow", Flow)
# Set by the handler once the vendor is known: (refusal, request id) -> (body, headers) in the vendor's format.
ERROR_SHAPE = web.RequestKey("vendorgate.error_shape", object)
VENDOR_ROUTE = "vendor"
WEBHOOK_ROUTE = "webhook"  # POST /-/webhooks/{vendor}: the vendor calls in (gateway.app.webhooks)
AUDITED_ROUTES = frozenset({VENDOR_ROUTE, WEBHOOK_ROUTE})
_PLAIN_SEGMENT = re.compile(r"(?:v\d{1,2}|[A-Za-z_.-]{0,40})")

Hook = Callable[[Flow, AuditRecord], Awaitable[None]]
Binder = Callable[[Flow, AuditRecord], Awaitable[None]]


def audit_path(path: str) -> str:
    """The route for the audit log: no query string, and every segment that is
    not a plain word (ids, names, emails, numbers) shown as `<hidden>`."""
    return "/" + "/".join(s if _PLAIN_SEGMENT.fullmatch(s) else "<hidden>" for s in path.split("/"))


def audit_record(flow: Flow) -> AuditRecord:
    """The flow as the audit log keeps it: counts and types, never values."""
    protected, refusal, upstream, relayed = flow.protected, flow.refusal, flow.upstream, flow.relayed
    error = refusal.message if refusal is not None else (relayed.error if relayed else "") or flow.error
    return AuditRecord(
        id=flow.id, ts=flow.ts, request_id=flow.request_id, caller=flow.caller, vendor=flow.vendor,
        method=flow.method, path=flow.path, decision=flow.decision, status=flow.status,
        upstream_status=upstream.status if upstream and upstream.reached else None,
        bytes_sent=upstream.bytes_sent if upstream and upstream.reached else 0,
        bytes_received=relayed.bytes_received if relayed else 0,
        findings=dict(protected.decision.findings) if protected else dict(refusal.findings if refusal else {}),
        actions=dict(protected.decision.actions) if protected else {},
        blocked_types=list(refusal.entity_types) if refusal is not None and protected is None else [],
        error=error, policy_digest=flow.policy.digest if flow.policy is not None else "",
        duration_ms=flow.elapsed_ms(), restored=relayed.restored if relayed else 0,
        foreign_tokens=relayed.foreign_tokens if relayed else 0,
        unscanned_parts=list(protected.unscanned_parts) if protected else [], direction=flow.direction,
    )


REQUEST_ID = "X-Request-Id"
CLIENT_CLOSED = 499  # the status nginx records for a client that closed the connection first
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_LETTER, _DIGIT = re.compile(r"[A-Za-z]"), re.compile(r"[0-9]")


def request_id_of(request: web.Request) -> str:
    """The caller's `X-Request-Id` when it looks like an id (16-64 of [A-Za-z0-9_-], letters and
    digits: a UUID, a trace id), else a new one. It is stored and sent on, so anything that could
    be a value (an email, a card or phone number, a name) is replaced, not kept."""
    given = request.headers.get(REQUEST_ID, "")
    if _REQUEST_ID.fullmatch(given) and _LETTER.search(given) and _DIGIT.search(given):
        return given
    return uuid.uuid4().hex


def new_flow(request: web.Request) -> Flow:
    """The caller is `anonymous` until the auth middleware authenticates it; a caller-sent
    `X-Vendorgate-Caller` is never trusted (nor stored)."""
    return Flow(method=request.method, request_id=request_id_of(request))


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every vendor-route response carries the request id back."""
    flow = request.get(FLOW)
    if flow is not None:
        response.headers[REQUEST_ID] = flow.request_id


def audit(audit_log: Callable[[], AuditLog], hooks: Callable[[], Sequence[Hook]],
          binders: Callable[[], Sequence[Binder]] = lambda: (), journal: Callable[[], Journal | None] = lambda: None):
    """`audit_log`, `hooks`, `binders` and `journal` are looked up per request: they open with the
    app's lifecycle. Binders run before the append and may add to the record (the ledger's digest);
    the journal entry the handler wrote before forwarding is closed once the record is in."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if request.match_info.route.name not in AUDITED_ROUTES:
            return await handler(request)
        flow = request[FLOW] = new_flow(request)
        try:
            response = await handler(request)
            flow.status = response.status
            return response
        except ConnectionResetError:  # the caller hung up while its body was read or its answer written
            flow.status, flow.error = CLIENT_CLOSED, "the caller closed the connection before the answer was written"
            log.info("request %s: the caller closed the connection", flow.request_id)
            return web.Response(status=CLIENT_CLOSED)  # never sent: aiohttp drops it on the closed transport
        finally:
            record = audit_record(flow)
            for bind in binders():
                await bind(flow, record)
            started = time.perf_counter()
            await audit_log().append(record)
            flow.audit_append_seconds = time.perf_counter() - started
            if (written := journal()) is not None:
                written.done(record.id)
            for hook in hooks():
                await hook(flow, record)

    return middleware


@web.middleware
async def refusals(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refusal as exc:
        flow = request.get(FLOW)
        request_id = flow.request_id if flow is not None else uuid.uuid4().hex
        if flow is not None:
            flow.refusal = exc
        retry = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
        shape = request.get(ERROR_SHAPE)
        if shape is not None:
            body, extra = shape(exc, request_id)
            return web.json_response(body, status=exc.status,
                                     headers={REQUEST_ID_HEADER: request_id, **retry, **extra})
        body: dict = {"error": exc.message, "request_id": request_id}
        if exc.entity_types:
            body["entity_types"] = exc.entity_types
        headers = {REQUEST_ID_HEADER: request_id, **retry}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="vendorgate"'
        return web.json_response(body, status=exc.status, headers=headers)


def log_line_hook(json_format: Callable[[], bool]):
    """The per-request log line: text, or one JSON object (`log_format: json`); counts, never values."""

    async def hook(flow: Flow, record: AuditRecord) -> None:
        if not json_format():
            await log_line(flow, record)
            return
        log.info("%s", json.dumps({
            "event": "request", "ts": record.ts, "request_id": record.request_id, "caller": record.caller,
            "vendor": record.vendor or None, "method": record.method, "path": record.path, "status": record.status,
            "decision": record.decision, "upstream_status": record.upstream_status, "bytes_sent": record.bytes_sent,
            "bytes_received": record.bytes_received, "findings": record.findings, "actions": record.actions,
            "blocked_types": record.blocked_types, "duration_ms": record.duration_ms, "audit_id": record.id,
        }, sort_keys=True))

    return hook


async def log_line(flow: Flow, record: AuditRecord) -> None:
    log.info("request %s caller=%s vendor=%s %s decision=%s status=%s findings=%s",
             record.request_id, record.caller, record.vendor or "-", record.method,
             record.decision, record.status, sum(record.findings.values()))
