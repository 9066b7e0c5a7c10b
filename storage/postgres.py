"""MarketStore on PostgreSQL (TimescaleDB hypertables when the extension is available), via asyncpg.

Times: integer ns UTC inside; every pooled connection gets a timestamptz codec that converts ints at
the wire (no datetime objects), at PostgreSQL's microsecond precision: sub-microsecond digits are
truncated (floored) on the way in. Prices and sizes are numeric, written from and read back as the
exact strings. Trades are written by COPY into a per-connection temp table, then moved by one plain
INSERT ... SELECT, which also records each trade's identity (exchange, symbol, trade_id) in trade_ids:
the same id at another event time is the same trade. Only when that hits a key already stored (a
redelivery after a crash, an overlapping backfill) is the batch moved again, in the same transaction,
by INSERT ... ON CONFLICT DO NOTHING RETURNING, which tells which trades were new. The plain insert
costs the server about half as much as the de-duplicating one, and duplicates are the exception.

An outage is survivable: operations raise StorageError (or CircuitOpenError while the "database"
breaker is open), and the pool replaces dead connections on the next acquire once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from loguru import logger

from core.errors import CircuitOpenError, StorageError
from core.open_gaps import OPEN_GAPS_LOOKBACK_NS, OpenGaps
from core.types import ClosedBar, CoverageEvent, ResumePoint, SymbolInfo, Trade
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import METRICS, PlatformMetrics
from storage.dsn import redact_dsn
from storage.guard import DB_RESET_TIMEOUT_S, OperationGuard
from storage.rows import (
    BAR_COLUMNS,
    BAR_KEY_COLUMNS,
    COVERAGE_COLUMNS,
    DECIMAL_BAR_FIELDS,
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
    trade_key,
    trade_row,
)
from storage.schema import load_migrations
from storage.source import check_source

T = TypeVar("T")
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 (PostgreSQL's epoch) in Unix microseconds
MIGRATION_LOCK_ID = 0x6372_7970_746F  # pg_advisory_lock key shared by every migrating process
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

_TRADE_COLS = ", ".join(TRADE_COLUMNS)
_TRADE_READ = ", ".join(f"{c}::text" if c in ("price", "quantity") else c for c in TRADE_COLUMNS)
_BAR_READ = ", ".join(f"{c}::text" if c in DECIMAL_BAR_FIELDS else c for c in BAR_COLUMNS)
_BAR_MARKS = ", ".join(f"${i}" for i in range(1, len(BAR_COLUMNS) + 1))
_BAR_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in BAR_COLUMNS if c not in BAR_KEY_COLUMNS)

# The staging table takes prices as text and times as integer ns: the server parses numeric and converts
# times faster than the client encodes them (about 0.5 us of client CPU per trade saved on the times).
SQL_TEMP_TRADES = """CREATE TEMP TABLE IF NOT EXISTS trades_in (
    exchange text, symbol text, raw_symbol text, trade_id text, sequence bigint, price text, quantity text,
    side text, ts_event bigint, ts_recv bigint, backfilled boolean) ON COMMIT DELETE ROWS"""
_STAGED_AS = {
    "price": "price::numeric",
    "quantity": "quantity::numeric",
    # ns -> timestamptz at microsecond precision, truncated like the codec (times are positive)
    "ts_event": "'epoch'::timestamptz + (ts_event / 1000) * interval '1 microsecond'",
    "ts_recv": "'epoch'::timestamptz + (ts_recv / 1000) * interval '1 microsecond'",
}
_TRADE_STAGED = ", ".join(_STAGED_AS.get(c, c) for c in TRADE_COLUMNS)
_STAGED_TS_EVENT = _STAGED_AS["ts_event"]
# A trade's identity is (exchange, symbol, trade_id) whatever its event time: trade_ids (a plain table,
# migration 006) holds it, because a hypertable's unique key must include ts_event. Both tables are written
# by one statement, so a trade is in both or in neither.
SQL_INSERT_TRADES = f"""WITH ids AS (INSERT INTO trade_ids (exchange, symbol, trade_id, ts_event)
        SELECT exchange, symbol, trade_id, {_STAGED_TS_EVENT} FROM trades_in)
    INSERT INTO trades ({_TRADE_COLS}) SELECT {_TRADE_STAGED} FROM trades_in"""
# The staged batch holds each identity once (insert_trades removes repeats within a batch first).
SQL_INSERT_NEW_TRADES = f"""WITH new_ids AS (INSERT INTO trade_ids (exchange, symbol, trade_id, ts_event)
        SELECT exchange, symbol, trade_id, {_STAGED_TS_EVENT} FROM trades_in
        ON CONFLICT DO NOTHING RETURNING exchange, symbol, trade_id)
    INSERT INTO trades ({_TRADE_COLS}) SELECT {_TRADE_STAGED}
        FROM trades_in JOIN new_ids USING (exchange, symbol, trade_id)
    ON CONFLICT DO NOTHING RETURNING exchange, symbol, trade_id"""
SQL_UPSERT_BARS = f"""INSERT INTO bars ({", ".join(BAR_COLUMNS)}, updated_at) VALUES ({_BAR_MARKS}, now())
    ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET {_BAR_UPDATES}, updated_at = now()"""
SQL_SELECT_BARS = f"""SELECT {_BAR_READ} FROM bars
    WHERE exchange = $1 AND symbol = $2 AND timeframe = $3 AND open_time >= $4 AND open_time < $5
    ORDER BY open_time DESC LIMIT $6"""
SQL_RECENT_TRADES = f"""SELECT {_TRADE_READ} FROM trades WHERE exchange = $1 AND symbol = $2
    ORDER BY ts_event DESC, ts_recv DESC, sequence DESC, trade_id DESC LIMIT $3"""
SQL_TRADES_SINCE = f"""SELECT {_TRADE_READ} FROM trades WHERE exchange = $1 AND symbol = $2
    AND ts_event >= $3 ORDER BY ts_event, ts_recv, sequence, trade_id LIMIT $4"""
SQL_LAST_BAR_CLOSE = """SELECT close_time FROM bars WHERE exchange = $1 AND symbol = $2 AND timeframe = $3
    ORDER BY open_time DESC LIMIT 1"""
SQL_MARK_INCOMPLETE = """UPDATE bars b SET coverage = 'incomplete', updated_at = now()
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
        AS k(exchange, symbol, timeframe, open_time)
    WHERE b.exchange = k.exchange AND b.symbol = k.symbol AND b.timeframe = k.timeframe
        AND b.open_time = k.open_time AND b.coverage <> 'incomplete'
    RETURNING b.exchange, b.symbol, b.timeframe, b.open_time"""
SQL_COUNT_TRADES = """SELECT count(*) FROM trades WHERE exchange = $1 AND symbol = $2
    AND ts_event >= $3 AND ts_event < $4"""
SQL_SYMBOLS = f"SELECT {', '.join(SYMBOL_COLUMNS)} FROM symbols ORDER BY exchange, symbol"
SQL_UPSERT_SYMBOLS = f"""INSERT INTO symbols ({", ".join(SYMBOL_COLUMNS)}) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (exchange, symbol) DO UPDATE SET raw_symbol = excluded.raw_symbol,
    base = excluded.base, quote = excluded.quote"""
_COVERAGE_COLS = ", ".join(COVERAGE_COLUMNS)
SQL_INSERT_COVERAGE = f"""INSERT INTO coverage ({_COVERAGE_COLS})
    VALUES ({", ".join(f"${i}" for i in range(1, len(COVERAGE_COLUMNS) + 1))}) ON CONFLICT DO NOTHING"""
SQL_SELECT_COVERAGE = f"""SELECT {_COVERAGE_COLS} FROM coverage
    WHERE exchange = $1 AND symbol = $2 AND end_ns >= $3 AND start_ns < $4 ORDER BY start_ns, recorded_ns"""
# Gap events with their resolutions, in the order they were recorded: what is still open (core.open_gaps)
SQL_GAP_EVENTS = f"""SELECT {_COVERAGE_COLS} FROM coverage
    WHERE exchange = $1 AND kind IN ('gap', 'repaired', 'abandoned') AND first_sequence IS NOT NULL
        AND recorded_ns >= (SELECT max(recorded_ns) FROM coverage WHERE exchange = $1)
            - {OPEN_GAPS_LOOKBACK_NS}
    ORDER BY recorded_ns, CASE kind WHEN 'gap' THEN 0 ELSE 1 END"""
# The newest stored trade of each symbol of an exchange (by event time, then receipt): where a restarted
# collector resumes. A later sequence stored slightly earlier by event time only makes the repair fetch a
# few trades twice (the store drops them as duplicates).
SQL_RESUME_POINTS = """SELECT s.exchange, s.raw_symbol, t.trade_id, t.sequence, t.ts_event FROM symbols s
    CROSS JOIN LATERAL (SELECT trade_id, sequence, ts_event FROM trades
        WHERE exchange = s.exchange AND symbol = s.symbol ORDER BY ts_event DESC, ts_recv DESC LIMIT 1) t
    WHERE s.exchange = $1"""
SQL_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"""
SQL_HAS_TIMESCALE = "SELECT exists(SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"


@dataclass(frozen=True)
class TimescalePolicy:
    """TimescaleDB policy intervals (PostgreSQL interval text; None disables that policy).

    Read by the timescale migration when it is applied; changing them later needs a new migration.
    """

    trades_compress_after: str | None = "7 days"
    trades_retain: str | None = "90 days"
    bars_compress_after: str | None = "30 days"
    bars_retain: str | None = None

    def settings(self) -> dict[str, str]:
        return {
            "cryptostock.trades_compress_after": self.trades_compress_after or "",
            "cryptostock.trades_retain": self.trades_retain or "",
            "cryptostock.bars_compress_after": self.bars_compress_after or "",
            "cryptostock.bars_retain": self.bars_retain or "",
        }


def _micros(ns: int) -> tuple[int]:
    return (ns // 1000 - PG_EPOCH_US,)


def _nanos(value: tuple[int]) -> int:
    return (value[0] + PG_EPOCH_US) * 1000


def _first_of_each_identity(trades: Sequence[Trade], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows of the first trade of each identity, in input order (all of them when none repeats)."""
    seen: set[TradeKey] = set()
    out: list[tuple[Any, ...]] = []
    for t, row in zip(trades, rows, strict=True):
        key = trade_key(t)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=_micros, decoder=_nanos, format="tuple"
    )
    await conn.execute(SQL_TEMP_TRADES)


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
        self._pool_args: dict[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "command_timeout": command_timeout,
            "timeout": connect_timeout,
        }
        self._timescale = timescale
        self._policy = policy or TimescalePolicy()
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._closed = False
        self._guard = OperationGuard(
            metrics=metrics,
            breaker=breaker
            or CircuitBreaker(
                "database",
                failure_exceptions=(StorageError,),
                reset_timeout=DB_RESET_TIMEOUT_S,
                metrics=metrics,
            ),
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

    async def _get_pool(self) -> asyncpg.Pool:
        if self._closed:
            raise StorageError("the PostgreSQL store is closed")
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, init=_init_connection, **self._pool_args
                    )
                    self._log.info("connected to PostgreSQL")
        return self._pool

    async def _run(self, operation: str, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
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

    async def migrate(self) -> None:
        """Apply pending migrations (postgres/, plus timescale/ where the extension is available), each in
        a transaction, under an advisory lock so that concurrent starters apply each exactly once."""

        async def apply(conn: asyncpg.Connection) -> list[str]:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
            try:
                return await self._apply_pending(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)

        applied = await self._run("migrate", apply)
        if applied:
            self._log.info("applied migrations {}", applied)

    async def _apply_pending(self, conn: asyncpg.Connection) -> list[str]:
        timescale = self._timescale
        if timescale is None:
            timescale = bool(await conn.fetchval(SQL_HAS_TIMESCALE))
        migrations = load_migrations(*(("postgres", "timescale") if timescale else ("postgres",)))
        await conn.execute(SQL_MIGRATIONS_TABLE)
        done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[str] = []
        for m in migrations:
            if m.version in done:
                continue
            async with conn.transaction():
                for name, value in self._policy.settings().items():
                    await conn.execute("SELECT set_config($1, $2, true)", name, value)
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name
                )
            applied.append(f"{m.dialect}/{m.version:03d}_{m.name}")
        return applied

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

        async def insert(conn: asyncpg.Connection) -> list[asyncpg.Record] | None:
            """None when every trade was new, else the keys of those that were."""
            async with conn.transaction():
                await conn.copy_records_to_table("trades_in", records=rows, columns=TRADE_COLUMNS)
                try:
                    async with conn.transaction():  # a savepoint: a key violation undoes only this
                        await conn.execute(SQL_INSERT_TRADES)
                    return None
                except asyncpg.UniqueViolationError:
                    pass
                first = _first_of_each_identity(trades, rows)
                if len(first) < len(rows):  # a trade repeated within the batch: stage its first only
                    await conn.execute("DELETE FROM trades_in")
                    await conn.copy_records_to_table("trades_in", records=first, columns=TRADE_COLUMNS)
                return await conn.fetch(SQL_INSERT_NEW_TRADES)

        new = new_in_order(trades, await self._run("insert_trades", insert))
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
                await conn.execute(
                    "INSERT INTO platform_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    SOURCE_KEY,
                    source,
                )
                return str(await conn.fetchval("SELECT value FROM platform_meta WHERE key = $1", SOURCE_KEY))

        recorded = await self._run("ensure_source", claim)
        check_source(source, recorded=recorded, where=f"database {redact_dsn(self._dsn)}")

    async def data_source(self) -> str | None:
        """The recorded data source, or None before ensure_source() was first called."""
        value = await self._run(
            "data_source", lambda c: c.fetchval("SELECT value FROM platform_meta WHERE key = $1", SOURCE_KEY)
        )
        return None if value is None else str(value)

    async def ping(self) -> bool:
        try:
            return bool(await self._run("ping", lambda c: c.fetchval("SELECT true")))
        except (StorageError, CircuitOpenError):
            return False

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
