"""Audit log costs: append with and without checkpoints, verify, prove, prune; and the gateway's
own path, `await log.append(record)` from many requests at once (group commit).

    python bench/audit_log.py [N]        (default 100000 records, SQLite in a temp dir)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import make_record  # noqa: E402

from gateway.audit import AuditLog, verify_log  # noqa: E402
from gateway.audit.proofs import prove, prune  # noqa: E402
from gateway.keys import LocalKeyProvider  # noqa: E402


def timed(label: str, func, count: int = 1):
    started = time.perf_counter()
    result = func()
    elapsed = time.perf_counter() - started
    per = f"  ({elapsed / count * 1e6:.0f} µs each)" if count > 1 else ""
    print(f"{label:<48} {elapsed:8.2f} s{per}")
    return result


async def concurrent_appends(log: AuditLog, records: list, concurrency: int) -> None:
    """`concurrency` requests at a time, each awaiting its own record as the audit middleware does."""
    it = iter(records)

    async def request() -> None:
        for record in it:
            await log.append(record)

    await asyncio.gather(*(request() for _ in range(concurrency)))


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        records = [make_record(f"svc-{i % 50}", age_days=(n - i) / 100) for i in range(n)]
        for concurrency in (1, 16, 64):
            d = Path(tmp) / f"async{concurrency}"
            log = AuditLog.in_data_dir(d, LocalKeyProvider.in_data_dir(d), checkpoint_every=1000)
            k = min(n, 5000)
            timed(f"await append() x {k}, {concurrency} at a time", lambda log=log, k=k, c=concurrency:
                  asyncio.run(concurrent_appends(log, [make_record("svc") for _ in range(k)], c)), k)
            assert verify_log(log).ok
        for every in (10**9, 1000, 1):
            d = Path(tmp) / f"every{every}"
            log = AuditLog.in_data_dir(d, LocalKeyProvider.in_data_dir(d), checkpoint_every=every)
            k = min(n, 5000)
            label = "no checkpoints" if every == 10**9 else f"a checkpoint every {every}"
            timed(f"append {k} records, {label}", lambda log=log, k=k: [log.append_sync(r) for r in records[:k]], k)
        d = Path(tmp) / "big"
        log = AuditLog.in_data_dir(d, LocalKeyProvider.in_data_dir(d), checkpoint_every=1000)
        timed(f"append {n} records, a checkpoint every 1000", lambda: [log.append_sync(r) for r in records], n)
        result = timed(f"verify {n} records", lambda: verify_log(log))
        assert result.ok, result.problem
        print(f"  -> {result.checked} records, {result.checkpoints} checkpoints")
        timed("prove one record (reads every leaf)", lambda: prove(log, records[n // 2].id))
        pr = timed("prune the older half (retention)", lambda: prune(log, retention_days=int(n / 200)))
        print(f"  -> pruned {pr.pruned}, kept {pr.kept}")
        result = timed("verify after pruning", lambda: verify_log(log))
        assert result.ok, result.problem


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
