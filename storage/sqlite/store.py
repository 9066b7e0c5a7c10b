"""SQLiteStore: the MarketStore on an embedded SQLite file, the zero-dependency default when DATABASE_URL is
absent.

Same tables as PostgreSQL, adapted: prices and sizes TEXT (exact strings), times INTEGER ns UTC. Each
operation is a few lines here: rows shaped by storage.rows, SQL from queries.py (trade writes from
trade_writes.py, migrations from migrate.py), run on the writer's or the reader's ConnectionThread
(connection.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from core.errors import CircuitOpenError, StorageError
from core.open_gaps import OpenGaps
from core.types import ClosedBar, CoverageEvent, ResumePoint, SymbolInfo, Trade
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import METRICS, PlatformMetrics
from storage.guard import OperationGuard, database_breaker
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
from storage.schema import load_migrations
from storage.source import check_source
from storage.sqlite.connection import ConnectionThread, transaction
from storage.sqlite.migrate import apply_pending
from storage.sqlite.queries import (
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
from storage.sqlite.trade_writes import create_trade_staging, write_trades

T = TypeVar("T")

# The data itself refused: a CHECK violated, an integer beyond 64 bits, a value of no SQL type.
REJECTED_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    OverflowError,
    sqlite3.InterfaceError,
)


class SQLiteStore:
    """MarketStore on one SQLite file (`path`, or ":memory:" for a private in-memory database).

    Times are integer ns UTC in and out. Operations raise StorageError when SQLite fails and
    CircuitOpenError while the breaker (component "database") is open.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        metrics: PlatformMetrics = METRICS,
        breaker: CircuitBreaker | None = None,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.path = str(path)
        self._metrics = metrics
        self._writer = ConnectionThread(self.path, "sqlite-writer", busy_timeout_s, create_trade_staging)
        # A private in-memory database exists only on its one connection.
        self._reader = (
            self._writer
            if self.path == ":memory:"
            else ConnectionThread(self.path, "sqlite-reader", 10.0, create_trade_staging)
        )
        self._guard = OperationGuard(
            metrics=metrics,
            breaker=database_breaker(metrics, breaker),
            library_errors=(sqlite3.Error, OSError),
            rejected_errors=REJECTED_ERRORS,
            pool_stats=self._pool_stats,
            backend="sqlite",
        )
        self._log = logger.bind(component="storage", backend="sqlite", path=self.path)

    @property
    def breaker(self) -> CircuitBreaker:
        return self._guard.breaker

    def _pool_stats(self) -> tuple[int, int]:
        workers = {id(w): w for w in (self._writer, self._reader)}.values()
        size = sum(1 for w in workers if w.connected and not w.closed)
        busy = sum(1 for w in workers if w.in_flight and not w.closed)
        return size, max(size - busy, 0)

    async def _write(self, operation: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._guard.run(operation, lambda: self._writer.run(fn))

    async def _read(self, operation: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._guard.run(operation, lambda: self._reader.run(fn))

    async def migrate(self) -> None:
        """Apply pending storage/migrations/sqlite/*.sql in one write transaction (idempotent)."""
        migrations = load_migrations("sqlite")
        applied = await self._write("migrate", lambda c: apply_pending(c, migrations))
        if applied:
            self._log.info("applied migrations {}", applied)

    async def applied_migrations(self) -> list[int]:
        """Versions recorded in schema_migrations, ascending."""
        rows = await self._read(
            "applied_migrations",
            lambda c: c.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall(),
        )
        return [int(r[0]) for r in rows]

    async def insert_trades(self, trades: Sequence[Trade]) -> list[Trade]:
        """Store trades; return the ones not stored before, in input order (duplicates dropped)."""
        if not trades:
            return []
        rows = [trade_row(t) for t in trades]

        new = new_in_order(trades, await self._write("insert_trades", lambda c: write_trades(c, rows)))
        self._metrics.db_rows_written.labels("trades").inc(len(new))
        return new

    async def insert_coverage(self, events: Sequence[CoverageEvent]) -> None:
        if not events:
            return
        rows = [coverage_row(e) for e in events]

        def insert(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(SQL_INSERT_COVERAGE, rows)

        await self._write("insert_coverage", insert)
        self._metrics.db_rows_written.labels("coverage").inc(len(rows))

    async def coverage(
        self, exchange: str, symbol: str, *, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[CoverageEvent]:
        args = coverage_range_params(exchange, symbol, start_ns, end_ns)
        rows = await self._read("select_coverage", lambda c: c.execute(SQL_SELECT_COVERAGE, args).fetchall())
        return [row_coverage(r) for r in rows]

    async def open_gaps(self, exchange: str) -> list[CoverageEvent]:
        rows = await self._read(
            "open_gaps", lambda c: c.execute(SQL_GAP_EVENTS, (exchange, exchange)).fetchall()
        )
        return OpenGaps(map(row_coverage, rows)).events(exchange)

    async def resume_points(self, exchange: str) -> list[ResumePoint]:
        rows = await self._read(
            "resume_points", lambda c: c.execute(SQL_RESUME_POINTS, (exchange,)).fetchall()
        )
        return [row_resume(r) for r in rows]

    async def upsert_bars(self, bars: Sequence[ClosedBar]) -> None:
        """Insert or replace bars (and their indicators) keyed on (exchange, symbol, timeframe, open_time)."""
        if not bars:
            return
        now = time.time_ns()
        rows = [(*bar_row(b), now) for b in bars]

        def upsert(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(SQL_UPSERT_BARS, rows)

        await self._write("upsert_bars", upsert)
        self._metrics.db_rows_written.labels("bars").inc(len(rows))

    async def mark_incomplete(
        self, bars: Sequence[tuple[str, str, str, int]]
    ) -> list[tuple[str, str, str, int]]:
        if not bars:
            return []
        now = time.time_ns()

        def mark(conn: sqlite3.Connection) -> list[tuple[str, str, str, int]]:
            with transaction(conn):
                return [key for key in bars if conn.execute(SQL_MARK_INCOMPLETE, (now, *key)).rowcount]

        return await self._write("mark_incomplete", mark)

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
        params = bar_range_params(exchange, symbol, timeframe, start_ns, end_ns, limit)
        rows = await self._read("select_bars", lambda c: c.execute(SQL_SELECT_BARS, params).fetchall())
        return [row_bar(r) for r in reversed(rows)]

    async def trades(
        self, exchange: str, symbol: str, *, limit: int = 100, since_ns: int | None = None
    ) -> list[Trade]:
        """Oldest first: the most recent `limit` trades, or (since_ns given) the first `limit` trades with
        ts_event >= since_ns, so that a reader can page forward from the last ts_event it saw."""
        if since_ns is None:
            sql, params = SQL_RECENT_TRADES, (exchange, symbol, max(limit, 0))
            rows = await self._read("select_trades", lambda c: c.execute(sql, params).fetchall())
            rows.reverse()
        else:
            sql, params2 = SQL_TRADES_SINCE, (exchange, symbol, since_ns, max(limit, 0))
            rows = await self._read("select_trades", lambda c: c.execute(sql, params2).fetchall())
        return [row_trade(r) for r in rows]

    async def last_bar_close(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        params = (exchange, symbol, timeframe)
        row = await self._read("last_bar_close", lambda c: c.execute(SQL_LAST_BAR_CLOSE, params).fetchone())
        return None if row is None else int(row[0])

    async def count_trades(self, exchange: str, symbol: str, start_ns: int, end_ns: int) -> int:
        params = (exchange, symbol, start_ns, end_ns)
        row = await self._read("count_trades", lambda c: c.execute(SQL_COUNT_TRADES, params).fetchone())
        return int(row[0])

    async def symbols(self) -> list[SymbolInfo]:
        rows = await self._read("select_symbols", lambda c: c.execute(SQL_SYMBOLS).fetchall())
        return [SymbolInfo(*r) for r in rows]

    async def upsert_symbols(self, symbols: Sequence[SymbolInfo]) -> None:
        if not symbols:
            return
        rows = [symbol_row(s) for s in symbols]

        def upsert(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(SQL_UPSERT_SYMBOLS, rows)

        await self._write("upsert_symbols", upsert)
        self._metrics.db_rows_written.labels("symbols").inc(len(rows))

    async def ensure_source(self, source: str) -> None:
        """Record the data source ('simulated' or 'live') the first time; ConfigError if it differs later."""
        check_source(source)

        def claim(conn: sqlite3.Connection) -> Any:
            with transaction(conn):
                conn.execute(SQL_CLAIM_SOURCE, (SOURCE_KEY, source))
                row = conn.execute(SQL_SELECT_SOURCE, (SOURCE_KEY,)).fetchone()
            return row[0]

        check_source(source, recorded=await self._write("ensure_source", claim), where=self.path)

    async def data_source(self) -> str | None:
        """The recorded data source, or None before ensure_source() was first called."""
        row = await self._read(
            "data_source",
            lambda c: c.execute(SQL_SELECT_SOURCE, (SOURCE_KEY,)).fetchone(),
        )
        return None if row is None else str(row[0])

    async def ping(self) -> bool:
        try:
            await self._read("ping", lambda c: c.execute("SELECT 1").fetchone())
        except (StorageError, CircuitOpenError):
            return False
        return True

    async def close(self) -> None:
        await self._writer.close()
        await self._reader.close()
        self._metrics.db_connection_pool_size.set(0)
        self._metrics.db_connections_available.set(0)
