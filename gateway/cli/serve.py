"""`vendorgate serve` and `vendorgate demo-vendor`: the long-running servers."""

from __future__ import annotations

import argparse
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
    s.add_argument("--workers", type=_positive, default=1, metavar="N",
                   help="HTTP processes sharing the listen port (SO_REUSEPORT), each with its share of "
                        "detection.workers, under one supervisor (default 1: a single process)")
    s.add_argument("--worker-slot", help=argparse.SUPPRESS)  # set by the supervisor for its HTTP processes
    s.set_defaults(func=serve)

    s = sub.add_parser("demo-vendor", help="run the demo vendor on its own",
                       description="A stand-in vendor that prints and returns exactly what it received.")
    s.add_argument("--listen", default="127.0.0.1:8081", help="HOST:PORT (default 127.0.0.1:8081)")
    s.set_defaults(func=demo_vendor)


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return n


def loop_factory():
    """uvloop when installed (a faster event loop for the proxy); asyncio's own otherwise."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_loop(main):
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def serve(args) -> int:
    from gateway.app.server import Slot, StartupError
    from gateway.app.server import serve as run

    settings = load_config(args.config, Path(args.data_dir) if args.data_dir else None)
    logging.basicConfig(level=settings.config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    code = 0
    try:
        if args.worker_slot:
            index, total, detection, socket, parent = args.worker_slot.split(",", 4)
            run_loop(run(settings, Slot(int(index), int(total), int(detection), Path(socket), int(parent))))
        elif args.workers > 1:
            from gateway.app.supervisor import Supervisor

            code = run_loop(Supervisor(settings, args.workers, args.config, args.data_dir).run())
        else:
            run_loop(run(settings))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code



def demo_vendor(args) -> int:
    from aiohttp import web

    from gateway.app.demo_vendor import demo_vendor_app

    host, port = split_listen(args.listen)
    print(f"demo vendor listening on http://{args.listen} (it prints and returns what it receives)", flush=True)
    web.run_app(demo_vendor_app(), host=host, port=port, print=None, access_log=None)
    return 0
