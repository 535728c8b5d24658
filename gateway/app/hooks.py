"""Hooks on the finished flow, run by the audit middleware: binders before the record is
appended (they may add to it), hooks after."""

from __future__ import annotations

import asyncio
import logging

from gateway.audit import AuditRecord
from gateway.audit.ledger import Exposure, ExposureLedger, RequestMeta, exposures_from
from gateway.audit.sinks import SinkHub
from gateway.pipeline.flow import Flow, Replacement

log = logging.getLogger("vendorgate.proxy")


OFF_LOOP = 256  # exposures above which fingerprinting leaves the event loop (about 10 µs each)


def flow_exposures(flow: Flow) -> list[Exposure]:
    """Every value the request carried and the form it left in: as sent (`clear`, `masked`, ...)
    plus `dropped` tasks when the vendor may have received the request; `blocked` when the
    policy refused it. Empty when the vendor could not be reached."""
    if flow.protected is not None:
        if flow.upstream is None or not flow.upstream.maybe_received:
            return []
        return exposures_from(flow.protected.replacements + flow.protected.withheld)
    if flow.refusal is not None and flow.refusal.outcome == "blocked" and flow.vendor:
        return exposures_from(Replacement(t, "block", v, "") for t, v in flow.refusal.withheld)
    return []


def ledger_binder(ledger: ExposureLedger):
    """Before the append: fingerprint the request's exposures once (`flow.lineage`), and put the
    digest of those rows into the record, so `audit verify` (and a proof of the record) covers them."""

    async def bind(flow: Flow, record: AuditRecord) -> None:
        exposures = flow_exposures(flow)
        if not exposures:
            return
        meta = RequestMeta(record.ts, record.request_id, record.id, record.caller, record.vendor,
                           record.policy_digest)
        try:
            lineage = (await asyncio.to_thread(ledger.lineage, meta, exposures) if len(exposures) > OFF_LOOP
                       else ledger.lineage(meta, exposures))
        except Exception as exc:  # the record must still be written: without lineage, and loudly
            log.error("exposure ledger rows for request %s could not be made: %s", record.request_id,
                      type(exc).__name__)
            return
        flow.lineage = lineage
        record.lineage = lineage.digest

    return bind


def ledger_hook(ledger: ExposureLedger):
    """After the append: the rows themselves, on the ledger's writer thread."""

    async def hook(flow: Flow, record: AuditRecord) -> None:
        if flow.lineage is None or flow.lineage.meta.record_id != record.id:
            return
        try:
            await ledger.add(flow.lineage)
        except Exception as exc:  # the request already went out; losing its ledger rows must be loud
            log.error("exposure ledger write failed for request %s: %s", record.request_id, type(exc).__name__)

    return hook


def sinks_hook(sinks: SinkHub):
    async def hook(flow: Flow, record: AuditRecord) -> None:
        await sinks.publish(record.to_dict())

    return hook
