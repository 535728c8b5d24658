"""DetectionEngine: runs the detectors in worker processes.

Detection is CPU-bound; running it on the event loop would stall every other
request behind one large body. Workers load the models once at start-up.
A failed or slow detection raises `DetectionError`, and the caller fails closed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from gateway.detection.analyzer import Analyzer, DetectionSpec
from gateway.detection.finding import Finding

_analyzer: Analyzer | None = None


class DetectionError(Exception):
    """Detection did not complete; the request must not be forwarded."""


def _init_worker() -> None:
    global _analyzer
    _analyzer = Analyzer()


def _analyze(texts: list[str], spec: DetectionSpec) -> list[list[Finding]]:
    assert _analyzer is not None, "worker not initialised"
    return _analyzer.analyze(texts, spec)


def _ready() -> int:
    return os.getpid()


class DetectionEngine:
    def __init__(self, workers: int = 0, timeout_seconds: float = 10.0):
        self.workers = workers or os.cpu_count() or 1
        self.timeout_seconds = timeout_seconds
        self._pool: ProcessPoolExecutor | None = None

    async def start(self) -> None:
        """Start every worker and wait until each has loaded its models."""
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
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
        if self._pool is None:
            raise DetectionError("detection engine is not started")
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, _analyze, texts, spec)
            return await asyncio.wait_for(future, self.timeout_seconds)
        except asyncio.TimeoutError:
            raise DetectionError(f"detection timed out after {self.timeout_seconds}s") from None
        except BrokenProcessPool:
            await self._restart()
            raise DetectionError("a detection worker died") from None
        except Exception as exc:
            raise DetectionError(f"detection failed: {type(exc).__name__}") from None

    async def _restart(self) -> None:
        """A worker died (e.g. out of memory): replace the pool so later requests work."""
        old, self._pool = self._pool, None
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        await self.start()

    def worker_pids(self) -> list[int]:
        return list(self._pool._processes) if self._pool else []

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
