"""MarketStore on PostgreSQL (TimescaleDB hypertables when the extension is available), via asyncpg.

Where each concern lives:
    store.py         PostgresStore: every MarketStore operation, in a few lines each
    trade_writes.py  the hot trade write path: COPY into a temp table, INSERT ... SELECT, duplicates
    queries.py       the SQL of reads, bars, symbols, coverage and resume points
    pool.py          the connection pool: created on first use, timestamptz codec, guard, retry, close
    migrate.py       schema migrations under an advisory lock; TimescalePolicy
"""

from storage.postgres.migrate import TimescalePolicy
from storage.postgres.store import PostgresStore

__all__ = ["PostgresStore", "TimescalePolicy"]
