"""`vendorgate serve` and `vendorgate demo-vendor`: the long-running servers."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from gateway.config import DEFAULT_DATA_DIR, SHIPPED_CONFIG, load_config, split_listen


def register(sub) -> None:
    s = sub.add_parser("serve", help="run the gateway", description=(
        f"Run the gateway. Without --config it uses the shipped config ({SHIPPED_CONFIG}), the example policy, "
        "and the demo vendor."))
    s.add_argument("--config", help="config YAML (default: the shipped config)")
    s.add_argument("--data-dir", help=f"where keys and the audit log live (default: ./{DEFAULT_DATA_DIR}/ or the "
                                      "config's data_dir)")
    s.set_defaults(func=serve)

    s = sub.add_parser("demo-vendor", help="run the demo vendor on its own",
                       description="A stand-in vendor that prints and returns exactly what it received.")
    s.add_argument("--listen", default="127.0.0.1:8081", help="HOST:PORT (default 127.0.0.1:8081)")
    s.set_defaults(func=demo_vendor)


def serve(args) -> int:
    from gateway.app.server import StartupError
    from gateway.app.server import serve as run

    settings = load_config(args.config, Path(args.data_dir) if args.data_dir else None)
    logging.basicConfig(level=settings.config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def demo_vendor(args) -> int:
    from aiohttp import web

    from gateway.app.demo_vendor import demo_vendor_app

    host, port = split_listen(args.listen)
    print(f"demo vendor listening on http://{args.listen} (it prints and returns what it receives)", flush=True)
    web.run_app(demo_vendor_app(), host=host, port=port, print=None, access_log=None)
    return 0
