"""MarketStore on an embedded SQLite file: the zero-dependency default when DATABASE_URL is absent.

Same tables as PostgreSQL, adapted: prices and sizes TEXT (exact strings), times INTEGER ns UTC. WAL
journal, synchronous=NORMAL. sqlite3 calls never run on the event loop: one thread owns the writer
connection (every write and migration), another owns a reader connection (WAL lets reads proceed while
a write commits). Several processes may share the file; writes serialize on SQLite's own lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from core.errors import CircuitOpenError, StorageError
from core.open_gaps import OPEN_GAPS_LOOKBACK_NS, OpenGaps
from core.types import ClosedBar, CoverageEvent, ResumePoint, SymbolInfo, Trade
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import METRICS, PlatformMetrics
from storage.guard import DB_RESET_TIMEOUT_S, OperationGuard
from storage.rows import (
    BAR_COLUMNS,
    BAR_KEY_COLUMNS,
    COVERAGE_COLUMNS,
    SOURCE_KEY,
    SYMBOL_COLUMNS,
    TRADE_COLUMNS,
    TradeKey,
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
from storage.schema import load_migrations, sqlite_statements
from storage.source import check_source

T = TypeVar("T")

# The data itself refused: a CHECK violated, an integer beyond 64 bits, a value of no SQL type.
REJECTED_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    OverflowError,
    sqlite3.InterfaceError,
)

_TRADE_COLS = ", ".join(TRADE_COLUMNS)
_TRADE_MARKS = ", ".join("?" * len(TRADE_COLUMNS))
_BAR_COLS = ", ".join((*BAR_COLUMNS, "updated_at"))
_BAR_MARKS = ", ".join("?" * (len(BAR_COLUMNS) + 1))
_BAR_UPDATES = ", ".join(
    f"{c} = excluded.{c}" for c in (*BAR_COLUMNS, "updated_at") if c not in BAR_KEY_COLUMNS
)

SQL_TEMP_TRADES = """CREATE TEMP TABLE IF NOT EXISTS trades_in (
    exchange TEXT, symbol TEXT, raw_symbol TEXT, trade_id TEXT, sequence INTEGER, price TEXT, quantity TEXT,
    side TEXT, ts_event INTEGER, ts_recv INTEGER, backfilled INTEGER)"""
SQL_STAGE_TRADES = f"INSERT INTO temp.trades_in ({_TRADE_COLS}) VALUES ({_TRADE_MARKS})"
SQL_INSERT_NEW_TRADES = f"INSERT INTO trades ({_TRADE_COLS}) VALUES ({_TRADE_MARKS})"
# "WHERE true" resolves SQLite's parsing ambiguity between a SELECT's join and the ON CONFLICT clause.
SQL_INSERT_TRADES = f"""INSERT INTO trades ({_TRADE_COLS})
    SELECT {_TRADE_COLS} FROM temp.trades_in WHERE true ORDER BY rowid
    ON CONFLICT DO NOTHING RETURNING exchange, symbol, trade_id"""
SQL_UPSERT_BARS = f"""INSERT INTO bars ({_BAR_COLS}) VALUES ({_BAR_MARKS})
    ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET {_BAR_UPDATES}"""
SQL_SELECT_BARS = f"""SELECT {", ".join(BAR_COLUMNS)} FROM bars
    WHERE exchange = ? AND symbol = ? AND timeframe = ? AND open_time >= ? AND open_time < ?
    ORDER BY open_time DESC LIMIT ?"""
SQL_RECENT_TRADES = f"""SELECT {_TRADE_COLS} FROM trades WHERE exchange = ? AND symbol = ?
    ORDER BY ts_event DESC, ts_recv DESC, sequence DESC, trade_id DESC LIMIT ?"""
SQL_TRADES_SINCE = f"""SELECT {_TRADE_COLS} FROM trades WHERE exchange = ? AND symbol = ? AND ts_event >= ?
    ORDER BY ts_event, ts_recv, sequence, trade_id LIMIT ?"""
SQL_LAST_BAR_CLOSE = """SELECT close_time FROM bars WHERE exchange = ? AND symbol = ? AND timeframe = ?
    ORDER BY open_time DESC LIMIT 1"""
SQL_MARK_INCOMPLETE = """UPDATE bars SET coverage = 'incomplete', updated_at = ?
    WHERE exchange = ? AND symbol = ? AND timeframe = ? AND open_time = ? AND coverage <> 'incomplete'"""
SQL_COUNT_TRADES = """SELECT count(*) FROM trades WHERE exchange = ? AND symbol = ? AND ts_event >= ?
    AND ts_event < ?"""
SQL_SYMBOLS = f"SELECT {', '.join(SYMBOL_COLUMNS)} FROM symbols ORDER BY exchange, symbol"
SQL_UPSERT_SYMBOLS = f"""INSERT INTO symbols ({", ".join(SYMBOL_COLUMNS)}) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (exchange, symbol) DO UPDATE SET raw_symbol = excluded.raw_symbol,
    base = excluded.base, quote = excluded.quote"""
_COVERAGE_COLS = ", ".join(COVERAGE_COLUMNS)
SQL_INSERT_COVERAGE = f"""INSERT INTO coverage ({_COVERAGE_COLS})
    VALUES ({", ".join("?" * len(COVERAGE_COLUMNS))}) ON CONFLICT DO NOTHING"""
SQL_SELECT_COVERAGE = f"""SELECT {_COVERAGE_COLS} FROM coverage
    WHERE exchange = ? AND symbol = ? AND end_ns >= ? AND start_ns < ? ORDER BY start_ns, recorded_ns"""
# Gap events with their resolutions, in the order they were recorded: what is still open (core.open_gaps)
SQL_GAP_EVENTS = f"""SELECT {_COVERAGE_COLS} FROM coverage
    WHERE exchange = ? AND kind IN ('gap', 'repaired', 'abandoned') AND first_sequence IS NOT NULL
        AND recorded_ns >= (SELECT max(recorded_ns) FROM coverage WHERE exchange = ?)
            - {OPEN_GAPS_LOOKBACK_NS}
    ORDER BY recorded_ns, CASE kind WHEN 'gap' THEN 0 ELSE 1 END"""
# The newest stored trade of each symbol of an exchange: where a restarted collector resumes (see
# storage.postgres.SQL_RESUME_POINTS).
SQL_RESUME_POINTS = """SELECT s.exchange, s.raw_symbol, t.trade_id, t.sequence, t.ts_event FROM symbols s
    JOIN trades t ON t.rowid = (SELECT rowid FROM trades WHERE exchange = s.exchange AND symbol = s.symbol
        ORDER BY ts_event DESC, ts_recv DESC LIMIT 1)
    WHERE s.exchange = ?"""
SQL_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"""


class _Worker:
    """One thread owning one sqlite3 connection; every call on that connection runs in that thread."""

    def __init__(self, path: str, name: str, busy_timeout_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None
        self.in_flight = 0
        self.closed = False

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self.closed:
            raise StorageError("the SQLite store is closed")
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)
        finally:
            self.in_flight -= 1

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = _connect(self._path, self._busy_timeout_s)
        return fn(self._conn)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_conn)
        self._executor.shutdown(wait=False)

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _connect(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    # Switching a new file to WAL needs an exclusive lock and SQLite answers "database is locked" at once,
    # without its busy handler, while another connection opens the same new file: retry until the timeout.
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.005)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(SQL_TEMP_TRADES)
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE takes the write lock up front, so concurrent writers wait (busy timeout), not fail."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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
        self._writer = _Worker(self.path, "sqlite-writer", busy_timeout_s)
        # A private in-memory database exists only on its one connection.
        self._reader = self._writer if self.path == ":memory:" else _Worker(self.path, "sqlite-reader", 10.0)
        self._guard = OperationGuard(
            metrics=metrics,
            breaker=breaker
            or CircuitBreaker(
                "database",
                failure_exceptions=(StorageError,),
                reset_timeout=DB_RESET_TIMEOUT_S,
                metrics=metrics,
            ),
            library_errors=(sqlite3.Error, OSError),
            # the data itself refused: a CHECK violated, an integer beyond 64 bits, a value of no SQL type
            rejected_errors=(
                sqlite3.IntegrityError,
                sqlite3.DataError,
                OverflowError,
                sqlite3.InterfaceError,
            ),
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

        def apply(conn: sqlite3.Connection) -> list[str]:
            applied_now: list[str] = []
            with _transaction(conn):
                conn.execute(SQL_MIGRATIONS_TABLE)
                done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
                for m in migrations:
                    if m.version in done:
                        continue
                    for statement in sqlite_statements(m.sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (m.version, m.name, time.time_ns()),
                    )
                    applied_now.append(f"{m.version:03d}_{m.name}")
            return applied_now

        applied = await self._write("migrate", apply)
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

        def insert(conn: sqlite3.Connection) -> list[TradeKey] | None:
            """None when every trade was new, else the keys of those that were (as in PostgresStore)."""
            with _transaction(conn):
                conn.execute("SAVEPOINT plain_insert")
                try:
                    conn.executemany(SQL_INSERT_NEW_TRADES, rows)
                    return None
                except sqlite3.IntegrityError:
                    conn.execute("ROLLBACK TO plain_insert")
                finally:
                    conn.execute("RELEASE plain_insert")
                conn.executemany(SQL_STAGE_TRADES, rows)
                keys = conn.execute(SQL_INSERT_TRADES).fetchall()
                conn.execute("DELETE FROM temp.trades_in")
            return keys

        new = new_in_order(trades, await self._write("insert_trades", insert))
        self._metrics.db_rows_written.labels("trades").inc(len(new))
        return new

    async def insert_coverage(self, events: Sequence[CoverageEvent]) -> None:
        if not events:
            return
        rows = [coverage_row(e) for e in events]

        def insert(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
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
            with _transaction(conn):
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
            with _transaction(conn):
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
            with _transaction(conn):
                conn.executemany(SQL_UPSERT_SYMBOLS, rows)

        await self._write("upsert_symbols", upsert)
        self._metrics.db_rows_written.labels("symbols").inc(len(rows))

    async def ensure_source(self, source: str) -> None:
        """Record the data source ('simulated' or 'live') the first time; ConfigError if it differs later."""
        check_source(source)

        def claim(conn: sqlite3.Connection) -> Any:
            with _transaction(conn):
                conn.execute(
                    "INSERT INTO platform_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                    (SOURCE_KEY, source),
                )
                row = conn.execute("SELECT value FROM platform_meta WHERE key = ?", (SOURCE_KEY,)).fetchone()
            return row[0]

        check_source(source, recorded=await self._write("ensure_source", claim), where=self.path)

    async def data_source(self) -> str | None:
        """The recorded data source, or None before ensure_source() was first called."""
        row = await self._read(
            "data_source",
            lambda c: c.execute("SELECT value FROM platform_meta WHERE key = ?", (SOURCE_KEY,)).fetchone(),
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
