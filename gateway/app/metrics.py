"""Prometheus metrics, from the finished flow (a hook run by the audit middleware).

Every label value is bounded and never sensitive: vendor names come from the
config (an unknown vendor is `-`), caller names from the keys file (or
`anonymous`), entity types and actions from the policy, status codes and
decisions from the gateway. Nothing a caller typed becomes a label.

`serve --workers N` runs prometheus-client's multiprocess mode: the parent sets
PROMETHEUS_MULTIPROC_DIR for its HTTP processes, every value lives in a file
there, and `exposition` aggregates them all (`MultiProcessCollector`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.audit import AuditRecord
from gateway.pipeline.flow import Flow

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
AUDIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """Set (by `serve --workers N`) before prometheus-client is imported in the HTTP processes."""
    return os.environ.get(MULTIPROC_ENV) or None


def aggregate(directory: str) -> bytes:
    """Every process's values in `directory`, summed (gauges: the live processes' sum)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


def process_exited(directory: str, pid: int) -> None:
    """A dead process's gauges stop counting; its counters and histograms stay in the totals."""
    multiprocess.mark_process_dead(pid, path=directory)


class GatewayMetrics:
    """One registry per gateway app (tests run several in one process)."""

    def __init__(self, vendors: Callable[[], object], workers: Callable[[], tuple[int, int]]):
        self.registry = r = CollectorRegistry(auto_describe=True)
        self._vendors = vendors
        self.requests = Counter("vendorgate_requests", "Requests by vendor, caller, status and decision",
                                ["vendor", "caller", "status", "decision"], registry=r)
        self.total = Histogram("vendorgate_request_duration_seconds", "Whole request, as the caller saw it",
                               ["vendor"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream = Histogram("vendorgate_upstream_duration_seconds",
                                  "From sending to the vendor until its response headers arrived",
                                  ["vendor"], buckets=LATENCY_BUCKETS, registry=r)
        self.gateway = Histogram("vendorgate_gateway_duration_seconds",
                                 "The gateway's share: total minus the vendor's time",
                                 ["vendor"], buckets=LATENCY_BUCKETS, registry=r)
        self.findings = Counter("vendorgate_findings", "Findings by entity type (detected, before merging)",
                                ["vendor", "entity_type"], registry=r)
        self.actions = Counter("vendorgate_actions", "Spans replaced (or allowed) by action; `block` per blocked "
                               "request's findings", ["vendor", "action"], registry=r)
        self.blocks = Counter("vendorgate_blocked_requests", "Requests blocked by policy, per blocking entity type",
                              ["vendor", "entity_type"], registry=r)
        self.upstream_errors = Counter("vendorgate_upstream_errors",
                                       "Vendor unreachable, timed out, or answering 5xx",
                                       ["vendor", "kind"], registry=r)
        self.audit_append = Histogram("vendorgate_audit_append_seconds", "Time to append one audit record",
                                      buckets=AUDIT_BUCKETS, registry=r)
        self.reloads = Counter("vendorgate_config_reloads", "SIGHUP reloads by result", ["result"], registry=r)
        self.canary_leaked = Gauge("vendorgate_canary_leaked_types",
                                   "Entity types the route's latest canary run would have sent in clear "
                                   "against its policy (0: all protected)", ["vendor"], registry=r,
                                   multiprocess_mode="livemax")
        self.canary_runs = Counter("vendorgate_canary_runs", "Canary runs per route by result (ok, leaked)",
                                   ["vendor", "result"], registry=r)
        self.multiprocess_dir = multiprocess_dir()
        self._workers = workers
        self._pool = pool = Gauge("vendorgate_detection_workers", "Detection worker processes", ["state"], registry=r,
                                  multiprocess_mode="livesum")
        if self.multiprocess_dir is None:
            pool.labels("configured").set_function(lambda: workers()[0])
            pool.labels("alive").set_function(lambda: workers()[1])
        else:
            self.refresh()

    def _vendor(self, name: str) -> str:
        return name if name and name in self._vendors() else "-"

    async def hook(self, flow: Flow, record: AuditRecord) -> None:
        vendor = self._vendor(record.vendor)
        self.requests.labels(vendor, record.caller, str(record.status), record.decision).inc()
        total = time.perf_counter() - flow.started
        self.total.labels(vendor).observe(total)
        if flow.forwarded_at is not None:
            self.upstream.labels(vendor).observe(flow.upstream_seconds)
            self.gateway.labels(vendor).observe(max(0.0, total - flow.upstream_seconds))
        else:
            self.gateway.labels(vendor).observe(total)
        self.audit_append.observe(flow.audit_append_seconds)
        for entity_type, n in record.findings.items():
            self.findings.labels(vendor, entity_type).inc(n)
        for action, n in record.actions.items():
            self.actions.labels(vendor, action).inc(n)
        for entity_type in record.blocked_types:
            self.blocks.labels(vendor, entity_type).inc()
            self.actions.labels(vendor, "block").inc(record.findings.get(entity_type, 1))
        if record.decision == "blocked" and not record.blocked_types:
            self.blocks.labels(vendor, "FIELD_RULE").inc()
        if flow.upstream is not None and not flow.upstream.reached:
            status = flow.refusal.status if flow.refusal is not None else 502
            self.upstream_errors.labels(vendor, "timeout" if status == 504 else "unreachable").inc()
        elif record.upstream_status is not None and record.upstream_status >= 500:
            self.upstream_errors.labels(vendor, "5xx").inc()

    def canary(self, result) -> None:
        """One route's canary result (`gateway.app.canary.RouteResult`): types are counted, never named here."""
        vendor = self._vendor(result.vendor)
        self.canary_leaked.labels(vendor).set(len(result.leaked))
        self.canary_runs.labels(vendor, "ok" if result.ok else "leaked").inc()

    def refresh(self) -> None:
        """Multiprocess mode: gauges are files, not callbacks, so their values are written here."""
        configured, alive = self._workers()
        self._pool.labels("configured").set(configured)
        self._pool.labels("alive").set(alive)

    async def keep_fresh(self, every: float = 1.0) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(every)

    def exposition(self) -> bytes:
        if self.multiprocess_dir is not None:
            return aggregate(self.multiprocess_dir)
        return generate_latest(self.registry)
