"""Signed checkpoints anchored outside the audit database.

A database restored from an old backup (its MAC'd head row with it), or one whose checkpoint rows were
deleted, is consistent with itself: only something kept elsewhere can tell. Every checkpoint the log
signs is appended, after its transaction commits, to `checkpoints.jsonl` in the anchor directory (one
JSON object per line, fsynced) and, when configured, POSTed to a witness URL. `audit verify` checks the
database against every anchored checkpoint; the gateway refuses to start when the database is behind the
newest one or is another log. The anchor directory defaults to `<data_dir>/anchor`: mount it from
elsewhere (another host, an append-only volume, `chattr +a`), or a rollback of the data dir rolls the
anchor back with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import urllib.request
from pathlib import Path

from gateway.audit.backend import open_backend
from gateway.audit.checkpoint import Checkpoint, CheckpointError
from gateway.audit.store import AuditLog, AuditLogError, Head
from gateway.keys import KeyProvider
from gateway.storage.dsn import redact_dsn

log = logging.getLogger("vendorgate.audit")
ANCHOR_FILE = "checkpoints.jsonl"
_TAIL_BYTES = 64 * 1024


class AnchorError(Exception):
    """The anchor file cannot be read as a list of checkpoints."""


class Witness:
    """POSTs each checkpoint as JSON on its own thread, so a slow witness never holds up the audit writer.
    Best effort: a failure is logged (never with the token) and the file anchor still holds the checkpoint."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 5.0):
        self.url, self._token, self.timeout = url, token, timeout
        self.where = redact_dsn(url)  # what logs name: never a password in the URL
        self._queue: queue.Queue = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None

    def post(self, cp: Checkpoint) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-witness", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(cp)
        except queue.Full:
            log.warning("audit witness %s: queue full, checkpoint at size %d not sent", self.where, cp.tree_size)

    def _run(self) -> None:
        while (cp := self._queue.get()) is not None:
            body = json.dumps({"checkpoint": cp.to_dict(), "text": cp.to_text()}).encode()
            headers = {"Content-Type": "application/json"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            try:
                with urllib.request.urlopen(urllib.request.Request(self.url, body, headers, method="POST"),
                                            timeout=self.timeout) as answer:
                    answer.read()
            except Exception as exc:  # any failure is only logged: the file anchor holds the checkpoint
                log.warning("audit witness %s did not take the checkpoint at size %d: %s", self.where, cp.tree_size,
                            type(exc).__name__)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (up to `timeout`), then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)


class CheckpointAnchor:
    """`checkpoints.jsonl` in `directory`: only ever appended to."""

    def __init__(self, directory: Path, witness: Witness | None = None):
        self.path = Path(directory) / ANCHOR_FILE
        self.witness = witness

    def read(self) -> list[Checkpoint]:
        """Every anchored checkpoint, oldest first."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise AnchorError(f"cannot read the checkpoint anchor {self.path}: {exc.strerror}") from None
        return [self._parse(line, n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]

    def latest(self) -> Checkpoint | None:
        """The newest anchored checkpoint, from the file's tail (start-up reads no more than that)."""
        try:
            with self.path.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - _TAIL_BYTES))
                lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AnchorError(f"cannot read the checkpoint anchor {self.path}: {exc.strerror}") from None
        return self._parse(lines[-1], "last") if lines else None

    def _parse(self, line: str, where) -> Checkpoint:
        try:
            return Checkpoint.from_dict(json.loads(line))
        except (ValueError, CheckpointError) as exc:
            raise AnchorError(f"the checkpoint anchor {self.path} is malformed at line {where}: {exc}") from None

    def append(self, checkpoints: list[Checkpoint]) -> None:
        """Append and fsync; then hand each to the witness."""
        if not checkpoints:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(cp.to_dict(), sort_keys=True) + "\n" for cp in checkpoints).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if self.witness is not None:
            for cp in checkpoints:
                self.witness.post(cp)


class AnchoredAuditLog(AuditLog):
    """An `AuditLog` whose signed checkpoints are also appended to a `CheckpointAnchor` once committed."""

    anchor: CheckpointAnchor
    anchor_problem = ""  # set by `recheck_anchor` while running; `/readyz` shows it
    _signed = False
    _anchored_size = -1

    @classmethod
    def open(cls, data_dir: Path, keys: KeyProvider, anchor: CheckpointAnchor, dsn: str | None = None,
             checkpoint_every: int = 1000, read_only: bool = False) -> AnchoredAuditLog:
        audit = cls(open_backend(Path(data_dir), dsn, read_only), keys, checkpoint_every, read_only)
        audit.anchor = anchor
        return audit

    def _sign(self, head: Head) -> Checkpoint:
        cp = super()._sign(head)
        self._signed = True
        return cp

    def append_sync(self, record) -> int:
        seq = super().append_sync(record)
        if self._signed:
            self.anchor_new()
        return seq

    def checkpoint_sync(self) -> Checkpoint | None:
        cp = super().checkpoint_sync()
        if self._signed:
            self.anchor_new()
        return cp

    def anchor_new(self) -> None:
        """Append every stored checkpoint newer than the anchor's newest: the ones just signed, ones other
        gateways sharing the log signed, and any a crash kept from the anchor."""
        self._signed = False
        try:
            if self._anchored_size < 0:
                latest = self.anchor.latest()
                head = self.head()
                self._anchored_size = latest.tree_size if latest and head and latest.log_id == head.log_id else 0
            rows = self.db.rows("SELECT checkpoint FROM audit_checkpoint WHERE tree_size > ? ORDER BY tree_size",
                                (self._anchored_size,))
            new = [Checkpoint.from_dict(json.loads(raw)) for (raw,) in rows]
            self.anchor.append(new)
        except (OSError, AnchorError) as exc:
            self._signed = True  # try again with the next append: until then every append fails closed
            raise AuditLogError(f"cannot append the signed checkpoint to the anchor {self.anchor.path}: {exc}") from None
        if new:
            self._anchored_size = new[-1].tree_size

    def check_anchor(self) -> None:
        """Start-up: refuse a database that is behind the newest anchored checkpoint or is another log.
        Reads the anchor's tail and one checkpoint row; `audit verify` checks every anchored checkpoint."""
        try:
            latest = self.anchor.latest()
        except AnchorError as exc:
            raise AuditLogError(str(exc)) from None
        if latest is None:
            self.anchor_new()  # a log anchored for the first time: its checkpoints so far
            return
        head = self.head()
        where = f"in {self.anchor.path}"
        if head is None:
            raise AuditLogError(f"the audit database has no head row but the anchor {where} holds checkpoints up to "
                                f"size {latest.tree_size}: restore the database; run `vendorgate audit verify`")
        if latest.log_id != head.log_id:
            raise AuditLogError(
                f"the audit database is log {head.log_id!r} ({head.size} records) but the newest anchored checkpoint "
                f"{where} is of log {latest.log_id!r} at size {latest.tree_size}: the audit database was replaced "
                "(restore it, or move the anchor file aside to start a new log on purpose)")
        rows = self.db.rows("SELECT checkpoint FROM audit_checkpoint WHERE tree_size = ?", (latest.tree_size,))
        stored = Checkpoint.from_dict(json.loads(rows[0][0])) if rows else None
        if stored is None or stored.root_hash != latest.root_hash or head.size < latest.tree_size \
                or head.checkpoint_size < latest.tree_size or not self.head_is_sealed(head):
            raise AuditLogError(
                f"the audit database is behind its anchored checkpoint at size {latest.tree_size} (dated "
                f"{latest.timestamp}, {where}): it holds {head.size} record(s) with its newest checkpoint at size "
                f"{head.checkpoint_size}, so it was rolled back to an older copy or its checkpoints were deleted; "
                "run `vendorgate audit verify`, and restore the database")
        self.anchor_new()  # catch up on checkpoints a crash kept from the anchor

    def recheck_anchor(self) -> str:
        """The start-up check again, while running (the maintenance loop, on the writer thread): a database
        restored or edited under a running gateway turns `/readyz` red and is logged once."""
        try:
            self.check_anchor()
            problem = ""
        except AuditLogError as exc:
            problem = str(exc)
        if problem and problem != self.anchor_problem:
            log.error("audit log does not match its anchor: %s", problem)
        self.anchor_problem = problem
        return problem

    async def close(self) -> None:
        await super().close()
        if self.anchor.witness is not None:
            await asyncio.to_thread(self.anchor.witness.close)
