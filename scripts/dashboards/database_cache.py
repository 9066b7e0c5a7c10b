"""The Database & Cache dashboard (database-cache.json)."""

from __future__ import annotations

from dashboards.model import RI, Panel, dashboard


def database_cache() -> dict[str, object]:
    p99 = f"histogram_quantile(0.99, sum by (operation, le) (rate(db_query_duration_seconds_bucket[{RI}])))"
    panels = [
        Panel(
            "Query latency p95",
            "p95 per database operation; alert DatabaseQueryLatencyHigh over 500ms.",
            [("operation:db_query_duration_seconds:p95", "{{operation}}")],
            "s",
        ),
        Panel("Query latency p99", "p99 per database operation.", [(p99, "{{operation}}")], "s"),
        Panel(
            "Queries per second",
            "Database operations per second by outcome.",
            [(f"sum by (operation, status) (rate(db_queries_total[{RI}]))", "{{operation}} {{status}}")],
            "ops",
        ),
        Panel(
            "Query error ratio",
            "Share of failed database operations; alert DatabaseQueryErrors over 1%.",
            [("job:db_query_errors:ratio_rate5m", "{{job}}")],
            "percentunit",
        ),
        Panel(
            "Connection pool",
            "Connections in the pool and idle ones; alert DatabasePoolExhausted when none is idle.",
            [("sum(db_connection_pool_size)", "pool size"), ("sum(db_connections_available)", "available")],
        ),
        Panel(
            "Rows written per second",
            "Rows written per table.",
            [(f"sum by (table) (rate(db_rows_written_total[{RI}]))", "{{table}}")],
            "ops",
        ),
        Panel(
            "Cache hit rate",
            "Share of cache lookups that hit; alert CacheHitRateLow under 50%.",
            [("cache:cache_hit_ratio:rate5m", "{{cache}}")],
            "percentunit",
            defaults={"min": 0, "max": 1},
        ),
        Panel(
            "Cache lookups per second",
            "Hits and misses per cache.",
            [
                ("cache:cache_hits:rate5m", "hits {{cache}}"),
                ("cache:cache_misses:rate5m", "misses {{cache}}"),
            ],
            "ops",
        ),
        Panel(
            "Cache size",
            "Bytes held by the latest-value cache.",
            [("sum(cache_size_bytes)", "bytes")],
            "bytes",
            width=8,
        ),
        Panel(
            "Redis memory",
            "Memory used by Redis (and its limit when set).",
            [
                ("redis_memory_used_bytes", "used {{instance}}"),
                ("redis_memory_max_bytes", "max {{instance}}"),
            ],
            "bytes",
            width=8,
            source="redis-exporter",
        ),
        Panel(
            "Redis clients",
            "Clients connected to Redis.",
            [("redis_connected_clients", "{{instance}}")],
            width=8,
            source="redis-exporter",
        ),
        Panel(
            "PostgreSQL backends",
            "Connections per database.",
            [("sum by (datname) (pg_stat_database_numbackends)", "{{datname}}")],
            source="postgres-exporter",
        ),
        Panel(
            "PostgreSQL up",
            "1 when the exporter reaches PostgreSQL.",
            [("pg_up", "{{instance}}")],
            source="postgres-exporter",
        ),
    ]
    return dashboard(
        "cryptostock-database-cache",
        "cryptostock / Database & Cache",
        "Query latency, connection pool, cache hit rate, Redis and PostgreSQL.",
        panels,
    )
