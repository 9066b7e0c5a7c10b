"""The stores' families: database operations (outcome, duration), the connection pool, rows
written; the latest-value cache's hits, misses and size.

Each family is created once per `PlatformMetrics` (monitoring.metrics), on its registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitoring.metrics.histogram import LATENCY_BUCKETS, SymbolFreeHistogram


class StorageMetrics:
    """Part of `PlatformMetrics`: creates these families on registry `r`."""

    def __init__(self, r: CollectorRegistry) -> None:
        # Database
        self.db_queries = Counter(
            "db_queries", "Database operations by outcome", ["operation", "status"], registry=r
        )
        self.db_query_duration = SymbolFreeHistogram(
            "db_query_duration_seconds",
            "Database operation duration",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_connection_pool_size = Gauge(
            "db_connection_pool_size", "Connections in the database pool", registry=r
        )
        self.db_connections_available = Gauge(
            "db_connections_available", "Idle connections available in the database pool", registry=r
        )
        self.db_rows_written = Counter(
            "db_rows_written", "Rows written to the database", ["table"], registry=r
        )
        # Cache
        self.cache_hits = Counter("cache_hits", "Cache hits", ["cache"], registry=r)
        self.cache_misses = Counter("cache_misses", "Cache misses", ["cache"], registry=r)
        self.cache_size_bytes = Gauge("cache_size_bytes", "Bytes held by the latest-value cache", registry=r)
