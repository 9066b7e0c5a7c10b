"""The SQL of every SQLite store operation but the trade write path (trade_writes.py): trade and bar
reads, bar upserts, symbols, coverage events, where collectors resume, the data source.

Prices and sizes are TEXT (the exact strings), times INTEGER ns UTC.
"""

from __future__ import annotations

from core.open_gaps import OPEN_GAPS_LOOKBACK_NS
from storage.rows import BAR_COLUMNS, BAR_KEY_COLUMNS, COVERAGE_COLUMNS, SYMBOL_COLUMNS, TRADE_COLUMNS

_TRADE_COLS = ", ".join(TRADE_COLUMNS)
_BAR_COLS = ", ".join((*BAR_COLUMNS, "updated_at"))
_BAR_MARKS = ", ".join("?" * (len(BAR_COLUMNS) + 1))
_BAR_UPDATES = ", ".join(
    f"{c} = excluded.{c}" for c in (*BAR_COLUMNS, "updated_at") if c not in BAR_KEY_COLUMNS
)

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
# storage.postgres.queries.SQL_RESUME_POINTS).
SQL_RESUME_POINTS = """SELECT s.exchange, s.raw_symbol, t.trade_id, t.sequence, t.ts_event FROM symbols s
    JOIN trades t ON t.rowid = (SELECT rowid FROM trades WHERE exchange = s.exchange AND symbol = s.symbol
        ORDER BY ts_event DESC, ts_recv DESC LIMIT 1)
    WHERE s.exchange = ?"""
SQL_SELECT_SOURCE = "SELECT value FROM platform_meta WHERE key = ?"
SQL_CLAIM_SOURCE = "INSERT INTO platform_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
