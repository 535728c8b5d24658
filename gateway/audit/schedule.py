"""Background audit upkeep while the gateway runs: a signed checkpoint every
`checkpoint_every_seconds` (when the log grew), and retention pruning at
start-up and then daily. Both run on the audit writer thread."""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.audit.proofs import prune
from gateway.audit.store import AuditLog
from gateway.config import AuditConfig

log = logging.getLogger("vendorgate.audit")
PRUNE_INTERVAL_SECONDS = 24 * 3600


def open_audit(data_dir, keys, config: AuditConfig) -> AuditLog:
    return AuditLog.in_data_dir(data_dir, keys, config.dsn, config.checkpoint_every_records)


async def prune_now(audit: AuditLog, retention_days: int) -> None:
    result = await audit.run(prune, audit, retention_days)
    if result.pruned:
        log.info("audit retention: pruned %d record(s) older than %d days; %d kept", result.pruned, retention_days, result.kept)


async def maintain(audit: AuditLog, config: AuditConfig) -> None:
    """Run until cancelled; a failing job is logged and retried next round."""
    next_prune = time.monotonic()
    while True:
        if config.retention_days and time.monotonic() >= next_prune:
            try:
                await prune_now(audit, config.retention_days)
            except Exception:
                log.exception("audit retention pruning failed")
            next_prune = time.monotonic() + PRUNE_INTERVAL_SECONDS
        await asyncio.sleep(config.checkpoint_every_seconds)
        try:
            await audit.checkpoint()
        except Exception:
            log.exception("could not sign an audit checkpoint")
