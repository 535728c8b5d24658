"""Helpers for audit tests: make records, and a writer process for the
several-gateways-on-one-PostgreSQL-log test (importable by `spawn` children)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gateway.audit import AuditLog, AuditRecord
from gateway.keys import LocalKeyProvider


def make_record(caller: str = "svc", age_days: float = 0.0, vendor: str = "acme") -> AuditRecord:
    ts = (datetime.now(timezone.utc) - timedelta(days=age_days)).isoformat(timespec="milliseconds")
    return AuditRecord(id=uuid.uuid4().hex, ts=ts, request_id=uuid.uuid4().hex, caller=caller, vendor=vendor,
                       method="POST", path="/v1/items", decision="forwarded", status=200, upstream_status=200,
                       bytes_sent=42, findings={"EMAIL_ADDRESS": 1}, actions={"mask": 1}, duration_ms=1.25)


def write_records(dsn: str, data_dir: str, master_key: str, caller: str, n: int, barrier) -> None:
    """One 'gateway instance': its own keys object (same master key) and connection, n concurrent appends."""
    keys = LocalKeyProvider(Path(data_dir) / "keys.json", env={"VENDORGATE_MASTER_KEY": master_key})

    async def main() -> None:
        log = AuditLog.in_data_dir(Path(data_dir), keys, dsn, checkpoint_every=7)
        barrier.wait()
        await asyncio.gather(*(log.append(make_record(f"{caller}-{i}")) for i in range(n)))
        await log.close()

    asyncio.run(main())
