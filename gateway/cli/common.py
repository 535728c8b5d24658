"""What several command groups share: where the data dir is, opening the audit
log and the exposure ledger, `--since`, the time format of the tables."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.config import DEFAULT_DATA_DIR, load_config

DATA_DIR_HELP = f"data dir (default ./{DEFAULT_DATA_DIR}/)"
AUDIT_CONFIG_HELP = "take the data dir (and audit.dsn) from this config"
SINCE_HELP = "e.g. 30d, 12h, 2w or 2025-01-31 (default 30d)"


def add_store_options(parser, config_help: str = AUDIT_CONFIG_HELP) -> None:
    """`--data-dir` and `--config`: where a command finds its stores."""
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--config", help=config_help)


def data_dir(args) -> Path:
    if getattr(args, "data_dir", None):
        return Path(args.data_dir).resolve()
    if getattr(args, "config", None):
        return load_config(args.config).data_dir
    return (Path.cwd() / DEFAULT_DATA_DIR).resolve()


def open_audit(args, read_only: bool = False):
    """`read_only`: commands that only read (list, verify, vendor, report) never write, not even a key."""
    from gateway.audit.schedule import open_audit as open_log
    from gateway.audit.settings import AuditConfig
    from gateway.keys import LocalKeyProvider

    where = data_dir(args)
    audit = load_config(args.config).config.audit if getattr(args, "config", None) else AuditConfig()
    if not audit.dsn and not (where / "audit.sqlite").exists():
        print(f"no audit log in {where} (use --data-dir or --config)", file=sys.stderr)
        raise SystemExit(1)
    return open_log(where, LocalKeyProvider.existing(where), audit, read_only)


def open_ledger(args):
    """The ledger next to the audit log: PostgreSQL when the config has `audit.dsn`."""
    from gateway.audit.ledger import DB_NAME, ExposureLedger
    from gateway.keys import LocalKeyProvider

    where = data_dir(args)
    dsn = load_config(args.config).config.audit.dsn if getattr(args, "config", None) else None
    if not dsn and not (where / DB_NAME).exists():
        print(f"no exposure ledger in {where} (use --data-dir or --config)", file=sys.stderr)
        raise SystemExit(1)
    return ExposureLedger.in_data_dir(where, LocalKeyProvider.existing(where), dsn)


def since(args):
    """`--since` as a UTC datetime; exit 2 on a value that is not one."""
    from gateway.report import parse_since

    try:
        return parse_since(args.since)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def when(ts: str) -> str:
    """ISO UTC time as `2025-01-31 14:02:07.123`: the date and time at a glance."""
    return ts[:23].replace("T", " ")
