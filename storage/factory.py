"""Choose the storage adapters from settings: PostgreSQL when DATABASE_URL is set (else embedded SQLite),
Redis when REDIS_URL is set (else the in-process bus and cache). URLs are logged with passwords redacted.

The returned types are the concrete unions: they satisfy core.ports (MarketStore, TradeBus, MarketCache)
and also expose the extras the composition root needs (migrate/ensure_source, flush, ready...).
"""

from __future__ import annotations

from pathlib import Path

from loguru import logger

from core.ports import MarketCache, MarketStore, TradeBus
from monitoring.metrics import METRICS, PlatformMetrics
from storage.dead_letters import DeadLetterFile
from storage.dsn import redact_dsn
from storage.memory_bus import InProcessBus
from storage.memory_cache import MemoryCache
from storage.postgres import PostgresStore, TimescalePolicy
from storage.redis_bus import RedisStreamBus
from storage.redis_cache import RedisCache
from storage.spool import Spool
from storage.sqlite import SQLiteStore

SqlStore = PostgresStore | SQLiteStore
Bus = RedisStreamBus | InProcessBus
Cache = RedisCache | MemoryCache

_log = logger.bind(component="storage")


def open_store(
    database_url: str | None,
    sqlite_path: Path,
    metrics: PlatformMetrics = METRICS,
    *,
    policy: TimescalePolicy | None = None,
) -> SqlStore:
    """PostgresStore for a postgres:// URL, else SQLiteStore at `sqlite_path`. Nothing connects until the
    first operation; call `await store.migrate()` (idempotent) before use."""
    if database_url:
        _log.info("store: PostgreSQL at {}", redact_dsn(database_url))
        return PostgresStore(database_url, metrics=metrics, policy=policy)
    _log.info("store: SQLite at {}", sqlite_path)
    return SQLiteStore(sqlite_path, metrics=metrics)


def open_bus(
    redis_url: str | None,
    *,
    metrics: PlatformMetrics = METRICS,
    prefix: str = "cryptostock",
    group: str = "processor",
    shard_index: int = 0,
    shard_count: int = 1,
    max_pending_trades: int = 100_000,
    spool: Spool | None = None,
    dead_letter_file: DeadLetterFile | None = None,
) -> Bus:
    """RedisStreamBus when `redis_url` is set, else an InProcessBus holding `max_pending_trades`. What a
    closing bus could not deliver goes to `spool` (see storage.spool)."""
    if redis_url:
        _log.info("bus: Redis Streams at {} (shard {}/{})", redact_dsn(redis_url), shard_index, shard_count)
        return RedisStreamBus(
            redis_url,
            prefix=prefix,
            group=group,
            shard_index=shard_index,
            shard_count=shard_count,
            max_pending_trades=max_pending_trades,
            metrics=metrics,
            spool=spool,
        )
    _log.info("bus: in-process")
    return InProcessBus(
        max_trades=max_pending_trades, metrics=metrics, spool=spool, dead_letter_file=dead_letter_file
    )


def open_cache(
    redis_url: str | None, *, metrics: PlatformMetrics = METRICS, prefix: str = "cryptostock"
) -> Cache:
    """RedisCache when `redis_url` is set, else a MemoryCache."""
    if redis_url:
        _log.info("cache: Redis at {}", redact_dsn(redis_url))
        return RedisCache(redis_url, prefix=prefix, metrics=metrics)
    _log.info("cache: in-memory")
    return MemoryCache(metrics=metrics)


def _ports(store: SqlStore, bus: Bus, cache: Cache) -> tuple[MarketStore, TradeBus, MarketCache]:
    """Never called: mypy proves here that every adapter satisfies its port in core.ports."""
    return store, bus, cache
