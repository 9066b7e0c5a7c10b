"""Schema migrations on SQLite: the pending storage/migrations/sqlite/*.sql, all in one write transaction
(idempotent: each version is recorded in schema_migrations and applied once)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from storage.schema import Migration, sqlite_statements
from storage.sqlite.connection import transaction

SQL_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"""


def apply_pending(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply those of `migrations` not yet recorded; their names, in the order applied."""
    applied_now: list[str] = []
    with transaction(conn):
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
