"""`vendorgate callers add|list|revoke`: the caller keys file the config names (`auth: {keys_file}`)."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.config import load_config


def _keys_file(args):
    """The config's `auth.keys_file`, or `--keys-file` (a local copy of a file mounted from a Secret)."""
    settings = load_config(args.config)
    if getattr(args, "keys_file", None):
        return settings, Path(args.keys_file)
    if settings.config.auth is None:
        print(f"error: {settings.path} has no `auth: {{keys_file: FILE}}` section; add one, then run this again",
              file=sys.stderr)
        raise SystemExit(2)
    return settings, settings.config.auth.keys_file


def cmd_add(args) -> int:
    from gateway.app.auth import CallerKeys

    settings, path = _keys_file(args)
    vendors = [v.strip() for v in args.vendors.split(",") if v.strip()] if args.vendors else None
    unknown = sorted(set(vendors or ()) - set(settings.config.vendors))
    if unknown:
        print(f"error: not a vendor in {settings.path}: {', '.join(unknown)}", file=sys.stderr)
        return 2
    keys = CallerKeys.load(path)
    try:
        key = keys.add(args.name, vendors, args.cert_cn)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(key)
    print(f"caller {args.name!r} added to {path} (allowed: {', '.join(vendors) if vendors else 'every vendor'}). "
          "This key is shown once and stored only as a salted hash: hand it to the caller now. "
          "A running gateway picks it up on SIGHUP.", file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    from gateway.app.auth import CallerKeys
    from gateway.cli.table import table

    _, path = _keys_file(args)
    keys = CallerKeys.load(path)
    rows = [[name, ", ".join(e.vendors).replace("*", "(every vendor)"), e.key_id, e.cert_cn or "-", e.created,
             f"revoked {e.revoked}" if e.revoked else "active"] for name, e in sorted(keys.entries.items())]
    print(table(["CALLER", "VENDORS", "KEY ID", "CERT CN", "CREATED (UTC)", "STATE"], rows))
    print(f"{len(keys.names())} active caller(s) in {path}")
    return 0


def cmd_revoke(args) -> int:
    from gateway.app.auth import CallerKeys

    _, path = _keys_file(args)
    keys = CallerKeys.load(path)
    try:
        keys.revoke(args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"caller {args.name!r} revoked in {path}; a running gateway refuses its key after SIGHUP")
    return 0


def register(subparsers) -> None:
    s = subparsers.add_parser("callers", help="caller API keys (auth: {keys_file})",
                              description="Manage caller keys in the keys file named by the config's `auth:` section.")
    sub = s.add_subparsers(dest="callers_command", required=True, metavar="SUBCOMMAND")
    a = sub.add_parser("add", help="create a caller and print its key once")
    a.add_argument("name", metavar="NAME", help="service name: lowercase letters, digits, . _ - (not a person)")
    a.add_argument("--vendors", help="comma-separated vendors it may use (default: every vendor)")
    a.add_argument("--cert-cn", metavar="CN", help="also accept a client certificate with this subject CN "
                   "(signed by the config's tls.client_ca_file)")
    a.set_defaults(func=cmd_add)
    ls = sub.add_parser("list", help="callers, their vendors and key ids (never keys)")
    ls.set_defaults(func=cmd_list)
    r = sub.add_parser("revoke", help="revoke a caller's key")
    r.add_argument("name", metavar="NAME")
    r.set_defaults(func=cmd_revoke)
    for p in (a, ls, r):
        p.add_argument("--config", required=True, help="the gateway config (its `auth.keys_file` is edited)")
        p.add_argument("--keys-file", metavar="FILE", help="edit this file instead of the config's auth.keys_file: "
                       "e.g. the local copy you put into a Kubernetes Secret or a Compose secret")
