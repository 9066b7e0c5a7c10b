"""Schema migrations on PostgreSQL: storage/migrations/postgres/, plus timescale/ where the extension is
available, each applied once in its own transaction under an advisory lock shared by every migrating
process; and the TimescaleDB policy intervals the timescale migration reads when it is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from storage.schema import load_migrations

MIGRATION_LOCK_ID = 0x6372_7970_746F  # pg_advisory_lock key shared by every migrating process
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


async def migrate_locked(
    conn: asyncpg.Connection, timescale: bool | None, policy: TimescalePolicy
) -> list[str]:
    """Apply the pending migrations under the advisory lock; their names, in the order applied.
    `timescale` None: use the timescale/ migrations when the server has the extension."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        return await _apply_pending(conn, timescale, policy)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)


async def _apply_pending(
    conn: asyncpg.Connection, timescale: bool | None, policy: TimescalePolicy
) -> list[str]:
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
            for name, value in policy.settings().items():
                await conn.execute("SELECT set_config($1, $2, true)", name, value)
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name
            )
        applied.append(f"{m.dialect}/{m.version:03d}_{m.name}")
    return applied
