"""OpenTelemetry traces (issue 12, "See what it does"): one span per request, a child per stage,
attributes without values. Real gateway requests through a real recording vendor; spans caught by
the SDK's in-memory exporter, and once by the real OTLP/HTTP exporter posting to a local collector."""

from __future__ import annotations

import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import CARD, EMAIL, SENSITIVE, SSN, Upstream, free_port, payload, post

STAGES = ["read", "walk", "detect", "decide", "transform", "store", "forward", "relay"]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def tracing(endpoint: str = "http://127.0.0.1:9/v1/traces") -> str:
    return f"tracing: {{otlp_endpoint: '{endpoint}', service_name: vg-test}}"


def every_attribute_value(spans) -> str:
    return "\n".join(f"{k}={v!r}" for s in spans for k, v in {**s.attributes, **s.resource.attributes}.items())


def assert_no_raw_value(text: str) -> None:
    for value in [*SENSITIVE, "john.smith", "536228841", "4111111111111111", "8841"]:
        assert value not in text, value


async def test_a_request_is_one_span_with_a_child_per_stage_and_no_value_in_any_attribute(
        upstream, write_config, start_gateway):
    spans = InMemorySpanExporter()
    gw = await start_gateway(write_config(upstream.url, top_extra=tracing()), span_exporter=spans)
    r = await post(gw, f"/acme/v1/customers/{EMAIL}?customer={EMAIL}", json=payload(),
                   headers={"traceparent": TRACEPARENT, "X-Request-Id": "req-4bf92f3577b34da6"})
    assert r.status_code == 200
    assert EMAIL.encode() not in upstream.received[0].body and SSN.encode() not in upstream.received[0].body
    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.name == "vendorgate.request"]
    children = [s for s in finished if s is not root]
    assert sorted({s.name for s in children}) == sorted(STAGES)
    assert all(s.parent.span_id == root.context.span_id for s in children)
    assert all(root.start_time <= s.start_time <= s.end_time <= root.end_time for s in children)
    # The caller's trace is the parent; the request is the gateway's server span in it.
    assert format(root.context.trace_id, "032x") == TRACEPARENT.split("-")[1]
    assert format(root.parent.span_id, "016x") == TRACEPARENT.split("-")[2]
    a = root.attributes
    assert a["vendorgate.vendor"] == "acme" and a["vendorgate.caller"] == "anonymous"
    assert a["vendorgate.decision"] == "forwarded" and a["http.response.status_code"] == 200
    assert a["vendorgate.request_id"] == "req-4bf92f3577b34da6"
    assert {"EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD"} <= set(a["vendorgate.entity_types"])
    assert a["vendorgate.findings"] >= 4 and a["vendorgate.findings.EMAIL_ADDRESS"] >= 2
    assert any(x.startswith("mask=") for x in a["vendorgate.actions"])
    assert root.resource.attributes["service.name"] == "vg-test"
    (detect,) = [s for s in children if s.name == "detect"]
    assert detect.attributes["vendorgate.texts"] >= 3
    (forward,) = [s for s in children if s.name == "forward"]
    assert forward.attributes["http.response.status_code"] == 200
    assert "<hidden>" in a["vendorgate.path"]
    assert_no_raw_value(every_attribute_value(finished))


async def test_a_blocked_request_is_traced_without_forward_and_without_the_value(upstream, write_config, start_gateway):
    spans = InMemorySpanExporter()
    policy = "name: t\ndetect: [US_SSN]\ndefault_action: redact\nactions:\n  US_SSN: block\n"
    gw = await start_gateway(write_config(upstream.url, policy=policy, top_extra=tracing()), span_exporter=spans)
    r = await post(gw, "/acme/v1/items", json={"note": f"my SSN is {SSN}"})
    assert r.status_code == 403 and upstream.received == []
    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.name == "vendorgate.request"]
    assert root.attributes["vendorgate.decision"] == "blocked"
    assert root.attributes["vendorgate.blocked_types"] == ("US_SSN",)
    names = {s.name for s in finished if s is not root}
    assert {"read", "walk", "detect", "decide"} <= names and not names & {"forward", "relay", "transform"}
    assert_no_raw_value(every_attribute_value(finished))


async def test_tracing_is_off_without_its_section(upstream, write_config, start_gateway):
    spans = InMemorySpanExporter()
    gw = await start_gateway(write_config(upstream.url), span_exporter=spans)
    assert (await post(gw, "/acme/v1/items", json={"a": 1})).status_code == 200
    assert spans.get_finished_spans() == ()


async def test_spans_reach_an_otlp_collector_over_http_and_carry_no_value(upstream, write_config, start_gateway):
    """The real exporter (OTLP protobuf over HTTP), flushed when the gateway stops."""
    collector = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", collector._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        gw = await start_gateway(write_config(upstream.url, top_extra=tracing(f"http://127.0.0.1:{port}/v1/traces")))
        assert (await post(gw, "/acme/v1/items", json=payload())).status_code == 200
        await gw.runner.cleanup()  # stop: the batch processor flushes
        exported = b"".join(r.body for r in collector.received if r.path == "/v1/traces")
        assert collector.received and collector.received[0].headers["Content-Type"] == "application/x-protobuf"
        for stage in [b"vendorgate.request", *(s.encode() for s in STAGES)]:
            assert stage in exported
        assert b"EMAIL_ADDRESS" in exported
        for value in [*SENSITIVE, "john.smith", CARD.replace(" ", "")]:
            assert value.encode() not in exported, value
    finally:
        await runner.cleanup()


def test_tracing_config_is_validated(tmp_path, upstream, write_config):
    from gateway.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="otlp_endpoint"):
        load_config(write_config(upstream.url, top_extra="tracing: {otlp_endpoint: 'grpc://collector:4317'}"))
    with pytest.raises(ConfigError, match="sample_ratio"):
        load_config(write_config(upstream.url, top_extra=tracing().replace("}", ", sample_ratio: 2}")))
