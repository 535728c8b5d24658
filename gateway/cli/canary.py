"""`vendorgate canary`: send synthetic values of every type through each route's
real stages (nothing reaches a vendor) and record a signed `canary` audit record
per route; exit 1 when any value would have leaked."""

from __future__ import annotations

import asyncio
import sys

from gateway.app.canary import RouteResult, run_canaries
from gateway.audit.schedule import open_audit
from gateway.config import load_config
from gateway.detection.engine import DetectionEngine
from gateway.keys import LocalKeyProvider
from gateway.pipeline.protect import Services


def render(results: list[RouteResult]) -> str:
    lines = []
    for r in results:
        state = "ok" if r.ok else "LEAKED"
        lines.append(f"{r.vendor:<16} {state:<7} sent {len(r.sent)} types; protected {len(r.protected)}"
                     + (f"; in clear by policy: {', '.join(r.allowed)}" if r.allowed else "")
                     + (f"; leaked: {', '.join(r.leaked)}" if r.leaked else ""))
    return "\n".join(lines)


async def canary(config: str | None, vendors: list[str] | None, record: bool, workers: int) -> int:
    settings = load_config(config)
    unknown = sorted(set(vendors or ()) - set(settings.config.vendors))
    if unknown:
        print(f"error: unknown vendor {', '.join(unknown)}; configured: {', '.join(sorted(settings.config.vendors))}",
              file=sys.stderr)
        return 2
    keys = LocalKeyProvider.in_data_dir(settings.data_dir)
    engine = DetectionEngine(workers=workers, timeout_seconds=600)
    await engine.start()
    audit = await asyncio.to_thread(open_audit, settings.data_dir, keys, settings.config.audit) if record else None
    try:
        results = await run_canaries(settings, Services(engine, keys, data_dir=settings.data_dir,
                                                        fingerprints=settings.config.fingerprints),
                                     audit, vendors)
    finally:
        if audit is not None:
            await audit.close()
        await engine.close()
    print(render(results))
    return 0 if all(r.ok for r in results) else 1


def cmd_canary(args) -> int:
    return asyncio.run(canary(args.config, args.vendor or None, not args.no_record, args.workers))


def register(sub) -> None:
    s = sub.add_parser("canary", help="prove each route's protection is live with synthetic values; exit 1 on a leak",
                       description=__doc__)
    s.add_argument("--config", help="config YAML (default: the shipped config)")
    s.add_argument("--vendor", action="append", help="only this route (repeatable)")
    s.add_argument("--no-record", action="store_true", help="do not write canary records to the audit log")
    s.add_argument("--workers", type=int, default=1)
    s.set_defaults(func=cmd_canary)
