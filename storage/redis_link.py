"""The Redis connection shared by the Redis bus and cache: client options, error translation, breaker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.errors import PlatformError
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import PlatformMetrics

T = TypeVar("T")
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


def redis_client(url: str, client_name: str) -> aioredis.Redis:
    """A pooled client returning bytes; connects lazily and reconnects on the next command after a drop.
    `client_name` shows in CLIENT LIST, so operators can tell the platform's connections apart."""
    return aioredis.from_url(
        url,
        client_name=client_name,
        decode_responses=False,
        socket_connect_timeout=5.0,
        health_check_interval=15,
    )


def redis_breaker(error: type[PlatformError], metrics: PlatformMetrics) -> CircuitBreaker:
    return CircuitBreaker("redis", failure_exceptions=(error,), reset_timeout=5.0, metrics=metrics)


async def guarded(
    breaker: CircuitBreaker, error: type[PlatformError], what: str, fn: Callable[[], Awaitable[T]]
) -> T:
    """Run one Redis operation through `breaker`, translating Redis/socket errors into `error`."""

    async def translated() -> T:
        try:
            return await fn()
        except REDIS_ERRORS as exc:
            raise error(f"redis {what} failed: {type(exc).__name__}: {exc}") from exc

    return await breaker.call(translated)
