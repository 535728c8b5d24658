"""Background audit upkeep while the gateway runs: a signed checkpoint every
`checkpoint_every_seconds` (when the log grew) with a check against the
checkpoint anchor, and retention at start-up and
then daily. Retention prunes the audit log (on its writer thread), the exposure
ledger (on its writer thread) and spool files of sinks no longer configured."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.audit.anchor import AnchoredAuditLog, CheckpointAnchor, Witness
from gateway.audit.proofs import PruneResult, prune
from gateway.audit.settings import AuditConfig
from gateway.audit.store import AuditLog, AuditLogError

log = logging.getLogger("vendorgate.audit")
PRUNE_INTERVAL_SECONDS = 24 * 3600


def open_audit(data_dir, keys, config: AuditConfig, read_only: bool = False) -> AuditLog:
    """The log, anchored unless `audit.anchor: false`. A writable one is first checked against its anchor:
    a database behind the newest anchored checkpoint (rolled back) or of another log is refused."""
    if not config.anchor:
        return AuditLog.in_data_dir(data_dir, keys, config.dsn, config.checkpoint_every_records, read_only)
    witness = None
    if config.witness_url and not read_only:
        token = os.environ.get(config.witness_token_env) if config.witness_token_env else None
        if config.witness_token_env and not token:
            raise AuditLogError(f"audit.witness_token_env: environment variable {config.witness_token_env} is not set")
        witness = Witness(config.witness_url, token, config.witness_timeout_seconds)
    anchor = CheckpointAnchor(config.anchor_dir or Path(data_dir) / "anchor", witness)
    audit = AnchoredAuditLog.open(data_dir, keys, anchor, config.dsn, config.checkpoint_every_records, read_only)
    if not read_only:
        try:
            audit.check_anchor()
        except Exception:
            audit.db.close()
            raise
    return audit


def retention_cutoff(retention_days: int, now: datetime | None = None) -> str:
    """The ISO UTC time before which records, ledger rows and spools are pruned."""
    return ((now or datetime.now(UTC)) - timedelta(days=retention_days)).isoformat(timespec="milliseconds")


def prune_spools(spool_dir: Path, retention_days: int, sink_names: set[str], now: float | None = None) -> list[str]:
    """Delete spool files of sinks that are no longer configured and untouched for
    `retention_days`. A configured sink's spool is never touched here: it drops
    what it delivered itself (see `sinks.Spool.commit`). Returns the names removed."""
    if not spool_dir.is_dir():
        return []
    oldest = (now or time.time()) - retention_days * 86400
    removed = []
    for path in sorted(spool_dir.glob("*.jsonl")):
        if path.stem in sink_names or path.stat().st_mtime >= oldest:
            continue
        path.unlink()
        path.with_suffix(".offset").unlink(missing_ok=True)
        removed.append(path.stem)
    return removed


def ledger_cutoff(audit: AuditLog, retention_days: int) -> str:
    """Ledger rows are pruned with the records they are bound to (`lineage`): never rows of a record
    still in the log, so `audit verify` finds every kept record's rows."""
    cutoff = retention_cutoff(retention_days)
    kept_from = audit.db.rows("SELECT MIN(ts) FROM audit")[0][0]
    return min(cutoff, kept_from) if kept_from else cutoff


@dataclass
class RetentionResult:
    audit: PruneResult
    ledger_rows: int
    spools: list[str]

    def summary(self, retention_days: int) -> str:
        a = self.audit
        text = (f"pruned {a.pruned} record(s) older than {retention_days} days; {a.pruned_total} pruned in all, "
                f"{a.kept} kept" + (f" ({a.reason})" if a.reason else "")
                + f"; exposure ledger: {self.ledger_rows} row(s) pruned")
        if self.spools:
            text += f"; removed the spools of unconfigured sinks: {', '.join(self.spools)}"
        return text


async def prune_now(audit: AuditLog, retention_days: int, ledger=None, spool_dir: Path | None = None,
                    sink_names: set[str] = frozenset()) -> RetentionResult:
    result = await audit.run(prune, audit, retention_days)
    rows = await ledger.prune(await audit.run(ledger_cutoff, audit, retention_days)) if ledger is not None else 0
    spools = await asyncio.to_thread(prune_spools, spool_dir, retention_days, set(sink_names)) if spool_dir else []
    done = RetentionResult(result, rows, spools)
    if result.pruned or rows or spools:
        log.info("audit retention: %s", done.summary(retention_days))
    return done


async def maintain(audit: AuditLog, config: AuditConfig, ledger=None, spool_dir: Path | None = None,
                   sink_names: set[str] = frozenset()) -> None:
    """Run until cancelled; a failing job is logged and retried next round."""
    next_prune = time.monotonic()
    while True:
        if config.retention_days and time.monotonic() >= next_prune:
            try:
                await prune_now(audit, config.retention_days, ledger, spool_dir, sink_names)
            except Exception:
                log.exception("audit retention pruning failed")
            next_prune = time.monotonic() + PRUNE_INTERVAL_SECONDS
        await asyncio.sleep(config.checkpoint_every_seconds)
        try:
            await audit.checkpoint()
        except Exception:
            log.exception("could not sign an audit checkpoint")
        if isinstance(audit, AnchoredAuditLog):
            try:
                await audit.run(audit.recheck_anchor)
            except Exception:
                log.exception("could not check the audit log against its anchor")
