"""The asyncpg connection pool and its lifecycle: created on first use (and retried after a failure), every
connection given the timestamptz codec, each operation run through the OperationGuard, the pool closed.

Times cross the wire as integer ns UTC: the codec converts them at PostgreSQL's microsecond precision, so
sub-microsecond digits are truncated (floored) on the way in; no datetime objects are made.

An outage is survivable: operations raise StorageError (or CircuitOpenError while the "database" breaker
is open), and the pool replaces dead connections on the next acquire once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from loguru import logger

from core.errors import StorageError
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import PlatformMetrics
from storage.dsn import redact_dsn
from storage.guard import OperationGuard, database_breaker

T = TypeVar("T")
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 (PostgreSQL's epoch) in Unix microseconds
LIBRARY_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # e.g. a connection the server terminated while idle
    OSError,
    TimeoutError,
)

# What PostgreSQL (or asyncpg encoding a value) refuses about the data itself, not the connection: a
# number out of a column's range, text that is not a number, a violated CHECK.
REJECTED_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    OverflowError,
    ValueError,
)

ConnectionSetup = Callable[[asyncpg.Connection], Awaitable[None]]
"""Run once on each new pooled connection, after the codec is set."""


def _micros(ns: int) -> tuple[int]:
    return (ns // 1000 - PG_EPOCH_US,)


def _nanos(value: tuple[int]) -> int:
    return (value[0] + PG_EPOCH_US) * 1000


class PostgresPool:
    """The connections to the PostgreSQL at `dsn`; the pool is created on first use."""

    def __init__(
        self,
        dsn: str,
        *,
        metrics: PlatformMetrics,
        breaker: CircuitBreaker | None,
        setup: ConnectionSetup,
        pool_args: dict[str, Any],
    ) -> None:
        self._dsn = dsn
        self._metrics = metrics
        self._setup = setup
        self._pool_args = pool_args
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._closed = False
        self._guard = OperationGuard(
            metrics=metrics,
            breaker=database_breaker(metrics, breaker),
            library_errors=LIBRARY_ERRORS,
            rejected_errors=REJECTED_ERRORS,
            pool_stats=self._pool_stats,
            backend="postgres",
        )
        self._log = logger.bind(component="storage", backend="postgres", dsn=redact_dsn(dsn))

    @property
    def breaker(self) -> CircuitBreaker:
        return self._guard.breaker

    def _pool_stats(self) -> tuple[int, int]:
        if self._pool is None or self._closed:
            return 0, 0
        return self._pool.get_size(), self._pool.get_idle_size()

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        await conn.set_type_codec(
            "timestamptz", schema="pg_catalog", encoder=_micros, decoder=_nanos, format="tuple"
        )
        await self._setup(conn)

    async def _get_pool(self) -> asyncpg.Pool:
        if self._closed:
            raise StorageError("the PostgreSQL store is closed")
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, init=self._init_connection, **self._pool_args
                    )
                    self._log.info("connected to PostgreSQL")
        return self._pool

    async def run(self, operation: str, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`fn` on a pooled connection, through the guard (StorageError, CircuitOpenError, metrics)."""

        async def attempt() -> T:
            pool = await self._get_pool()
            for _ in range(pool.get_max_size()):
                try:
                    async with pool.acquire() as conn:
                        return await fn(conn)
                except asyncpg.exceptions.InternalClientError as exc:
                    # A pooled connection the server terminated while idle fails client-side, before
                    # anything is sent; the pool drops it, so retrying on another connection is safe.
                    self._log.info("retrying {} on a fresh connection: {}", operation, exc)
            async with pool.acquire() as conn:
                return await fn(conn)

        return await self._guard.run(operation, attempt)

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=5.0)
            except LIBRARY_ERRORS:
                pool.terminate()
        self._metrics.db_connection_pool_size.set(0)
        self._metrics.db_connections_available.set(0)
