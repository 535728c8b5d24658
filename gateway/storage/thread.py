"""How a store's blocking calls leave the event loop: its own single thread.

One thread per store, not `asyncio.to_thread`: the store's calls run in the
order they were made (audit appends keep request order), and a slow disk or
database stalls that store only, not the default executor everyone shares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


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
