"""Stream audit records to external sinks: a JSON Lines file, syslog (RFC 5424
over UDP, or TCP with octet counting) and an HTTP sink speaking Splunk HEC.

Every record is first appended to a per-sink spool file in the data dir; a
background task delivers the spool in order and moves a committed offset
forward only after delivery. A sink that is down therefore loses nothing: its
records wait on disk (across restarts too) and are replayed in order when it
returns. Delivery is at-least-once: after a failure the unconfirmed tail is
sent again, so a receiver dedupes by the record's `id`. TCP syslog has no
acknowledgement, so a record counts as delivered once the connection stayed
up `confirm_seconds` after it was written. UDP has no delivery signal at all:
a UDP receiver that is down loses what is sent to it (use TCP or HTTP when
that matters).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import aiohttp

from gateway.audit.settings import HttpSink, JsonlSink, SyslogSink, sink_name

log = logging.getLogger("vendorgate.sinks")
SD_ID = "vendorgate@32473"  # 32473: the enterprise number reserved for documentation (RFC 5612)
_SEVERITY = {"forwarded": 6, "rejected": 5, "blocked": 4, "error": 3}
_MAX_BACKOFF = 5.0


class SinkDown(Exception):
    """The sink did not take the batch; it stays in the spool."""


class Spool:
    """An append-only JSON Lines file and the byte offset delivered so far.
    Only ever touched from one thread, so appends, reads and compaction never race."""

    compact_at = 1 << 20  # bytes of delivered records kept before they are cut off

    def __init__(self, folder: Path, name: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{name}.jsonl"
        self.offset_path = folder / f"{name}.offset"
        self.path.touch(exist_ok=True)

    def append(self, line: bytes) -> None:
        with open(self.path, "ab") as fh:
            fh.write(line + b"\n")

    def committed(self) -> int:
        try:
            offset = int(self.offset_path.read_text() or 0)
        except (OSError, ValueError):
            return 0
        return offset if offset <= self.path.stat().st_size else 0

    def read(self, offset: int, limit: int) -> list[tuple[bytes, int]]:
        """Up to `limit` complete lines from `offset`, each with the offset after it."""
        out = []
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            for line in fh:
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                out.append((line.rstrip(b"\n"), offset))
                if len(out) >= limit:
                    break
        return out

    def commit(self, offset: int) -> int:
        """Record delivery up to `offset` and return the new offset. Once all of
        the spool is delivered it is emptied; once the delivered part reaches
        `compact_at` bytes it is cut off, so delivered records never pile up
        under steady load. Offset first: a crash in between replays, never skips."""
        size = self.path.stat().st_size
        if offset >= size:
            self._write_offset(0)
            self.path.write_bytes(b"")
            return 0
        if offset >= self.compact_at:
            tmp = self.path.with_suffix(".compact")
            with open(self.path, "rb") as src, open(tmp, "wb") as dst:
                src.seek(offset)
                shutil.copyfileobj(src, dst)
            self._write_offset(0)
            os.replace(tmp, self.path)
            return 0
        self._write_offset(offset)
        return offset

    def _write_offset(self, offset: int) -> None:
        tmp = self.offset_path.with_suffix(".tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, self.offset_path)


class JsonlTransport:
    def __init__(self, cfg: JsonlSink):
        self.cfg = cfg
        cfg.path.parent.mkdir(parents=True, exist_ok=True)

    async def send(self, records: list[bytes]) -> None:
        def write() -> None:
            with open(self.cfg.path, "ab") as fh:
                fh.write(b"".join(r + b"\n" for r in records))
        try:
            await asyncio.get_running_loop().run_in_executor(None, write)
        except OSError as exc:
            raise SinkDown(f"cannot write {self.cfg.path.name}: {type(exc).__name__}") from None

    def confirmed_after(self) -> float:
        return 0.0

    def healthy(self) -> bool:
        return True

    async def reset(self) -> None:
        pass


def syslog_message(record: dict, cfg: SyslogSink, hostname: str) -> bytes:
    """One RFC 5424 message: header, structured data naming the record, the record as JSON."""
    pri = cfg.facility * 8 + _SEVERITY.get(record.get("decision", ""), 5)
    params = " ".join(f'{k}="{_sd_escape(str(record.get(k, "")))}"'
                      for k in ("id", "request_id", "vendor", "caller", "decision", "status"))
    header = f"<{pri}>1 {record.get('ts') or '-'} {hostname} {cfg.app_name} {os.getpid()} audit [{SD_ID} {params}] "
    return header.encode("utf-8") + b"\xef\xbb\xbf" + json.dumps(record, sort_keys=True).encode("utf-8")


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _hostname() -> str:
    name = "".join(c for c in socket.gethostname() if "!" <= c <= "~")[:255]
    return name or "-"


class SyslogTransport:
    def __init__(self, cfg: SyslogSink):
        self.cfg = cfg
        self.hostname = _hostname()
        self._writer: asyncio.StreamWriter | None = None
        self._eof: asyncio.Task | None = None
        self._udp: asyncio.DatagramTransport | None = None

    async def send(self, records: list[bytes]) -> None:
        messages = [syslog_message(json.loads(r), self.cfg, self.hostname) for r in records]
        try:
            if self.cfg.protocol == "udp":
                await self._send_udp(messages)
            else:
                await self._send_tcp(messages)
        except (TimeoutError, OSError) as exc:
            await self.reset()
            raise SinkDown(f"syslog {self.cfg.host}:{self.cfg.port}/{self.cfg.protocol}: {type(exc).__name__}") from None

    async def _send_udp(self, messages: list[bytes]) -> None:
        if self._udp is None or self._udp.is_closing():
            self._udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=(self.cfg.host, self.cfg.port))
        for m in messages:
            self._udp.sendto(m)

    async def _send_tcp(self, messages: list[bytes]) -> None:
        if not self.healthy():
            await self.reset()
            reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.cfg.host, self.cfg.port), self.cfg.timeout_seconds)
            self._eof = asyncio.ensure_future(reader.read(1))  # done = the receiver closed or reset
        self._writer.write(b"".join(f"{len(m)} ".encode() + m for m in messages))  # octet counting, RFC 6587
        await asyncio.wait_for(self._writer.drain(), self.cfg.timeout_seconds)
        if not self.healthy():
            raise ConnectionResetError()

    def healthy(self) -> bool:
        if self.cfg.protocol == "udp":
            return True
        return self._writer is not None and not self._writer.is_closing() and self._eof is not None and not self._eof.done()

    def confirmed_after(self) -> float:
        return self.cfg.confirm_seconds if self.cfg.protocol == "tcp" else 0.0

    async def reset(self) -> None:
        if self._eof is not None:
            self._eof.cancel()
            self._eof = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None


def hec_event(record: dict, cfg: HttpSink, hostname: str) -> dict:
    event = {"time": _epoch(record.get("ts", "")), "host": hostname, "source": cfg.source,
             "sourcetype": cfg.sourcetype, "event": record}
    if cfg.index:
        event["index"] = cfg.index
    return event


def _epoch(ts: str) -> float:
    try:
        return round(datetime.fromisoformat(ts).timestamp(), 3)
    except ValueError:
        return round(time.time(), 3)


class HttpTransport:
    """Splunk HEC: events concatenated in one POST, `Authorization: Splunk <token>`."""

    def __init__(self, cfg: HttpSink, env):
        self.cfg = cfg
        self.hostname = _hostname()
        self._token = env.get(cfg.token_env, "") if cfg.token_env else ""
        self._session: aiohttp.ClientSession | None = None

    async def send(self, records: list[bytes]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_seconds))
        body = "\n".join(json.dumps(hec_event(json.loads(r), self.cfg, self.hostname), sort_keys=True) for r in records)
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Splunk {self._token}"
        try:
            async with self._session.post(self.cfg.url, data=body.encode(), headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise SinkDown(f"HTTP sink answered {resp.status}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SinkDown(f"HTTP sink unreachable: {type(exc).__name__}") from None

    def healthy(self) -> bool:
        return True

    def confirmed_after(self) -> float:
        return 0.0

    async def reset(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def make_transport(cfg, env):
    if isinstance(cfg, JsonlSink):
        return JsonlTransport(cfg)
    if isinstance(cfg, SyslogSink):
        return SyslogTransport(cfg)
    if isinstance(cfg, HttpSink):
        return HttpTransport(cfg, env)
    raise TypeError(f"unknown sink {cfg!r}")


class Sink:
    """One configured sink: its spool and the task that drains it in order."""

    def __init__(self, cfg, spool_dir: Path, io: ThreadPoolExecutor, env):
        self.cfg = cfg
        self.name = sink_name(cfg)
        self.spool = Spool(spool_dir, self.name)
        self.transport = make_transport(cfg, env)
        self._io = io
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        self._committed = 0
        self._sent = 0
        self._pending: list[tuple[int, float]] = []  # (offset after a batch, when it was written)

    async def _run_io(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def start(self) -> None:
        self._committed = self._sent = await self._run_io(self.spool.committed)
        self._task = asyncio.create_task(self._deliver(), name=f"sink-{self.name}")

    async def put(self, line: bytes) -> None:
        await self._run_io(self.spool.append, line)
        self._wake.set()

    async def _commit(self, offset: int) -> None:
        new = await self._run_io(self.spool.commit, offset)
        if new != offset:  # the spool was emptied or its delivered part cut off: offsets start again at 0
            self._pending = [(o - offset, t) for o, t in self._pending if o > offset]
            self._sent -= offset
        self._committed = new

    async def _confirm(self) -> None:
        """Commit batches the transport has had long enough to refuse."""
        if not self._pending:
            return
        if not self.transport.healthy():
            raise SinkDown("connection lost")
        ready = time.monotonic() - self.transport.confirmed_after()
        done = [o for o, t in self._pending if t <= ready]
        if done:
            self._pending = [(o, t) for o, t in self._pending if t > ready]
            await self._commit(done[-1])

    async def _deliver(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._confirm()
                batch = await self._run_io(self.spool.read, self._sent, self.cfg.batch_size)
                if not batch:
                    if self._closing and not self._pending:
                        return
                    self._wake.clear()
                    wait = self.transport.confirmed_after() if self._pending else 1.0
                    try:
                        await asyncio.wait_for(self._wake.wait(), max(wait, 0.01))
                    except TimeoutError:
                        pass
                    continue
                await self.transport.send([line for line, _ in batch])
                self._sent = batch[-1][1]
                self._pending.append((self._sent, time.monotonic()))
                await self._confirm()
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- any failure: keep the spool, retry later
                if self._closing:
                    return
                log.warning("audit sink %s is down, records stay spooled: %s", self.name,
                            exc if isinstance(exc, SinkDown) else type(exc).__name__)
                self._sent, self._pending = self._committed, []
                await self.transport.reset()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    async def close(self, flush_seconds: float) -> None:
        """Deliver what is spooled for up to `flush_seconds`; the rest waits for the next start."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, flush_seconds)
            except TimeoutError:
                pass
        await self.transport.reset()


class SinkHub:
    """All configured sinks. `publish` spools a record to each; delivery runs in the background."""

    def __init__(self, configs: list, spool_dir: Path, env=None):
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-spool")
        env = os.environ if env is None else env
        self.sinks = [Sink(cfg, Path(spool_dir), self._io, env) for cfg in configs]

    async def start(self) -> None:
        for sink in self.sinks:
            await sink.start()

    async def publish(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8")
        for sink in self.sinks:
            await sink.put(line)

    async def close(self, flush_seconds: float = 5.0) -> None:
        await asyncio.gather(*(s.close(flush_seconds) for s in self.sinks))
        self._io.shutdown(wait=True)
