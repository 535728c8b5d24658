"""DetectionEngine: runs the detectors in worker processes, micro-batched.

Detection is CPU-bound; running it on the event loop would stall every other
request behind one large body. Workers load the models once at start-up.

Requests are queued; a dispatcher hands work to a worker as soon as one is
free, taking everything queued at that moment (up to `batch_chars`) as one
call, so under load spaCy sees larger batches and every worker stays busy,
while an idle gateway adds no waiting. A failed or slow detection raises
`DetectionError`, and the caller fails closed.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from gateway.detection.analyzer import Analyzer
from gateway.detection.finding import Finding
from gateway.detection.spec import DetectionSpec

_analyzer: Analyzer | None = None

BATCH_CHARS = 256 * 1024


class DetectionError(Exception):
    """Detection did not complete; the request must not be forwarded."""


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


def _ready() -> int:
    return os.getpid()


@dataclass
class _Job:
    texts: list[str]
    spec: DetectionSpec
    future: asyncio.Future
    size: int


class DetectionEngine:
    def __init__(self, workers: int = 0, timeout_seconds: float = 10.0, batch_chars: int = BATCH_CHARS):
        self.workers = workers or os.cpu_count() or 1
        self.timeout_seconds = timeout_seconds
        self.batch_chars = batch_chars
        self._pool: ProcessPoolExecutor | None = None
        self._queue: deque[_Job] = deque()
        self._wakeup: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._dispatcher: asyncio.Task | None = None
        self._broken = False
        self._recovering: asyncio.Lock | None = None
        self._supervisor: asyncio.Task | None = None
        self.in_flight = 0

    async def start(self) -> None:
        """Start every worker and wait until each has loaded its models."""
        self._recovering = asyncio.Lock()
        await self._start_pool()
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(self.workers)
        self._dispatcher = asyncio.create_task(self._dispatch())
        self._supervisor = asyncio.create_task(self._supervise())

    async def _start_pool(self) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(loop.run_in_executor(self._pool, _ready) for _ in range(self.workers)))
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise DetectionError("detection workers failed to start (their error is printed above)") from None

    async def detect(self, texts: list[str], spec: DetectionSpec) -> list[list[Finding]]:
        if not texts:
            return []
        if self._pool is None or self._wakeup is None:
            raise DetectionError("detection engine is not started")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(texts, spec, future, sum(len(t) for t in texts)))
        self._wakeup.set()
        try:
            return await asyncio.wait_for(future, self.timeout_seconds)
        except TimeoutError:
            raise DetectionError(f"detection timed out after {self.timeout_seconds}s") from None

    def _take_batch(self) -> list[_Job]:
        """Everything queued, up to `batch_chars` (the first job always goes)."""
        batch: list[_Job] = []
        size = 0
        while self._queue:
            job = self._queue[0]
            if job.future.done():
                self._queue.popleft()
                continue
            if batch and size + job.size > self.batch_chars:
                break
            batch.append(self._queue.popleft())
            size += job.size
        return batch

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            batch: list[_Job] = []
            while not batch:
                batch = self._take_batch()
                if not batch:
                    self._wakeup.clear()
                    await self._wakeup.wait()
            if self._broken:
                try:
                    await self._recover()
                except DetectionError as exc:
                    self._fail(batch, str(exc))
                    self._broken = True
                    self._slots.release()
                    continue
            try:
                call = loop.run_in_executor(self._pool, _analyze_batch, [(j.texts, j.spec) for j in batch])
            except (BrokenProcessPool, RuntimeError):
                self._fail(batch, "a detection worker died")
                self._broken = True
                self._slots.release()
                continue
            self.in_flight += 1
            call.add_done_callback(lambda done, batch=batch: self._finish(batch, done))

    def _finish(self, batch: list[_Job], done: asyncio.Future) -> None:
        self.in_flight -= 1
        self._slots.release()
        if done.cancelled():
            self._fail(batch, "detection cancelled")
            return
        exc = done.exception()
        if isinstance(exc, BrokenProcessPool):
            self._broken = True
            self._fail(batch, "a detection worker died")
            return
        if exc is not None:
            self._fail(batch, f"detection failed: {type(exc).__name__}")
            return
        for job, result in zip(batch, done.result()):
            if job.future.done():
                continue
            if isinstance(result, str):
                job.future.set_exception(DetectionError(f"detection failed: {result}"))
            else:
                job.future.set_result(result)

    @staticmethod
    def _fail(batch: list[_Job], message: str) -> None:
        for job in batch:
            if not job.future.done():
                job.future.set_exception(DetectionError(message))

    async def _recover(self) -> None:
        """A worker died (e.g. out of memory): replace the pool so later requests work."""
        async with self._recovering:
            if not self._broken and self.healthy():
                return  # replaced meanwhile
            old, self._pool = self._pool, None
            if old is not None:
                old.shutdown(wait=False, cancel_futures=True)
            self._broken = False
            await self._start_pool()

    # -- lifecycle: health, supervision, shutdown --------------------------------

    def alive_count(self) -> int:
        pool = self._pool
        if pool is None:
            return 0
        return sum(1 for p in list(pool._processes.values()) if p.is_alive())

    def healthy(self) -> bool:
        """Every worker process is alive and the pool is usable (what /readyz reports)."""
        pool = self._pool
        if pool is None or self._broken or getattr(pool, "_broken", False):
            return False
        processes = list(pool._processes.values())
        return bool(processes) and all(p.is_alive() for p in processes)

    async def _supervise(self, every: float = 1.0) -> None:
        """Replace a pool whose worker died even when no request is waiting, so readiness recovers."""
        while True:
            await asyncio.sleep(every)
            if self._pool is not None and not self._recovering.locked() and not self.healthy():
                log.warning("a detection worker died; starting a new worker pool")
                self._broken = True
                try:
                    await self._recover()
                except DetectionError as exc:
                    log.error("%s", exc)

    def worker_pids(self) -> list[int]:
        return list(self._pool._processes) if self._pool else []

    async def close(self, timeout: float = 10.0) -> None:
        """Stop the workers: those still busy after `timeout` seconds are killed."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            try:
                await self._dispatcher
            except asyncio.CancelledError:
                pass
            self._dispatcher = None
        self._fail(list(self._queue), "detection engine closed")
        self._queue.clear()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            processes = list(pool._processes.values())
            pool.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + timeout
            for p in processes:
                await asyncio.to_thread(p.join, max(0.0, deadline - time.monotonic()))
            for p in processes:
                if p.is_alive():
                    p.kill()
                    await asyncio.to_thread(p.join, 2.0)
