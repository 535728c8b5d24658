"""What wraps every vendor request, the way Starlette middleware composes:

- `audit`: creates the request's `Flow`, and in `finally` — whatever happened,
  the caller hung up included — turns it into one audit record, appends it, and
  runs the finished-flow hooks (exposure ledger, SIEM sinks, the log line).
  A streamed response is handed back before its end, so the record is written
  before the caller sees EOF.
- `refusals`: the one handler for `Refusal`: status, JSON body, request id.

Auth and metrics plug in here as further middleware.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from gateway.app.headers import CALLER_HEADER
from gateway.audit import AuditLog, AuditRecord
from gateway.pipeline.flow import Flow
from gateway.refusal import Refusal
from gateway.response.relay import REQUEST_ID_HEADER

log = logging.getLogger("vendorgate.proxy")
FLOW = web.RequestKey("vendorgate.flow", Flow)
# Set by the handler once the vendor is known: (refusal, request id) -> (body, headers) in the vendor's format.
ERROR_SHAPE = web.RequestKey("vendorgate.error_shape", object)
VENDOR_ROUTE = "vendor"
_CALLER = re.compile(r"[^A-Za-z0-9_.:@/-]")
_PLAIN_SEGMENT = re.compile(r"(?:v\d{1,2}|[A-Za-z_.-]{0,40})")

Hook = Callable[[Flow, AuditRecord], Awaitable[None]]


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
        unscanned_parts=list(protected.unscanned_parts) if protected else [],
    )


def new_flow(request: web.Request) -> Flow:
    return Flow(method=request.method,
                request_id=request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex,
                caller=_CALLER.sub("_", request.headers.get(CALLER_HEADER, "anonymous"))[:128])


def audit(audit_log: Callable[[], AuditLog], hooks: Callable[[], Sequence[Hook]]):
    """`audit_log` and `hooks` are looked up per request: they open with the app's lifecycle."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if request.match_info.route.name != VENDOR_ROUTE:
            return await handler(request)
        flow = request[FLOW] = new_flow(request)
        try:
            response = await handler(request)
            flow.status = response.status
            return response
        finally:
            record = audit_record(flow)
            await audit_log().append(record)
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
        shape = request.get(ERROR_SHAPE)
        if shape is not None:
            body, extra = shape(exc, request_id)
            return web.json_response(body, status=exc.status, headers={REQUEST_ID_HEADER: request_id, **extra})
        body: dict = {"error": exc.message, "request_id": request_id}
        if exc.entity_types:
            body["entity_types"] = exc.entity_types
        return web.json_response(body, status=exc.status, headers={REQUEST_ID_HEADER: request_id})


async def log_line(flow: Flow, record: AuditRecord) -> None:
    log.info("request %s caller=%s vendor=%s %s decision=%s status=%s findings=%s",
             record.request_id, record.caller, record.vendor or "-", record.method,
             record.decision, record.status, sum(record.findings.values()))
