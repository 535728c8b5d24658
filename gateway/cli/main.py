"""The `vendorgate` command: the top-level parser and dispatch.

Each command group is one module with `register(sub)`, which adds its
subparsers and sets `func` (args -> exit code) on each; add a group by adding
its module to `COMMANDS`, in the order `vendorgate --help` lists them.
"""

from __future__ import annotations

import argparse
import sys

from gateway.cli import audit, callers, canary, exposure, fingerprint, keys, policy, report, scan, serve, subject
from gateway.cli.errors import operator_error
from gateway.yamlfile import FileError

EPILOG = "Docs: README.md. Every command exits non-zero on failure."

COMMANDS = (
    serve,        # serve, demo-vendor
    scan,         # scan
    fingerprint,  # fingerprint add|list|remove
    exposure,     # exposure
    policy,       # policy check|test|diff
    canary,       # canary
    audit,        # audit list|verify|prove|public-key|prune|verify-proof|who-saw|vendor
    report,       # report
    subject,      # subject report|forget
    keys,         # keys list|rotate|init
    callers,      # callers add|list|revoke
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("vendorgate")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vendorgate", epilog=EPILOG,
                                description="Data-leakage gateway between your services and outside vendors.")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        message = operator_error(exc, args)
        if message is None or args.debug:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
