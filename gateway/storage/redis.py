"""Redis: one asyncio client (its own connection pool) per store, with timeouts,
so an unreachable server fails the request instead of hanging it."""

from __future__ import annotations

from typing import Any

TIMEOUT_SECONDS = 5


def open_redis(url: str) -> Any:
    import redis.asyncio as aioredis

    return aioredis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS)
