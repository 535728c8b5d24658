"""How a store's blocking calls leave the event loop: its own single thread.

One thread per store, not `asyncio.to_thread`: the store's calls run in the
order they were made (audit appends keep request order), and a slow disk or
database stalls that store only, not the default executor everyone shares.

`GroupCommit` is how the audit log and the ledger write: what arrives while
the thread commits waits, and then goes in together as one transaction.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class StoreThread:
    def __init__(self, name: str):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._submit(fn, *args)

    async def run_shielded(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Finishes even if the caller is cancelled (a record must be written at shutdown)."""
        return await asyncio.shield(self._submit(fn, *args))

    def submit_shielded(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn` and return at once: it runs even if nobody waits for it."""
        self._executor.submit(fn, *args)

    async def close(self) -> None:
        """Wait for every queued call, without blocking the loop."""
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)


class GroupCommit(Generic[T]):
    """Writes of one store committed in groups, on its thread.

    `add` queues an item and, if no flush is queued, one flush; the flush
    commits everything pending (at most `max_batch` at a time) with one call
    of `commit`. No timer holds an item back: a lone item is committed at
    once, and an item waits at most for the group being committed before it.
    `add` returns once its item is committed (or raises what `commit` raised:
    none of that group was written), and is shielded, so a request cancelled
    at shutdown still gets its write. The loop is woken once per group.
    """

    def __init__(self, thread: StoreThread, commit: Callable[[Sequence[T]], object], max_batch: int) -> None:
        self._thread, self._commit, self._max_batch = thread, commit, max_batch
        self._pending: list[tuple[T, asyncio.Future]] = []
        self._lock = threading.Lock()
        self._queued = False

    async def add(self, item: T) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        with self._lock:
            self._pending.append((item, done))
            queue = not self._queued
            self._queued = True
        if queue:  # one flush queued at a time; what arrives meanwhile joins the next group
            self._thread.submit_shielded(self._flush, loop)
        await asyncio.shield(done)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while True:
                with self._lock:
                    group, self._pending = self._pending[:self._max_batch], self._pending[self._max_batch:]
                    if not group:
                        self._queued = False
                        return
                try:
                    self._commit([item for item, _ in group])
                    error = None
                except Exception as exc:  # none of the group was written: each waiting caller learns it
                    error = exc
                loop.call_soon_threadsafe(settle, [done for _, done in group], error)
        except BaseException:  # the loop is gone (shutdown): later adds queue a flush of their own
            with self._lock:
                self._queued = False
            raise


def settle(waiting: list[asyncio.Future], exc: BaseException | None) -> None:
    """On the loop: each waiting future gets None, or `exc` (those already done are left)."""
    for done in waiting:
        if done.done():
            continue
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)
