"""insert_trades throughput: PostgreSQL (COPY + de-duplicating INSERT) at 1k/10k-row batches, and SQLite.

Usage: .venv/bin/python bench/bench_storage.py [--rows 200000] [--admin-url postgresql://postgres@127.0.0.1/test]
Creates and drops a scratch PostgreSQL database; SQLite runs in a temporary directory. Prints rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from prometheus_client import CollectorRegistry

from core.types import Side, Trade
from monitoring.metrics import PlatformMetrics
from storage.postgres import PostgresStore
from storage.sqlite import SQLiteStore

T0 = 1_700_000_000_000_000_000


def make_trades(n: int, offset: int) -> list[Trade]:
    symbols = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")
    return [
        Trade(
            "binance",
            symbols[i % 4],
            symbols[i % 4].replace("-", ""),
            str(offset + i),
            offset + i,
            f"{67000 + i % 1000}.{i % 100:02d}",
            "0.00150000",
            Side.BUY if i % 2 else Side.SELL,
            T0 + (offset + i) * 1_000_000,
            T0 + (offset + i) * 1_000_000 + 5_000_000,
        )
        for i in range(n)
    ]


async def measure(store: PostgresStore | SQLiteStore, rows: int, batch: int, offset: int) -> float:
    trades = make_trades(rows, offset)
    batches = [trades[i : i + batch] for i in range(0, rows, batch)]
    start = time.perf_counter()
    stored = 0
    for b in batches:
        stored += len(await store.insert_trades(b))
    elapsed = time.perf_counter() - start
    assert stored == rows, f"stored {stored} of {rows}"
    return rows / elapsed


async def bench_postgres(admin_url: str, rows: int) -> None:
    name = f"cs_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        store = PostgresStore(
            f"{admin_url.rsplit('/', 1)[0]}/{name}", metrics=PlatformMetrics(CollectorRegistry())
        )
        await store.migrate()
        offset = 0
        for batch in (1_000, 10_000):
            rate = await measure(store, rows, batch, offset)
            offset += rows
            print(f"postgres insert_trades batch={batch:>6}: {rate:>10,.0f} rows/s ({rows:,} rows)")
        dup = make_trades(10_000, 0)
        start = time.perf_counter()
        assert await store.insert_trades(dup) == []
        rate = 10_000 / (time.perf_counter() - start)
        print(f"postgres insert_trades all-duplicate 10k batch: {rate:>10,.0f} rows/s")
        await store.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def bench_sqlite(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db", metrics=PlatformMetrics(CollectorRegistry()))
        await store.migrate()
        offset = 0
        for batch in (1_000, 10_000):
            rate = await measure(store, rows, batch, offset)
            offset += rows
            print(f"sqlite   insert_trades batch={batch:>6}: {rate:>10,.0f} rows/s ({rows:,} rows)")
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    await bench_postgres(args.admin_url, args.rows)
    await bench_sqlite(args.rows)


if __name__ == "__main__":
    asyncio.run(main())
