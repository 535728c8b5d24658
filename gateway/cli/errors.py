"""Operator errors as one line: what is wrong, which file or address, what to do. `--debug` shows the traceback."""

from __future__ import annotations

import sqlite3


def operator_error(exc: BaseException, args) -> str | None:
    """The one-line message for an error an operator can fix, or None for a bug (shown with its traceback)."""
    from gateway.app.server import StartupError
    from gateway.audit import AuditLogError
    from gateway.keys import KeyProviderError

    if isinstance(exc, (StartupError, KeyProviderError, AuditLogError)):
        return str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "readonly" in text or "read-only" in text:
            return (f"the database in {_where(args)} is read-only ({text}); this command needs to write it: run it "
                    "as the user that owns the data dir, or on a writable copy")
        if "unable to open" in text:
            return f"cannot open the database in {_where(args)} ({text}): check that the folder exists and is writable"
        if "locked" in text:
            return f"the database in {_where(args)} is locked by another process ({text}); try again"
        return None
    if isinstance(exc, PermissionError):
        return (f"{exc.filename or _where(args)}: permission denied; run as the user that owns the data dir or "
                "choose another (--data-dir, or data_dir: in the config)")
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or type(exc).__name__}"
    return None


def _where(args) -> str:
    return getattr(args, "data_dir", None) or getattr(args, "config", None) or "the data dir"
