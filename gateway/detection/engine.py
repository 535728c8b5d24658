"""DetectionEngine: runs the detectors in worker processes, fairly, with deadlines.

Detection is CPU-bound; running it on the event loop would stall every other
request behind one large body. Workers load the models once at start-up and
talk to the loop over one socket pair each (a pickled batch in, pickled
findings out, framed as `multiprocessing.Connection` frames them), written and
read by an asyncio transport: no executor threads between them, and a large
batch or result never blocks the loop.

Scheduling (docs/performance.md):

- **Two lanes.** A job of at most `small_chars` characters is small work; the
  rest is large. Large work runs on at most `workers - 1` workers at once, so
  (with two or more workers) one worker is always free for small requests,
  which never wait behind a large body; while a worker is being replaced, large
  work waits for it. Small work may use any free worker.
- **Per caller.** Within a lane, callers take turns (round robin), so one
  caller's many chunks do not queue ahead of another's. A caller may have at
  most `caller_queue` requests with work waiting (a request's own further
  chunks are never refused); the next request raises `CallerQueueFull` (the
  gateway answers `429` with `Retry-After`), and other callers are unaffected.
- **Deadlines.** Each request gets one deadline that grows with its size:
  `timeout_seconds * (1 + chars / per_timeout)`, `per_timeout` being
  `NER_CHARS_PER_TIMEOUT` when the spec runs NER, else
  `PATTERN_CHARS_PER_TIMEOUT` (with the default 10 s: 10 s, plus 1 s per
  10,000 characters with NER, per 100,000 without). Work still queued at the
  deadline is dropped, never run; a worker still busy with it when the deadline
  of everything in its batch has passed is killed and replaced, so timed-out
  work does not hold a core. The caller gets `DetectionError` and fails closed.

Jobs of one lane waiting together go to a free worker as one call (up to
`batch_chars`), so under load spaCy sees larger batches, while an idle
gateway adds no waiting.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import logging
import math
import multiprocessing
import operator
import os
import pickle
import signal
import socket
import struct
import threading
import time
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from gateway import heap
from gateway.detection.analyzer import Analyzer
from gateway.detection.entities import NER_ALSO, NER_ENTITIES
from gateway.detection.finding import Finding
from gateway.detection.patterns.detector import built_in_prefilter
from gateway.detection.secrets.detector import compiled_catalogue
from gateway.detection.spec import DetectionSpec

_analyzer: Analyzer | None = None

BATCH_CHARS = 256 * 1024
SMALL_CHARS = 16 * 1024          # a job up to this many characters is small work
# Large work without NER in jobs of at most this many characters (a few ms of the pattern and secrets
# layers on an idle core, ~100 ms on a loaded one) may also take the worker kept for small work: a small
# request then waits at most one such job. Large work with NER (seconds per job) never does.
BOUNDED_CHARS = 8 * 1024
CALLER_QUEUE = 128               # requests one caller may have waiting (each with any number of jobs)
# Each further this many characters add `timeout_seconds` to a request's deadline: at the default
# 10 s, 10 kchar/s with NER (a third of one core's NER speed, ~30 kchar/s) and 100 kchar/s without
# (a tenth of the pattern and secrets layers' speed, ~1 MB/s).
NER_CHARS_PER_TIMEOUT = 100_000
PATTERN_CHARS_PER_TIMEOUT = 1_000_000
RETRY_CHARS_PER_SECOND = 100_000  # the `Retry-After` estimate of how fast queued work drains
NER_TYPES = NER_ENTITIES | NER_ALSO


WORKER_DIED = "a detection worker died"


class DetectionError(Exception):
    """Detection did not complete; the request must not be forwarded."""


class CallerQueueFull(DetectionError):
    """This caller already has `caller_queue` jobs waiting: retry after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__("too much detection work queued for this caller")
        self.retry_after = retry_after


log = logging.getLogger("vendorgate.detection")
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, signum: int = signal.SIGKILL) -> None:
    """No process outlives the one that started it: the kernel sends `signum` when the parent dies
    (PR_SET_PDEATHSIG, Linux), and a watchdog thread sends it if the parent pid changes (any platform,
    and the case where the parent died before prctl ran). SIGKILL for detection workers; SIGTERM for
    the HTTP processes of `serve --workers N`, which then drain and stop their own workers."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        pass

    def orphaned() -> bool:
        if os.getppid() == parent:
            return False
        os.kill(os.getpid(), signum)
        return True

    if orphaned():
        return

    def watch() -> None:
        while not orphaned():
            time.sleep(0.5)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _init_worker(parent: int | None = None) -> None:
    global _analyzer
    if parent is not None:
        die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the gateway shuts its workers down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _analyzer = Analyzer()
    # The hyperscan databases (~1 s each): before "ready", not in the first request each worker gets
    # (measured: with large bodies spread over every worker, the second worker's first chunk paid it).
    for prefilter in (built_in_prefilter(), compiled_catalogue().prefilter):
        if prefilter is not None:
            prefilter.compile()
    heap.settle()


def _analyze_batch(jobs: list[tuple[list[str], DetectionSpec]]) -> list[list[list[Finding]] | str]:
    """Findings per job, or the name of the exception that job raised."""
    assert _analyzer is not None, "worker not initialised"
    try:
        return _analyzer.analyze_batch(jobs)
    except Exception:
        pass
    results: list[list[list[Finding]] | str] = []
    for job in jobs:
        try:
            results.append(_analyzer.analyze_batch([job])[0])
        except Exception as exc:
            results.append(type(exc).__name__)
    return results


# Findings cross the pipe as plain tuples: unpickling a frozen, slotted dataclass calls
# `dataclasses.fields` per object, twice the cost of building it again (measured on the loop).
_AS_TUPLE = operator.attrgetter(*(f.name for f in dataclasses.fields(Finding)))


def _flat(results: list[list[list[Finding]] | str]) -> list:
    return [r if isinstance(r, str) else [[_AS_TUPLE(f) for f in fs] for fs in r] for r in results]


def _findings(result: list) -> list[list[Finding]]:
    return [[Finding(*t) for t in fs] for fs in result]


def _worker_main(conn: Connection, parent: int) -> None:
    """A worker: load the detectors, say ready, then answer one pickled batch at a time."""
    try:
        _init_worker(parent)
    except Exception as exc:
        conn.send_bytes(pickle.dumps(f"start failed: {type(exc).__name__}: {exc}"))
        raise
    try:
        conn.send_bytes(pickle.dumps("ready"))
    except OSError:  # the gateway closed while we loaded
        return
    while True:
        try:
            jobs = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            conn.send_bytes(pickle.dumps(_flat(_analyze_batch(jobs)), pickle.HIGHEST_PROTOCOL))
        except OSError:  # the gateway closed our pipe (shutdown): nobody is waiting for this
            return


@dataclass(eq=False)
class _Job:
    texts: list[str]
    spec: DetectionSpec
    future: asyncio.Future
    size: int
    caller: str
    deadline: float            # loop time
    small: bool
    bounded: bool = False      # large work short enough for the worker kept for small work
    queued: bool = True
    request: object = None     # what the per-caller cap counts


class _Pipe(asyncio.Protocol):
    """The gateway's end of a worker's socket pair: `multiprocessing.Connection` frames
    (a 4-byte signed big-endian length, or -1 and an 8-byte one), without blocking."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.on_message = lambda message: None
        self.on_lost = lambda: None
        self._buffer = bytearray()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 4:
            (size,), head = struct.unpack_from("!i", self._buffer), 4
            if size == -1:
                if len(self._buffer) < 12:
                    return
                (size,), head = struct.unpack_from("!Q", self._buffer, 4), 12
            if len(self._buffer) < head + size:
                return
            message = bytes(self._buffer[head:head + size])
            del self._buffer[:head + size]
            self.on_message(message)

    def connection_lost(self, exc) -> None:
        self.on_lost()

    def send(self, payload: bytes) -> None:
        size = len(payload)
        header = struct.pack("!i", size) if size <= 0x7FFFFFFF else struct.pack("!iQ", -1, size)
        self.transport.write(header + payload)

    def close(self, flush: bool = False) -> None:
        if self.transport is not None:
            self.transport.close() if flush else self.transport.abort()


@dataclass(eq=False)
class _Worker:
    process: multiprocessing.process.BaseProcess
    pipe: _Pipe
    ready: asyncio.Future
    batch: list[_Job] | None = None
    large: bool = False
    timer: asyncio.TimerHandle | None = None
    lost: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class _Lane:
    """Waiting jobs per caller, served in turn."""

    callers: OrderedDict[str, deque[_Job]] = field(default_factory=OrderedDict)

    def push(self, job: _Job) -> None:
        self.callers.setdefault(job.caller, deque()).append(job)

    def remove(self, job: _Job) -> None:
        jobs = self.callers.get(job.caller)
        if jobs is not None and job in jobs:
            jobs.remove(job)
            if not jobs:
                del self.callers[job.caller]

    def take(self, limit: int, bounded: bool = False) -> list[_Job]:
        """One job per caller in turn, up to `limit` characters (the first job always goes);
        with `bounded`, only while the next job is bounded."""
        batch: list[_Job] = []
        size = 0
        while self.callers:
            caller, jobs = next(iter(self.callers.items()))
            job = jobs[0]
            if batch and size + job.size > limit or bounded and not job.bounded:
                break
            jobs.popleft()
            if jobs:
                self.callers.move_to_end(caller)
            else:
                del self.callers[caller]
            batch.append(job)
            size += job.size
        return batch

    def __bool__(self) -> bool:
        return bool(self.callers)


class DetectionEngine:
    def __init__(self, workers: int = 0, timeout_seconds: float = 10.0, batch_chars: int = BATCH_CHARS,
                 small_chars: int = SMALL_CHARS, caller_queue: int = CALLER_QUEUE,
                 bounded_chars: int = BOUNDED_CHARS):
        self.workers = workers or os.cpu_count() or 1
        self.timeout_seconds = timeout_seconds
        self.batch_chars = batch_chars
        self.small_chars = small_chars
        self.bounded_chars = bounded_chars
        self.caller_queue = caller_queue
        self._ctx = multiprocessing.get_context("spawn")
        self._pool: list[_Worker] = []
        self._small = _Lane()
        self._large = _Lane()
        self._waiting: dict[str, dict[object, int]] = {}  # caller -> request -> its jobs waiting
        self._admitted: weakref.WeakSet = weakref.WeakSet()
        self._replacing: set[asyncio.Task] = set()
        self._supervisor: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._all_lost = False  # every worker died: the next request is refused at once, until one is back
        self.in_flight = 0

    # -- start, and one worker's life ---------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until each has loaded its models."""
        self._loop = asyncio.get_running_loop()
        workers = list(await asyncio.gather(*(self._spawn() for _ in range(self.workers))))
        try:
            await asyncio.gather(*(w.ready for w in workers))
        except DetectionError:
            for w in workers:
                self._stop_worker(w)
            raise
        self._pool = workers
        self._started = True
        self._supervisor = asyncio.create_task(self._supervise())

    async def _spawn(self) -> _Worker:
        """A new worker process; started on a thread, as `start()` waits for the new interpreter
        to read its preparation data (up to seconds on a loaded machine)."""
        ours, theirs = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(theirs, os.getpid()), daemon=True,
                                    name="vendorgate-detection")
        started = asyncio.ensure_future(asyncio.to_thread(process.start))
        try:
            await asyncio.shield(started)
        except asyncio.CancelledError:  # closing: the process must not outlive us once it is up
            started.add_done_callback(lambda _: (process.kill(), ours.close(), theirs.close()))
            raise
        theirs.close()
        sock = socket.socket(fileno=os.dup(ours.fileno()))
        ours.close()
        _, pipe = await self._loop.create_unix_connection(_Pipe, sock=sock)
        worker = _Worker(process, pipe, self._loop.create_future())
        pipe.on_message = lambda message: self._received(worker, message)
        pipe.on_lost = lambda: self._lost(worker, WORKER_DIED)
        return worker

    def _received(self, worker: _Worker, raw: bytes) -> None:
        """A whole message from the worker: "ready", or the results of its batch."""
        if worker.lost:
            return
        try:
            message = pickle.loads(raw)
        except Exception:
            self._lost(worker, WORKER_DIED)
            return
        if not worker.ready.done():
            if message == "ready":
                worker.ready.set_result(None)
            else:
                self._lost(worker, f"detection workers failed to start ({message})")
            return
        batch, worker.batch = worker.batch, None
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        self.in_flight -= 1
        for job, result in zip(batch or (), message):
            if job.future.done():
                continue
            if isinstance(result, str):
                job.future.set_exception(DetectionError(f"detection failed: {result}"))
            else:
                job.future.set_result(_findings(result))
        self._dispatch()

    def _lost(self, worker: _Worker, reason: str) -> None:
        """A worker died or was killed: fail its batch, and start a replacement unless closing."""
        if worker.lost:
            return
        worker.lost = True
        was_ready = worker.ready.done()
        if not was_ready:
            worker.ready.set_exception(DetectionError(reason))
            worker.ready.exception()  # retrieved: start() or _replace() reports it
        failed_requests = worker.batch is not None
        if failed_requests:
            self.in_flight -= 1
            self._fail(worker.batch, reason)
            worker.batch = None
        self._stop_worker(worker)
        if was_ready and self._started and worker in self._pool:  # (a failed start: `_replace` tries again)
            # The last worker died: one request learns of it (fail closed), then requests wait for the
            # replacement; when the death failed requests in flight, they were that one.
            if reason == WORKER_DIED and self.alive_count() == 0 and not failed_requests:
                self._all_lost = True
            task = asyncio.get_running_loop().create_task(self._replace(worker))
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)

    def _stop_worker(self, worker: _Worker) -> None:
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        worker.lost = True
        worker.pipe.close()
        if worker.process.is_alive():
            worker.process.kill()

    async def _replace(self, old: _Worker) -> None:
        """A replacement in the same slot; until it is ready the gateway reports itself unhealthy."""
        while self._started:
            log.warning("starting a replacement detection worker")
            new = await self._spawn()
            if not self._started:
                self._stop_worker(new)
                return
            self._pool[self._pool.index(old)] = new
            await asyncio.to_thread(old.process.join, 5)
            try:
                await new.ready
            except DetectionError as exc:
                log.error("%s", exc)
                old = new
                await asyncio.sleep(1.0)
                continue
            self._all_lost = False
            self._dispatch()
            return

    # -- requests ----------------------------------------------------------------------

    def deadline(self, chars: int, spec: DetectionSpec, since: float | None = None) -> float:
        """When detection of a request with `chars` characters, started at `since` (loop time,
        default now), must be done."""
        per_timeout = NER_CHARS_PER_TIMEOUT if spec.entities & NER_TYPES else PATTERN_CHARS_PER_TIMEOUT
        start = asyncio.get_running_loop().time() if since is None else since
        return start + self.timeout_seconds * (1 + chars / per_timeout)

    async def detect(self, texts: list[str], spec: DetectionSpec, *, caller: str = "",
                     deadline: float | None = None, bulk: bool = False,
                     request: object = None) -> list[list[Finding]]:
        """Findings per text, by `deadline` (default: this call's own size-based deadline).
        `bulk`: one chunk of a larger request, large work whatever its own size. `request`: what
        the jobs of one request share, weakly referenced (the per-caller cap counts requests; default:
        this call)."""
        if not texts:
            return []
        if not self._started:
            raise DetectionError("detection engine is not started")
        if self._all_lost:  # this request learns of it (fail closed); the next ones wait for the replacement
            self._all_lost = False
            raise DetectionError(WORKER_DIED)
        size = sum(len(t) for t in texts)
        if deadline is None:
            deadline = self.deadline(size, spec)
        loop = asyncio.get_running_loop()
        waiting = self._waiting.get(caller, {})
        if request not in self._admitted and len(waiting) >= self.caller_queue:
            raise CallerQueueFull(self._retry_after(caller))
        job = _Job(texts, spec, loop.create_future(), size, caller, deadline, size <= self.small_chars and not bulk,
                   size <= self.bounded_chars and not spec.entities & NER_TYPES)
        (self._small if job.small else self._large).push(job)
        job.request = job if request is None else request
        self._admitted.add(job.request)  # a request let in is never refused for its later chunks
        waiting = self._waiting.setdefault(caller, {})
        waiting[job.request] = waiting.get(job.request, 0) + 1
        self._dispatch()
        try:
            async with asyncio.timeout_at(deadline):
                return await job.future
        except TimeoutError:
            raise DetectionError("detection timed out (its deadline passed); the work was stopped") from None
        finally:
            if job.queued:  # gave up (deadline, or the request went away) before it ran: it never will
                self._unqueue(job)

    def _retry_after(self, caller: str) -> int:
        """Seconds until this caller's waiting work is likely done (an estimate, 1 to 60)."""
        queued = sum(j.size for lane in (self._small, self._large) for j in lane.callers.get(caller, ()))
        return max(1, min(60, math.ceil(queued / RETRY_CHARS_PER_SECOND)))

    def _unqueue(self, job: _Job) -> None:
        (self._small if job.small else self._large).remove(job)
        self._dequeued(job)

    def _dequeued(self, job: _Job) -> None:
        job.queued = False
        waiting = self._waiting.get(job.caller, {})
        left = waiting.get(job.request, 1) - 1
        if left > 0:
            waiting[job.request] = left
        else:
            waiting.pop(job.request, None)
            if not waiting:
                self._waiting.pop(job.caller, None)

    def _dispatch(self) -> None:
        """Hand work to every free worker: small work first; large work on at most workers - 1,
        and bounded large work (no NER, at most `bounded_chars`) on the last one too."""
        free = [w for w in self._pool if w.batch is None and w.ready.done() and not w.lost]
        if not free:
            return
        large_running = sum(1 for w in self._pool if w.batch is not None and w.large)
        # one ready worker kept for small work; with a single worker configured, large work may use it
        ready = sum(1 for w in self._pool if w.ready.done() and not w.lost)
        large_cap = 1 if len(self._pool) == 1 else ready - 1
        for worker in free:
            if self._small:
                batch, large = self._small.take(self.batch_chars), False
            elif self._large and large_running < large_cap:
                batch, large = self._large.take(self.batch_chars), True
                large_running += 1
            elif self._large and (batch := self._large.take(self.bounded_chars, bounded=True)):
                large = True
            else:
                return
            self._run(worker, batch, large)

    def _run(self, worker: _Worker, batch: list[_Job], large: bool) -> None:
        for job in batch:
            self._dequeued(job)
        try:
            payload = pickle.dumps([(j.texts, j.spec) for j in batch], pickle.HIGHEST_PROTOCOL)
            worker.batch, worker.large = batch, large
            self.in_flight += 1
            worker.pipe.send(payload)  # buffered by the transport: the loop never waits on the worker
        except (OSError, ValueError, pickle.PicklingError, AttributeError):
            self._lost(worker, WORKER_DIED)
            return
        worker.timer = self._loop.call_at(max(j.deadline for j in batch), self._overdue, worker, batch)

    def _overdue(self, worker: _Worker, batch: list[_Job]) -> None:
        """Every job of the batch is past its deadline and the worker is still on it: stop the work."""
        worker.timer = None
        if worker.batch is batch:
            log.warning("detection passed its deadline: stopping the worker (%d chars)", sum(j.size for j in batch))
            self._lost(worker, "detection timed out (its deadline passed); the work was stopped")

    @staticmethod
    def _fail(batch: list[_Job], message: str) -> None:
        for job in batch:
            if not job.future.done():
                job.future.set_exception(DetectionError(message))

    # -- lifecycle: health, supervision, shutdown --------------------------------

    def alive_count(self) -> int:
        return sum(1 for w in self._pool if w.ready.done() and not w.lost and w.process.is_alive())

    def healthy(self) -> bool:
        """Every worker process is alive and ready (what /readyz reports)."""
        return self._started and bool(self._pool) and self.alive_count() == len(self._pool)

    async def _supervise(self, every: float = 1.0) -> None:
        """Replace a worker that died even when no request is waiting, so readiness recovers."""
        while True:
            await asyncio.sleep(every)
            for worker in list(self._pool):
                if worker.ready.done() and not worker.lost and not worker.process.is_alive():
                    log.warning("a detection worker died; starting a new one")
                    self._lost(worker, WORKER_DIED)

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._pool]

    async def close(self, timeout: float = 10.0) -> None:
        """Stop the workers: those still busy after `timeout` seconds are killed."""
        if not self._started and not self._pool:
            return
        self._started = False
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*self._replacing, return_exceptions=True)
        for lane in (self._small, self._large):
            for jobs in lane.callers.values():
                self._fail(list(jobs), "detection engine closed")
            lane.callers.clear()
        self._waiting.clear()
        pool, self._pool = self._pool, []
        for worker in pool:
            self._fail(worker.batch or [], "detection engine closed")
            worker.lost = True  # its end of the pipe closing is no loss now
            worker.pipe.close(flush=True)  # the worker reads EOF and exits once its batch is done
        deadline = time.monotonic() + timeout
        for worker in pool:
            await asyncio.to_thread(worker.process.join, max(0.0, deadline - time.monotonic()))
        for worker in pool:
            if worker.process.is_alive():
                worker.process.kill()
                await asyncio.to_thread(worker.process.join, 2.0)
