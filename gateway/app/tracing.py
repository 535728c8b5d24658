"""OpenTelemetry traces (`tracing: {otlp_endpoint, service_name}`; off without it).

One SERVER span per vendor request, `vendorgate.request`, with a child span per stage
that ran: read, walk, detect, decide, transform, store (timed by the pipeline's
`StageClock`, `gateway/pipeline/timing.py`), forward (until the vendor's response
headers) and relay (the response back to the caller). The spans are built when the
request has finished, from the `Flow` and the stage times, so the request path carries
no tracing calls. A caller's W3C `traceparent` is honoured as the parent.

Attributes say what happened, never what was in the request: vendor and caller
names (from the config and the keys file), method, status, decision, the audit's
path (`<hidden>` segments), request id, counts, entity types and actions — the same
fields the audit record keeps. Spans leave through the SDK's batch processor, on its
own thread, by OTLP over HTTP; an unreachable collector costs log lines, not requests.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway import __version__
from gateway.app.middleware import AUDITED_ROUTES, FLOW, audit_record
from gateway.config import TracingConfig
from gateway.pipeline.flow import Flow
from gateway.pipeline.timing import CLOCK, StageClock

log = logging.getLogger("vendorgate.tracing")
_PROPAGATOR = TraceContextTextMapPropagator()


class Tracing:
    """The gateway's own tracer provider (never the global one: several apps may share a process).
    `exporter` replaces OTLP (tests pass the SDK's in-memory exporter; its spans are exported at once)."""

    def __init__(self, config: TracingConfig, exporter: SpanExporter | None = None):
        resource = Resource.create({"service.name": config.service_name, "service.version": __version__})
        self.provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)))
        if exporter is None:
            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otlp_endpoint)))
        else:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("vendorgate")

    def shutdown(self) -> None:
        """Flush what is queued (blocking: run it off the event loop)."""
        self.provider.shutdown()

    def middleware(self):
        """Outermost: it sees the request before the audit middleware makes its `Flow`, and after
        the audit record and the hooks are done."""

        @web.middleware
        async def middleware(request: web.Request, handler) -> web.StreamResponse:
            if request.match_info.route.name not in AUDITED_ROUTES:
                return await handler(request)
            clock = StageClock()
            token = CLOCK.set(clock)
            wall, perf = time.time_ns(), time.perf_counter()
            try:
                return await handler(request)
            finally:
                CLOCK.reset(token)
                flow = request.get(FLOW)
                if flow is not None:
                    try:
                        self.emit(request, flow, clock, wall, perf)
                    except Exception:  # tracing never fails a request that is already done
                        log.exception("could not record the request's trace")

        return middleware

    def emit(self, request: web.Request, flow: Flow, clock: StageClock, wall: int, perf: float) -> None:
        def ns(t: float) -> int:
            return wall + int((t - perf) * 1e9)

        end = time.perf_counter()
        parent = _PROPAGATOR.extract({k.lower(): v for k, v in request.headers.items() if k.lower() == "traceparent"})
        root = self.tracer.start_span("vendorgate.request", context=parent, kind=SpanKind.SERVER, start_time=wall,
                                      attributes=request_attributes(flow))
        if flow.decision == "error" or flow.status >= 500:
            root.set_status(Status(StatusCode.ERROR, flow.decision))
        inside = set_span_in_context(root)
        for timed in clock.stages:
            span = self.tracer.start_span(timed.name, context=inside, start_time=ns(timed.start),
                                          attributes={f"vendorgate.{k}": v for k, v in timed.attributes.items()})
            span.end(end_time=ns(timed.end or end))
        if flow.forwarded_at is not None:
            answered = flow.forwarded_at + flow.upstream_seconds
            forward = self.tracer.start_span("forward", context=inside, kind=SpanKind.CLIENT,
                                             start_time=ns(flow.forwarded_at),
                                             attributes=_some({"http.response.status_code":
                                                               flow.upstream.status if flow.upstream else None,
                                                               "vendorgate.bytes_sent":
                                                               flow.upstream.bytes_sent if flow.upstream else None}))
            forward.end(end_time=ns(answered))
            if flow.relayed is not None:
                relay = self.tracer.start_span("relay", context=inside, start_time=ns(answered),
                                               attributes={"vendorgate.bytes_received": flow.relayed.bytes_received,
                                                           "vendorgate.restored": flow.relayed.restored})
                relay.end(end_time=ns(end))
        root.end(end_time=ns(end))


def request_attributes(flow: Flow) -> dict:
    """What the audit record says about the request, as span attributes: names, counts, types."""
    record = audit_record(flow)
    attributes = {
        "http.request.method": record.method,
        "http.response.status_code": record.status,
        "vendorgate.vendor": record.vendor or "-",
        "vendorgate.caller": record.caller,
        "vendorgate.decision": record.decision,
        "vendorgate.path": record.path,
        "vendorgate.request_id": record.request_id,
        "vendorgate.audit_id": record.id,
        "vendorgate.findings": sum(record.findings.values()),
        "vendorgate.entity_types": sorted(record.findings),
        "vendorgate.actions": sorted(f"{a}={n}" for a, n in record.actions.items()),
        "vendorgate.blocked_types": sorted(record.blocked_types),
        "vendorgate.upstream_status": record.upstream_status,
        "vendorgate.bytes_sent": record.bytes_sent,
        "vendorgate.bytes_received": record.bytes_received,
        "vendorgate.restored": record.restored,
    }
    attributes.update({f"vendorgate.findings.{t}": n for t, n in record.findings.items()})
    return _some(attributes)


def _some(attributes: dict) -> dict:
    return {k: v for k, v in attributes.items() if v is not None}
