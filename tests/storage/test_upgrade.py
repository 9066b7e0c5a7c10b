"""Upgrading databases created by an earlier schema: every row survives, unchanged but for the new forms.

Each test builds a database exactly as schema versions 1-2 left it (the migration files of those versions,
applied as the store applied them, and rows written in that schema's types), then lets today's store
migrate it and reads everything back through the store.
"""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import msgspec
import pytest

from core.types import Bar, Coverage, Side, Trade
from monitoring.metrics import PlatformMetrics
from storage.postgres import PostgresStore
from storage.schema import load_migrations, sqlite_statements
from storage.sqlite import SQLiteStore

T0 = 1_700_000_000_000_000_000
OLD_VERSIONS = (1, 2)
BIG_ID = 9_007_199_254_740_993  # above 2^53: would not survive a trip through a float
ROWS = 300
OLD_TRADE_COLUMNS = (
    "exchange, symbol, raw_symbol, trade_id, price, quantity, side, ts_event, ts_recv, backfilled"
)
OLD_BAR_COLUMNS = """exchange, symbol, timeframe, open_time, close_time, open, high, low, close, volume,
    quote_volume, vwap, trade_count, buy_volume, sell_volume, first_trade_id, last_trade_id, rsi_14,
    log_return"""
OLD_BAR_VALUES = "0.45, 30150.0, 67000.1, 300, 0.3, 0.15, {}, {}, 55.5, 0.01"  # volume .. first/last id ..
PG_TIME = "'epoch'::timestamptz + (${}::bigint / 1000) * interval '1 microsecond'"  # ns -> timestamptz


def old_migrations(dialect: str) -> list[tuple[int, str, str]]:
    return [(m.version, m.name, m.sql) for m in load_migrations(dialect) if m.version in OLD_VERSIONS]


def old_trade_rows() -> list[tuple[object, ...]]:
    """Rows as schema 1-2 stored them: integer ids, ts in ns (SQLite) or timestamptz (PostgreSQL)."""
    return [
        ("binance", "BTC-USDT", "BTCUSDT", BIG_ID + i, f"67000.{i:03d}0", "0.00150000",
         "buy" if i % 3 else "sell", T0 + i * 1_000_000, T0 + i * 1_000_000 + 5_000, i % 7 == 0)
        for i in range(ROWS)
    ]  # fmt: skip


def assert_trades_upgraded(trades: list[Trade]) -> None:
    assert len(trades) == ROWS
    for i, trade in enumerate(trades):
        assert (trade.trade_id, trade.sequence) == (str(BIG_ID + i), BIG_ID + i)
        assert (trade.price, trade.quantity) == (f"67000.{i:03d}0", "0.00150000")
        assert trade.side is (Side.BUY if i % 3 else Side.SELL)
        assert trade.ts_event == T0 + i * 1_000_000
        assert trade.ts_recv == T0 + i * 1_000_000 + 5_000
        assert trade.backfilled is (i % 7 == 0)


async def test_sqlite_database_of_schema_2_upgrades_without_losing_a_row(
    tmp_path: Path, metrics: PlatformMetrics
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "applied_at INTEGER NOT NULL)")  # fmt: skip
    for version, name, sql in old_migrations("sqlite"):
        for statement in sqlite_statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time_ns()))
    conn.executemany(
        f"INSERT INTO trades ({OLD_TRADE_COLUMNS}) VALUES ({', '.join('?' * 10)})", old_trade_rows()
    )
    conn.execute(
        f"INSERT INTO bars ({OLD_BAR_COLUMNS}, updated_at) VALUES ('binance', 'BTC-USDT', '1m', ?, ?, "
        f"'67000.0000', '67000.2990', '67000.0000', '67000.2990', {OLD_BAR_VALUES.format('?', '?')}, 1)",
        (T0, T0 + 60_000_000_000, BIG_ID, BIG_ID + ROWS - 1),
    )
    conn.commit()
    conn.close()

    store = SQLiteStore(path, metrics=metrics)
    try:
        await store.migrate()
        assert await store.applied_migrations() == [m.version for m in load_migrations("sqlite")]
        assert_trades_upgraded(await store.trades("binance", "BTC-USDT", limit=10_000))
        [closed] = await store.bars("binance", "BTC-USDT", "1m")
        bar = closed.bar
        assert (bar.first_trade_id, bar.last_trade_id) == (str(BIG_ID), str(BIG_ID + ROWS - 1))
        assert (bar.open, bar.high, bar.trade_count) == ("67000.0000", "67000.2990", 300)
        assert_volumes_upgraded(bar)
        assert (closed.indicators.rsi_14, closed.features.log_return) == (55.5, 0.01)
        # the upgraded table keeps its key: a stored trade is still a duplicate
        [again] = await store.trades("binance", "BTC-USDT", limit=1)
        assert await store.insert_trades([again]) == []
    finally:
        await store.close()


async def test_postgres_database_of_schema_2_upgrades_without_losing_a_row(
    pg_url: str, metrics: PlatformMetrics
) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        for version, name, sql in old_migrations("postgres"):
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
        values = (
            f"$1, $2, $3, $4, $5::numeric, $6::numeric, $7, {PG_TIME.format(8)}, {PG_TIME.format(9)}, $10"
        )
        await conn.executemany(
            f"INSERT INTO trades ({OLD_TRADE_COLUMNS}) VALUES ({values})", old_trade_rows()
        )
        await conn.execute(
            f"INSERT INTO bars ({OLD_BAR_COLUMNS}) VALUES ('binance', 'BTC-USDT', '1m', {PG_TIME.format(1)}, "
            f"{PG_TIME.format(2)}, 67000.0000, 67000.2990, 67000.0000, 67000.2990, "
            f"{OLD_BAR_VALUES.format('$3', '$4')})",
            T0, T0 + 60_000_000_000, BIG_ID, BIG_ID + ROWS - 1,
        )  # fmt: skip
    finally:
        await conn.close()

    store = PostgresStore(pg_url, metrics=metrics, timescale=False)
    try:
        await store.migrate()
        assert await store.applied_migrations() == [m.version for m in load_migrations("postgres")]
        assert_trades_upgraded(await store.trades("binance", "BTC-USDT", limit=10_000))
        [closed] = await store.bars("binance", "BTC-USDT", "1m")
        bar = closed.bar
        assert (bar.first_trade_id, bar.last_trade_id) == (str(BIG_ID), str(BIG_ID + ROWS - 1))
        assert (bar.open, bar.high, bar.trade_count) == ("67000.0000", "67000.2990", 300)
        assert_volumes_upgraded(bar)
        assert (closed.indicators.rsi_14, closed.features.log_return) == (55.5, 0.01)
        [again] = await store.trades("binance", "BTC-USDT", limit=1)
        assert await store.insert_trades([again]) == []
    finally:
        await store.close()


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_every_migration_has_a_counterpart_in_the_other_dialect(dialect: str) -> None:
    other = "postgres" if dialect == "sqlite" else "sqlite"
    assert [(m.version, m.name) for m in load_migrations(dialect)] == [
        (m.version, m.name) for m in load_migrations(other)
    ]


def assert_volumes_upgraded(bar: Bar) -> None:
    """Float sums become decimal text (15 significant digits); nobody checked an old bar's coverage."""
    volumes = (bar.volume, bar.quote_volume, bar.buy_volume, bar.sell_volume)
    assert tuple(Decimal(v) for v in volumes) == (Decimal("0.45"), 30150, Decimal("0.3"), Decimal("0.15"))
    assert (bar.coverage, bar.min_sequence, bar.sequenced_trades, bar.first_trade_ns) == (
        Coverage.UNVERIFIABLE,
        None,
        0,
        0,
    )


# Schema 5 stored the same trade id at two event times as two trades. Version A (received first) stays in
# trades; version B (received later) moves, unchanged, to trade_duplicates.
SCHEMA_5 = 5
DUP_COLUMNS = (
    "exchange, symbol, raw_symbol, trade_id, sequence, price, quantity, side, ts_event, ts_recv, backfilled"
)


def schema_5_rows() -> list[tuple[object, ...]]:
    """ROWS distinct trades, then a second version (3 ms later, received later) of every tenth one, and
    the same ids on another symbol (another trade)."""
    rows: list[tuple[object, ...]] = []
    for i in range(ROWS):
        ts = T0 + i * 1_000_000
        rows.append(
            ("binance", "BTC-USDT", "BTCUSDT", str(i), i, f"1.{i}", "2", "buy", ts, ts + 5_000, False)
        )
    for i in range(0, ROWS, 10):
        ts = T0 + i * 1_000_000 + 3_000_000_000
        rows.append(
            ("binance", "BTC-USDT", "BTCUSDT", str(i), i, f"9.{i}", "2", "sell", ts, ts + 9_000, True)
        )
    rows.append(("binance", "ETH-USDT", "ETHUSDT", "0", 0, "3.5", "1", "buy", T0, T0 + 1, False))
    return rows


async def test_sqlite_upgrade_to_one_identity_per_trade_moves_later_versions_aside(
    tmp_path: Path, metrics: PlatformMetrics
) -> None:
    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "applied_at INTEGER NOT NULL)")  # fmt: skip
    for m in load_migrations("sqlite"):
        if m.version <= SCHEMA_5:
            for statement in sqlite_statements(m.sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (m.version, m.name, 1))
    conn.executemany(f"INSERT INTO trades ({DUP_COLUMNS}) VALUES ({', '.join('?' * 11)})", schema_5_rows())
    conn.commit()
    conn.close()

    store = SQLiteStore(path, metrics=metrics)
    try:
        await store.migrate()
        await assert_one_identity_per_trade(store)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        moved = conn.execute(f"SELECT {DUP_COLUMNS} FROM trade_duplicates ORDER BY rowid").fetchall()
    finally:
        conn.close()
    assert [(*r[:10], bool(r[10])) for r in moved] == schema_5_rows()[ROWS:-1]


async def test_postgres_upgrade_to_one_identity_per_trade_moves_later_versions_aside(
    pg_url: str, metrics: PlatformMetrics
) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        for m in load_migrations("postgres"):
            if m.version <= SCHEMA_5:
                await conn.execute(m.sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                   m.version, m.name)  # fmt: skip
        times = f"{PG_TIME.format(9)}, {PG_TIME.format(10)}"
        values = f"$1, $2, $3, $4, $5, $6::numeric, $7::numeric, $8, {times}, $11"
        await conn.executemany(f"INSERT INTO trades ({DUP_COLUMNS}) VALUES ({values})", schema_5_rows())
    finally:
        await conn.close()

    store = PostgresStore(pg_url, metrics=metrics, timescale=False)
    try:
        await store.migrate()
        await assert_one_identity_per_trade(store)
    finally:
        await store.close()
    conn = await asyncpg.connect(pg_url)
    try:
        moved = await conn.fetch(
            "SELECT exchange, symbol, raw_symbol, trade_id, sequence, price::text, quantity::text, side, "
            "(extract(epoch from ts_event) * 1e6)::bigint * 1000, (extract(epoch from ts_recv) * 1e6)::bigint"
            " * 1000, backfilled FROM trade_duplicates ORDER BY sequence"
        )
        assert await conn.fetchval("SELECT count(*) FROM trade_ids") == ROWS + 2  # with the new one
    finally:
        await conn.close()
    assert [tuple(r) for r in moved] == schema_5_rows()[ROWS:-1]


async def assert_one_identity_per_trade(store: SQLiteStore | PostgresStore) -> None:
    assert SCHEMA_5 + 1 in await store.applied_migrations()
    kept = await store.trades("binance", "BTC-USDT", limit=10_000)
    assert [(t.trade_id, t.ts_event, t.price) for t in kept] == [
        (str(i), T0 + i * 1_000_000, f"1.{i}") for i in range(ROWS)
    ]
    assert len(await store.trades("binance", "ETH-USDT")) == 1
    # from now on a stored id at another time is a duplicate, and new ids are stored
    again = kept[5]
    later = msgspec.structs.replace(again, ts_event=again.ts_event + 7_000_000)
    assert await store.insert_trades([later]) == []
    fresh = msgspec.structs.replace(again, trade_id="new", sequence=None)
    assert await store.insert_trades([fresh, later]) == [fresh]
