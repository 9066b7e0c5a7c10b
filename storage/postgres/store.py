"""PostgresStore: the MarketStore on PostgreSQL (TimescaleDB hypertables when the extension is available).

Each operation is a few lines here: rows shaped by storage.rows, SQL from queries.py (trade writes from
trade_writes.py, migrations from migrate.py), run on a pooled connection by pool.py. Prices and sizes are
numeric, written from and read back as the exact strings; times are integer ns UTC in and out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from loguru import logger

from core.errors import CircuitOpenError, StorageError
from core.open_gaps import OpenGaps
from core.types import ClosedBar, CoverageEvent, ResumePoint, SymbolInfo, Trade
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import METRICS, PlatformMetrics
from storage.dsn import redact_dsn
from storage.postgres.migrate import TimescalePolicy, migrate_locked
from storage.postgres.pool import PostgresPool
from storage.postgres.queries import (
    SQL_CLAIM_SOURCE,
    SQL_COUNT_TRADES,
    SQL_GAP_EVENTS,
    SQL_INSERT_COVERAGE,
    SQL_LAST_BAR_CLOSE,
    SQL_MARK_INCOMPLETE,
    SQL_RECENT_TRADES,
    SQL_RESUME_POINTS,
    SQL_SELECT_BARS,
    SQL_SELECT_COVERAGE,
    SQL_SELECT_SOURCE,
    SQL_SYMBOLS,
    SQL_TRADES_SINCE,
    SQL_UPSERT_BARS,
    SQL_UPSERT_SYMBOLS,
)
from storage.postgres.trade_writes import create_trade_staging, write_trades
from storage.rows import (
    SOURCE_KEY,
    bar_range_params,
    bar_row,
    coverage_range_params,
    coverage_row,
    new_in_order,
    row_bar,
    row_coverage,
    row_resume,
    row_trade,
    symbol_row,
    trade_row,
)
from storage.source import check_source


class PostgresStore:
    """MarketStore on PostgreSQL at `dsn`; the pool is created on first use (and retried after failure)."""

    def __init__(
        self,
        dsn: str,
        *,
        metrics: PlatformMetrics = METRICS,
        breaker: CircuitBreaker | None = None,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        timescale: bool | None = None,
        policy: TimescalePolicy | None = None,
    ) -> None:
        self._dsn = dsn
        self._metrics = metrics
        self._timescale = timescale
        self._policy = policy or TimescalePolicy()
        self._pool = PostgresPool(
            dsn,
            metrics=metrics,
            breaker=breaker,
            setup=create_trade_staging,
            pool_args={
                "min_size": min_size,
                "max_size": max_size,
                "command_timeout": command_timeout,
                "timeout": connect_timeout,
            },
        )
        self._run = self._pool.run
        self._log = logger.bind(component="storage", backend="postgres", dsn=redact_dsn(dsn))

    @property
    def breaker(self) -> CircuitBreaker:
        return self._pool.breaker

    async def migrate(self) -> None:
        """Apply pending migrations (postgres/, plus timescale/ where the extension is available), each in
        a transaction, under an advisory lock so that concurrent starters apply each exactly once."""
        applied = await self._run("migrate", lambda c: migrate_locked(c, self._timescale, self._policy))
        if applied:
            self._log.info("applied migrations {}", applied)

    async def applied_migrations(self) -> list[int]:
        """Versions recorded in schema_migrations, ascending."""
        rows = await self._run(
            "applied_migrations", lambda c: c.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        )
        return [int(r[0]) for r in rows]

    async def insert_trades(self, trades: Sequence[Trade]) -> list[Trade]:
        """Store trades; return the ones not stored before, in input order (duplicates dropped)."""
        if not trades:
            return []
        rows = [trade_row(t) for t in trades]
        new_keys = await self._run("insert_trades", lambda c: write_trades(c, trades, rows))
        new = new_in_order(trades, new_keys)
        self._metrics.db_rows_written.labels("trades").inc(len(new))
        return new

    async def insert_coverage(self, events: Sequence[CoverageEvent]) -> None:
        if not events:
            return
        rows = [coverage_row(e) for e in events]
        await self._run("insert_coverage", lambda c: c.executemany(SQL_INSERT_COVERAGE, rows))
        self._metrics.db_rows_written.labels("coverage").inc(len(rows))

    async def coverage(
        self, exchange: str, symbol: str, *, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[CoverageEvent]:
        args = coverage_range_params(exchange, symbol, start_ns, end_ns)
        rows = await self._run("select_coverage", lambda c: c.fetch(SQL_SELECT_COVERAGE, *args))
        return [row_coverage(r) for r in rows]

    async def open_gaps(self, exchange: str) -> list[CoverageEvent]:
        rows = await self._run("open_gaps", lambda c: c.fetch(SQL_GAP_EVENTS, exchange))
        return OpenGaps(map(row_coverage, rows)).events(exchange)

    async def resume_points(self, exchange: str) -> list[ResumePoint]:
        rows = await self._run("resume_points", lambda c: c.fetch(SQL_RESUME_POINTS, exchange))
        return [row_resume(r) for r in rows]

    async def upsert_bars(self, bars: Sequence[ClosedBar]) -> None:
        """Insert or replace bars (and their indicators) keyed on (exchange, symbol, timeframe, open_time)."""
        if not bars:
            return
        rows = [bar_row(b) for b in bars]

        async def upsert(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.executemany(SQL_UPSERT_BARS, rows)

        await self._run("upsert_bars", upsert)
        self._metrics.db_rows_written.labels("bars").inc(len(rows))

    async def bars(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 500,
    ) -> list[ClosedBar]:
        """Bars with open_time in [start_ns, end_ns), the most recent `limit`, oldest first."""
        args = bar_range_params(exchange, symbol, timeframe, start_ns, end_ns, limit)
        rows = await self._run("select_bars", lambda c: c.fetch(SQL_SELECT_BARS, *args))
        return [row_bar(r) for r in reversed(rows)]

    async def trades(
        self, exchange: str, symbol: str, *, limit: int = 100, since_ns: int | None = None
    ) -> list[Trade]:
        """Oldest first: the most recent `limit` trades, or (since_ns given) the first `limit` trades with
        ts_event >= since_ns, so that a reader can page forward from the last ts_event it saw."""
        if since_ns is None:
            args: tuple[Any, ...] = (exchange, symbol, max(limit, 0))
            rows = list(
                reversed(await self._run("select_trades", lambda c: c.fetch(SQL_RECENT_TRADES, *args)))
            )
        else:
            args = (exchange, symbol, since_ns, max(limit, 0))
            rows = await self._run("select_trades", lambda c: c.fetch(SQL_TRADES_SINCE, *args))
        return [row_trade(r) for r in rows]

    async def last_bar_close(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        value = await self._run(
            "last_bar_close", lambda c: c.fetchval(SQL_LAST_BAR_CLOSE, exchange, symbol, timeframe)
        )
        return None if value is None else int(value)

    async def mark_incomplete(
        self, bars: Sequence[tuple[str, str, str, int]]
    ) -> list[tuple[str, str, str, int]]:
        if not bars:
            return []
        columns = [list(column) for column in zip(*bars, strict=True)]
        rows = await self._run("mark_incomplete", lambda c: c.fetch(SQL_MARK_INCOMPLETE, *columns))
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    async def count_trades(self, exchange: str, symbol: str, start_ns: int, end_ns: int) -> int:
        args = (exchange, symbol, start_ns, end_ns)
        return int(await self._run("count_trades", lambda c: c.fetchval(SQL_COUNT_TRADES, *args)))

    async def symbols(self) -> list[SymbolInfo]:
        rows = await self._run("select_symbols", lambda c: c.fetch(SQL_SYMBOLS))
        return [SymbolInfo(*r) for r in rows]

    async def upsert_symbols(self, symbols: Sequence[SymbolInfo]) -> None:
        if not symbols:
            return
        rows = [symbol_row(s) for s in symbols]
        await self._run("upsert_symbols", lambda c: c.executemany(SQL_UPSERT_SYMBOLS, rows))
        self._metrics.db_rows_written.labels("symbols").inc(len(rows))

    async def ensure_source(self, source: str) -> None:
        """Record the data source ('simulated' or 'live') the first time; ConfigError if it differs later."""
        check_source(source)

        async def claim(conn: asyncpg.Connection) -> str:
            async with conn.transaction():
                await conn.execute(SQL_CLAIM_SOURCE, SOURCE_KEY, source)
                return str(await conn.fetchval(SQL_SELECT_SOURCE, SOURCE_KEY))

        recorded = await self._run("ensure_source", claim)
        check_source(source, recorded=recorded, where=f"database {redact_dsn(self._dsn)}")

    async def data_source(self) -> str | None:
        """The recorded data source, or None before ensure_source() was first called."""
        value = await self._run("data_source", lambda c: c.fetchval(SQL_SELECT_SOURCE, SOURCE_KEY))
        return None if value is None else str(value)

    async def ping(self) -> bool:
        try:
            return bool(await self._run("ping", lambda c: c.fetchval("SELECT true")))
        except (StorageError, CircuitOpenError):
            return False

    async def close(self) -> None:
        await self._pool.close()
