"""MarketStore on an embedded SQLite file: the zero-dependency default when DATABASE_URL is absent.

Where each concern lives:
    store.py         SQLiteStore: every MarketStore operation, in a few lines each
    trade_writes.py  the trade write path: a plain insert in a savepoint, duplicates staged and filtered
    queries.py       the SQL of reads, bars, symbols, coverage and resume points
    connection.py    a thread per connection (writer, reader), WAL pragmas, BEGIN IMMEDIATE transactions
    migrate.py       schema migrations
"""

from storage.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
