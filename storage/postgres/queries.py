"""The SQL of every PostgreSQL store operation but the trade write path (trade_writes.py) and migrations
(migrate.py): trade and bar reads, bar upserts, symbols, coverage events and where collectors resume.

Prices and sizes are read back as text (the exact strings written); times are timestamptz, which the
connection's codec (pool.py) turns into integer ns.
"""

from __future__ import annotations

from core.open_gaps import OPEN_GAPS_LOOKBACK_NS
from storage.rows import (
    BAR_COLUMNS,
    BAR_KEY_COLUMNS,
    COVERAGE_COLUMNS,
    DECIMAL_BAR_FIELDS,
    SYMBOL_COLUMNS,
    TRADE_COLUMNS,
)

_TRADE_READ = ", ".join(f"{c}::text" if c in ("price", "quantity") else c for c in TRADE_COLUMNS)
_BAR_READ = ", ".join(f"{c}::text" if c in DECIMAL_BAR_FIELDS else c for c in BAR_COLUMNS)
_BAR_MARKS = ", ".join(f"${i}" for i in range(1, len(BAR_COLUMNS) + 1))
_BAR_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in BAR_COLUMNS if c not in BAR_KEY_COLUMNS)

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
SQL_SELECT_SOURCE = "SELECT value FROM platform_meta WHERE key = $1"
SQL_CLAIM_SOURCE = "INSERT INTO platform_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
