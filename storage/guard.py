"""Every store operation goes through one guard: circuit breaker, library-error translation, metrics.

`db_queries_total{operation,status}` counts each operation once (status ok or error, a refused call
included); `db_query_duration_seconds{operation}` times it; the pool gauges are refreshed after each one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from loguru import logger
from prometheus_client import Counter, Histogram

from core.errors import RejectedData, StorageError
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import PlatformMetrics

T = TypeVar("T")

# After a database outage the first trial call goes out this long after the circuit opened: short, because
# the trial is one cheap call and every second open is a second of market data waiting to be stored.
DB_RESET_TIMEOUT_S = 5.0

PoolStats = Callable[[], tuple[int, int]]
"""Returns (connections in the pool, idle connections)."""


def database_breaker(metrics: PlatformMetrics, given: CircuitBreaker | None = None) -> CircuitBreaker:
    """The store's circuit breaker: `given` (tests, or one shared breaker), else the "database" breaker
    that opens on StorageError and tries again after DB_RESET_TIMEOUT_S."""
    if given is not None:
        return given
    return CircuitBreaker(
        "database", failure_exceptions=(StorageError,), reset_timeout=DB_RESET_TIMEOUT_S, metrics=metrics
    )


class OperationGuard:
    """Runs store operations for one database: translates `rejected_errors` (the data itself refused)
    into RejectedData and `library_errors` into StorageError, which the breaker counts as failures;
    CircuitOpenError when the breaker refuses."""

    def __init__(
        self,
        *,
        metrics: PlatformMetrics,
        breaker: CircuitBreaker,
        library_errors: tuple[type[BaseException], ...],
        rejected_errors: tuple[type[BaseException], ...] = (),
        pool_stats: PoolStats,
        backend: str,
    ) -> None:
        self.breaker = breaker
        self._metrics = metrics
        self._library_errors = library_errors
        self._rejected_errors = rejected_errors
        self._pool_stats = pool_stats
        self._log = logger.bind(component="storage", backend=backend)
        self._children: dict[str, tuple[Counter, Counter, Histogram]] = {}

    async def run(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        ok, error, duration = self._bound(operation)
        start = time.perf_counter()
        try:
            result = await self.breaker.call(self._translated, operation, fn)
        except Exception:  # StorageError, CircuitOpenError, or a bug: counted, then raised
            error.inc()
            raise
        finally:
            duration.observe(time.perf_counter() - start)
            self._refresh_pool()
        ok.inc()
        return result

    async def _translated(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except self._rejected_errors as exc:
            self._log.warning("{} refused the data: {}: {}", operation, type(exc).__name__, str(exc)[:300])
            raise RejectedData(f"{operation} refused: {type(exc).__name__}: {exc}") from exc
        except self._library_errors as exc:
            self._log.warning("{} failed: {}: {}", operation, type(exc).__name__, str(exc)[:300])
            raise StorageError(f"{operation} failed: {type(exc).__name__}: {exc}") from exc

    def _bound(self, operation: str) -> tuple[Counter, Counter, Histogram]:
        children = self._children.get(operation)
        if children is None:
            m = self._metrics
            children = (
                m.db_queries.labels(operation, "ok"),
                m.db_queries.labels(operation, "error"),
                m.db_query_duration.labels(operation),
            )
            self._children[operation] = children
        return children

    def _refresh_pool(self) -> None:
        size, idle = self._pool_stats()
        self._metrics.db_connection_pool_size.set(size)
        self._metrics.db_connections_available.set(idle)
