"""The write-ahead journal: no request reaches a vendor unaudited.

Before a request is forwarded, its audit record as it stands (counts, types,
the policy digest; never values) is appended to this process's file in
`<data_dir>/journal/` and fsynced; only then is it sent. When its final record is in the audit log, a
`done` line follows (not waited for). If the process dies in between — kill -9,
OOM, a full disk under the audit log — the next start finds the open entries and
appends them to the log as `forwarded` records marked interrupted (the vendor
may have received them). A file is held under an exclusive `flock` while its
gateway runs, so a file that can be locked belongs to a process that is gone
(`serve --workers N` processes and gateways sharing a data dir keep theirs).

Appends are group-committed: one writer thread takes every line queued since
its last write, writes them and fsyncs once, then wakes all their requests. A
journal that cannot be written fails the request closed (the caller gets 503,
the vendor nothing).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass, fields, replace
from pathlib import Path

from gateway.audit.record import AuditRecord
from gateway.storage.thread import settle

log = logging.getLogger("vendorgate.audit")
FOLDER = "journal"
ROTATE_BYTES = 16 * 1024 * 1024  # started afresh when nothing is open and it has grown past this
INTERRUPTED = ("interrupted: the gateway stopped after the request was journaled and before its final audit record "
               "(the vendor may have received it); recovered from the write-ahead journal at start-up")


class JournalError(Exception):
    """The journal could not be written: the request must not be forwarded."""


@dataclass
class _Line:
    data: bytes
    done: asyncio.Future | None  # None for `done` lines: nobody waits for them
    opens: str = ""
    closes: str = ""


class Journal:
    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._queue: list[_Line] = []
        self._open: set[str] = set()
        self._cond = threading.Condition()
        self._closed = False
        self._file = None
        self._thread: threading.Thread | None = None
        self._live: set[str] = set()  # the writer thread's view: entries on disk and not yet done

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Journal:
        return cls(data_dir / FOLDER)

    def orphans(self) -> list[tuple[Path, list[AuditRecord]]]:
        """Files of gateways that are gone (their lock is free) and their unfinished records."""
        found = []
        for path in sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []:
            if path == self.path:
                continue
            with open(path, "rb") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a running gateway's
                found.append((path, pending(f.read())))
        return found

    async def recover(self, append) -> int:
        """Append every unfinished entry of a gateway that is gone to the audit log (`append`: the
        log's async append); its file is removed once they are in."""
        count = 0
        for path, records in await asyncio.to_thread(self.orphans):
            for record in records:
                await append(replace(record, error=INTERRUPTED, decision="forwarded", status=0))
            path.unlink(missing_ok=True)
            count += len(records)
        if count:
            log.warning("audit: %d request(s) interrupted before their final record were recovered from %s",
                        count, self.folder)
        return count

    def start(self) -> None:
        """This gateway's journal file, locked for its life, and its writer thread."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb", buffering=0)  # held for the gateway's life
        fcntl.flock(self._file, fcntl.LOCK_EX)
        _fsync_dir(self.folder)
        self._thread = threading.Thread(target=self._write_loop, name="audit-journal", daemon=True)
        self._thread.start()

    async def opened(self, record: AuditRecord) -> None:
        """Returns once the entry is on disk; raises `JournalError` if it cannot be."""
        future = asyncio.get_running_loop().create_future()
        self._put(_Line(json.dumps({"open": record.to_dict()}, separators=(",", ":")).encode() + b"\n", future,
                        opens=record.id))
        await asyncio.shield(future)
        self._open.add(record.id)

    def done(self, record_id: str) -> None:
        """The final record is in the log: the entry is closed (written with the next batch)."""
        if record_id in self._open:
            self._open.discard(record_id)
            self._put(_Line(json.dumps({"done": record_id}).encode() + b"\n", None, closes=record_id))

    async def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def _put(self, line: _Line) -> None:
        with self._cond:
            if self._closed or self._thread is None:
                if line.done is not None:
                    line.done.set_exception(JournalError("the audit journal is closed"))
                return
            self._queue.append(line)
            self._cond.notify()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                batch, self._queue = self._queue, []
                closing = self._closed
            if batch:
                error = self._write(b"".join(line.data for line in batch))
                if error is None:
                    self._live |= {line.opens for line in batch if line.opens}
                    self._live -= {line.closes for line in batch if line.closes}
                for line in batch:
                    if line.done is not None:
                        line.done.get_loop().call_soon_threadsafe(settle, [line.done], error)
            if closing and not self._queue:
                if not self._live:  # every entry finished: nothing to recover
                    self.path.unlink(missing_ok=True)
                self._file.close()
                return

    def _write(self, data: bytes) -> JournalError | None:
        position = self._file.tell()
        try:
            if not self._live and position > ROTATE_BYTES:
                self._file.truncate(0)
                self._file.seek(0)
                position = 0
            view = memoryview(data)
            while view:  # a raw file may take part of a write
                view = view[self._file.write(view):]
            os.fsync(self._file.fileno())
            return None
        except OSError as exc:
            try:  # no torn line left for the next batch to run into
                self._file.truncate(position)
                self._file.seek(position)
            except OSError:
                pass
            log.error("audit journal %s cannot be written (%s): requests are refused until it can",
                      self.path, exc.strerror or type(exc).__name__)
            return JournalError(f"audit journal cannot be written ({exc.strerror or type(exc).__name__})")


def pending(text: bytes) -> list[AuditRecord]:
    """Records journaled and never finished, oldest first (a torn last line is ignored)."""
    opened: dict[str, AuditRecord] = {}
    names = {f.name for f in fields(AuditRecord)}
    for raw in text.splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue  # the write the crash cut short: that request was never forwarded
        if "open" in entry:
            data = {k: v for k, v in entry["open"].items() if k in names}
            opened[data["id"]] = AuditRecord(**data)
        elif "done" in entry:
            opened.pop(entry["done"], None)
    return list(opened.values())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
