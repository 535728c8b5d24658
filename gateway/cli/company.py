"""What `vendorgate fingerprint ...` and `vendorgate exposure` print."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.config import Settings
from gateway.detection.fingerprint.location import IndexLocation


def _open_index(where: IndexLocation, k: int | None = None, t: int | None = None):
    from gateway.detection.fingerprint import FingerprintIndex
    from gateway.detection.fingerprint import Settings as IndexSettings
    from gateway.keys import LocalKeyProvider

    wanted = None
    if k is not None or t is not None:
        default = IndexSettings()
        wanted = IndexSettings(k=k or default.k, t=t or default.t)
    keys = LocalKeyProvider.in_data_dir(Path(where.data_dir))  # before the store: a fresh data dir gets its key
    return FingerprintIndex(where.open_store(), keys, wanted)


def _guarantee(index) -> str:
    s = index.settings
    return (f"k={s.k} t={s.t}: any shared passage of {s.t}+ normalised characters is found; "
            f"nothing shorter than {s.k} ever is")


def fingerprint_add(where: IndexLocation, label: str, paths: list[str], k: int | None, t: int | None) -> int:
    from gateway.detection.fingerprint import scan_paths
    from gateway.detection.fingerprint.sources import read_text

    try:
        index = _open_index(where, k, t)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    scan = scan_paths([Path(p) for p in paths])
    for path in scan.files:
        info = index.add(label, path.resolve(), read_text(path))
        print(f"indexed  {path}  ({info.mode}, {info.normalised_length} chars, {info.n_fingerprints} fingerprints)")
    for skipped in scan.skipped:
        print(f"skipped  {skipped.path}: {skipped.reason}")
    index.store.compact()
    print(f"{len(scan.files)} file(s) indexed under label {label!r}, {len(scan.skipped)} skipped; "
          f"index in {where.describe()}; {_guarantee(index)}")
    return 0 if scan.files else 1


def _existing_index(where: IndexLocation):
    """The index, or None (after saying so) when nothing was ever indexed there."""
    store = where.open_existing()
    if store is None:
        print(f"no fingerprint index in {where.describe()} (use `vendorgate fingerprint add`, --data-dir or --config)")
        return None
    from gateway.detection.fingerprint import FingerprintIndex
    from gateway.keys import LocalKeyProvider

    return FingerprintIndex(store, LocalKeyProvider.in_data_dir(Path(where.data_dir)))


def fingerprint_list(where: IndexLocation) -> int:
    index = _existing_index(where)
    if index is None:
        return 0
    docs = index.list()
    print(f"{'ID':>5}  {'LABEL':<20} {'MODE':<6} {'CHARS':>9} {'FPRINTS':>8}  PATH")
    for d in docs:
        print(f"{d.doc_id:>5}  {d.label[:20]:<20} {d.mode:<6} {d.normalised_length:>9} {d.n_fingerprints:>8}  {d.path}")
    labels = sorted({d.label for d in docs})
    print(f"{len(docs)} document(s) under {len(labels)} label(s); {_guarantee(index)}")
    return 0


def fingerprint_remove(where: IndexLocation, label: str | None, doc_id: int | None) -> int:
    index = _existing_index(where)
    if index is None:
        return 1
    removed = index.remove(doc_id if doc_id is not None else label)
    index.store.compact()
    what = f"id {doc_id}" if doc_id is not None else f"label {label!r}"
    print(f"removed {removed} document(s) with {what}")
    return 0 if removed else 1


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds % 60:02d}s"


def exposure(settings: Settings, vendor: str | None) -> int:
    from gateway.keys import LocalKeyProvider
    from gateway.pipeline.budget import Budgets, open_store

    vendors = [vendor] if vendor else sorted(settings.policies)
    unknown = [v for v in vendors if v not in settings.policies]
    if unknown:
        print(f"unknown vendor {unknown[0]!r}; configured: {', '.join(sorted(settings.policies))}", file=sys.stderr)
        return 1
    if not any(settings.policies[v].budgets for v in vendors):
        print(f"no exposure budgets in the policies of: {', '.join(vendors)}")
        return 0

    async def collect():
        budgets = Budgets(open_store(settings.config.budget_store, settings.data_dir),
                          LocalKeyProvider.in_data_dir(settings.data_dir))
        try:
            return [s for v in vendors for s in await budgets.standing(v, settings.policies[v])]
        finally:
            await budgets.close()

    rows = asyncio.run(collect())
    print(f"{'VENDOR':<12} {'ENTITY':<22} {'USED':>7} / {'MAX':<7} {'SHARE':<22} {'WINDOW':>6} {'RESETS IN':>9}  PAST THE CAP")
    for s in rows:
        share = s.used / s.budget.max_distinct
        bar = "#" * round(20 * min(share, 1.0))
        flag = "  FULL" if s.used >= s.budget.max_distinct else ""
        print(f"{s.vendor:<12} {s.budget.entity:<22} {s.used:>7} / {s.budget.max_distinct:<7} "
              f"[{bar:<20}] {s.budget.window:>6} {_duration(s.resets_in):>9}  {s.budget.over}{flag}")
    store = settings.config.budget_store
    print(f"counted in {'redis ' + store.redis if store else settings.data_dir}; distinct values in clear per window")
    return 0
