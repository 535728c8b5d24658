"""Hooks on the finished flow, run by the audit middleware: binders before the record is
appended (they may add to it), hooks after."""

from __future__ import annotations

import logging

from gateway.audit import AuditRecord
from gateway.audit.ledger import ExposureLedger, Lineage, RequestMeta, exposures_from
from gateway.audit.sinks import SinkHub
from gateway.pipeline.flow import Flow, Replacement

log = logging.getLogger("vendorgate.proxy")


def flow_lineage(ledger: ExposureLedger, flow: Flow, record: AuditRecord) -> Lineage | None:
    """Every value the request carried and the form it left in: as sent (`clear`, `masked`, ...)
    plus `dropped` tasks when the vendor may have received the request; `blocked` when the
    policy refused it. None when nothing was detected or the vendor could not be reached."""
    meta = RequestMeta(record.ts, record.request_id, record.id, record.caller, record.vendor, record.policy_digest)
    if flow.protected is not None:
        if flow.upstream is None or not flow.upstream.maybe_received:
            return None
        exposures = exposures_from(flow.protected.replacements + flow.protected.withheld)
    elif flow.refusal is not None and flow.refusal.outcome == "blocked" and flow.vendor:
        exposures = exposures_from(Replacement(t, "block", v, "") for t, v in flow.refusal.withheld)
    else:
        return None
    lineage = ledger.lineage(meta, exposures)
    return lineage if lineage.rows else None


def ledger_binder(ledger: ExposureLedger):
    """Before the append: the record carries the digest of its ledger rows, so `audit verify`
    (and an inclusion proof of the record) covers them."""

    def bind(flow: Flow, record: AuditRecord) -> None:
        lineage = flow_lineage(ledger, flow, record)
        if lineage is not None:
            record.lineage = lineage.digest

    return bind


def ledger_hook(ledger: ExposureLedger):
    """After the append: the rows themselves, on the ledger's writer thread."""

    async def hook(flow: Flow, record: AuditRecord) -> None:
        lineage = flow_lineage(ledger, flow, record)
        if lineage is None:
            return
        try:
            await ledger.add(lineage)
        except Exception as exc:  # the request already went out; losing its ledger rows must be loud
            log.error("exposure ledger write failed for request %s: %s", record.request_id, type(exc).__name__)

    return hook


def sinks_hook(sinks: SinkHub):
    async def hook(flow: Flow, record: AuditRecord) -> None:
        await sinks.publish(record.to_dict())

    return hook
