"""PostgreSQL-specific behaviour: concurrent migrations, outages, the circuit breaker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from core.errors import CircuitOpenError, StorageError
from monitoring.circuit_breaker import CircuitBreaker, CircuitState
from monitoring.metrics import PlatformMetrics
from storage.postgres import PostgresStore
from storage.schema import load_migrations
from storage.sqlite import SQLiteStore
from tests.conftest import PG_ADMIN_URL, free_port
from tests.storage.conftest import make_trade
from tests.storage.tcp_proxy import TcpProxy


async def test_concurrent_migrations_apply_each_version_once(pg_url: str, metrics: PlatformMetrics) -> None:
    stores = [PostgresStore(pg_url, metrics=metrics, max_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        conn = await asyncpg.connect(pg_url)
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        await conn.close()
        shipped = [(m.version, m.name) for m in load_migrations("postgres")]
        assert [(r["version"], r["name"]) for r in rows] == shipped
        assert shipped[:3] == [(1, "initial"), (2, "bar_features"), (3, "venue_neutral_ids")]
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_sqlite_migrations(tmp_path: Path, metrics: PlatformMetrics) -> None:
    stores = [SQLiteStore(tmp_path / "m.db", metrics=metrics) for _ in range(3)]
    await asyncio.gather(*(s.migrate() for s in stores))
    assert await stores[0].applied_migrations() == [m.version for m in load_migrations("sqlite")]
    for s in stores:
        await s.close()


async def test_recovers_after_backends_are_terminated(pg_url: str, metrics: PlatformMetrics) -> None:
    store = PostgresStore(pg_url, metrics=metrics, min_size=3, max_size=3)
    try:
        await _terminate_and_recover(store, pg_url)
    finally:
        await store.close()


async def _terminate_and_recover(store: PostgresStore, pg_url: str) -> None:
    await store.migrate()
    await store.insert_trades([make_trade(1)])
    admin = await asyncpg.connect(PG_ADMIN_URL)
    dbname = pg_url.rsplit("/", 1)[1]
    killed = await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1", dbname
    )
    await admin.close()
    assert killed >= 1
    await asyncio.sleep(0.2)  # the server's FATAL notice reaches the idle connections
    outcomes = []
    for i in range(2, 6):
        try:
            outcomes.append(len(await store.insert_trades([make_trade(i)])))
        except StorageError:
            outcomes.append(-1)
    # A dead idle connection is retried transparently; a call racing the termination may still fail.
    assert outcomes.count(-1) <= 1 and outcomes[-1] == 1
    assert len(await store.trades("binance", "BTC-USDT")) == outcomes.count(1) + 1


async def test_outage_opens_breaker_then_recovers(pg_url: str, metrics: PlatformMetrics) -> None:
    proxy = TcpProxy("127.0.0.1", 5432, free_port())
    await proxy.start()
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    breaker = CircuitBreaker(
        "database",
        failure_threshold=2,
        reset_timeout=0.3,
        failure_exceptions=(StorageError,),
        metrics=metrics,
    )
    store = PostgresStore(url, metrics=metrics, breaker=breaker, connect_timeout=1.0)
    try:
        await store.migrate()
        await proxy.stop()
        for i in range(2):
            with pytest.raises(StorageError):
                await store.insert_trades([make_trade(10 + i)])
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            await store.trades("binance", "BTC-USDT")
        assert not await store.ping()
        r = metrics.registry
        assert r.get_sample_value("db_queries_total", {"operation": "insert_trades", "status": "error"}) == 2
        assert r.get_sample_value("circuit_breaker_state", {"component": "database"}) == 1
        await proxy.start()
        await asyncio.sleep(0.35)
        assert await store.insert_trades([make_trade(1)]) == [make_trade(1)]
        assert breaker.state is CircuitState.CLOSED
    finally:
        await store.close()
        await proxy.stop()


async def test_unreachable_database_raises_storage_error(metrics: PlatformMetrics) -> None:
    store = PostgresStore(
        f"postgresql://postgres@127.0.0.1:{free_port()}/x", metrics=metrics, connect_timeout=1
    )
    with pytest.raises(StorageError):
        await store.migrate()
    await store.close()
