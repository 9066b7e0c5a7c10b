"""The trade write path on SQLite: one plain INSERT of the batch within a savepoint; only when that hits a
trade already stored (a redelivery after a crash, an overlapping backfill; the unique index of migration
006 keys on (exchange, symbol, trade_id) whatever the event time) is the batch staged in the temp table
trades_in and moved by INSERT ... ON CONFLICT DO NOTHING RETURNING, which tells which trades were new.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from storage.rows import TRADE_COLUMNS, TradeKey
from storage.sqlite.connection import transaction

_TRADE_COLS = ", ".join(TRADE_COLUMNS)
_TRADE_MARKS = ", ".join("?" * len(TRADE_COLUMNS))

SQL_TEMP_TRADES = """CREATE TEMP TABLE IF NOT EXISTS trades_in (
    exchange TEXT, symbol TEXT, raw_symbol TEXT, trade_id TEXT, sequence INTEGER, price TEXT, quantity TEXT,
    side TEXT, ts_event INTEGER, ts_recv INTEGER, backfilled INTEGER)"""
SQL_STAGE_TRADES = f"INSERT INTO temp.trades_in ({_TRADE_COLS}) VALUES ({_TRADE_MARKS})"
SQL_INSERT_TRADES = f"INSERT INTO trades ({_TRADE_COLS}) VALUES ({_TRADE_MARKS})"
# "WHERE true" resolves SQLite's parsing ambiguity between a SELECT's join and the ON CONFLICT clause.
SQL_INSERT_NEW_TRADES = f"""INSERT INTO trades ({_TRADE_COLS})
    SELECT {_TRADE_COLS} FROM temp.trades_in WHERE true ORDER BY rowid
    ON CONFLICT DO NOTHING RETURNING exchange, symbol, trade_id"""


def create_trade_staging(conn: sqlite3.Connection) -> None:
    """Create the connection's temp table trades_in (once, when the connection opens)."""
    conn.execute(SQL_TEMP_TRADES)


def write_trades(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[TradeKey] | None:
    """Store the trade_row()s `rows` in one transaction: None when every trade was new, else the keys of
    those that were (as the PostgreSQL store does)."""
    with transaction(conn):
        conn.execute("SAVEPOINT plain_insert")
        try:
            conn.executemany(SQL_INSERT_TRADES, rows)
            return None
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO plain_insert")
        finally:
            conn.execute("RELEASE plain_insert")
        conn.executemany(SQL_STAGE_TRADES, rows)
        keys: list[TradeKey] = conn.execute(SQL_INSERT_NEW_TRADES).fetchall()
        conn.execute("DELETE FROM temp.trades_in")
    return keys
