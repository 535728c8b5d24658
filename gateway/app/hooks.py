"""Hooks on the finished flow, run by the audit middleware after the record is appended."""

from __future__ import annotations

import logging

from gateway.audit import AuditRecord
from gateway.audit.ledger import ExposureLedger, RequestMeta, exposures_from
from gateway.audit.sinks import SinkHub
from gateway.pipeline.flow import Flow

log = logging.getLogger("vendorgate.proxy")


def ledger_hook(ledger: ExposureLedger):
    """Ledger rows for what the vendor may have received (none when it could not be reached)."""

    async def hook(flow: Flow, record: AuditRecord) -> None:
        if flow.protected is None or flow.upstream is None or not flow.upstream.maybe_received:
            return
        meta = RequestMeta(record.ts, record.request_id, record.id, record.caller, record.vendor)
        try:
            await ledger.add(meta, exposures_from(flow.protected.replacements))
        except Exception as exc:  # the request already went out; losing its ledger rows must be loud
            log.error("exposure ledger write failed for request %s: %s", record.request_id, type(exc).__name__)

    return hook


def sinks_hook(sinks: SinkHub):
    async def hook(flow: Flow, record: AuditRecord) -> None:
        await sinks.publish(record.to_dict())

    return hook
