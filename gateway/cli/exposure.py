"""`vendorgate exposure`: where each vendor stands against its exposure budgets."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.config import Settings, load_config


def register(sub) -> None:
    s = sub.add_parser("exposure", help="where each vendor stands against its exposure budgets", description=(
        "Distinct values each vendor received in clear in the current window, against the budgets in its policy."))
    s.add_argument("--vendor", help="only this vendor")
    s.add_argument("--config", help="config YAML (default: the shipped config)")
    s.add_argument("--data-dir", help="data dir (default: the config's, or ./.vendorgate/)")
    s.set_defaults(func=show)


def show(args) -> int:
    return exposure(load_config(args.config, Path(args.data_dir) if args.data_dir else None), args.vendor)


def exposure(settings: Settings, vendor: str | None) -> int:
    from gateway.keys import LocalKeyProvider
    from gateway.pipeline.budget import Budgets
    from gateway.pipeline.budget_store import open_store

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


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds % 60:02d}s"
