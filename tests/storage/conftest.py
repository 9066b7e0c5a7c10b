"""Store fixtures: the same test bodies run against PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.types import Bar, ClosedBar, Coverage, Features, Indicators, Side, Trade
from monitoring.metrics import PlatformMetrics
from storage.postgres import PostgresStore
from storage.sqlite import SQLiteStore
from tests.conftest import fresh_pg_database

T0 = 1_700_000_000_000_000_000  # ns, a whole second
MINUTE = 60_000_000_000


def make_trade(
    trade_id: int,
    *,
    price: str = "0.00150000",
    quantity: str = "12.50000000",
    symbol: str = "BTC-USDT",
    exchange: str = "binance",
    ts: int | None = None,
    side: Side = Side.BUY,
) -> Trade:
    ts_event = T0 + trade_id * 1_000 if ts is None else ts
    return Trade(
        exchange,
        symbol,
        symbol.replace("-", ""),
        str(trade_id),
        trade_id,
        price,
        quantity,
        side,
        ts_event,
        ts_event + 7_000,
    )


def make_bar(
    minute: int, *, close: str = "101.50", timeframe: str = "1m", sma: float | None = None
) -> ClosedBar:
    bar = Bar(
        exchange="binance",
        symbol="BTC-USDT",
        timeframe=timeframe,
        open_time=T0 + minute * MINUTE,
        close_time=T0 + (minute + 1) * MINUTE,
        open="100.00",
        high="102.25000000",
        low="99.0",
        close=close,
        volume="1.50000000",
        quote_volume="151.5000000000",
        vwap=101.0,
        trade_count=3,
        buy_volume="1.00000000",
        sell_volume="0.50000000",
        first_trade_id=str(minute * 10),
        last_trade_id=str(minute * 10 + 2),
        min_sequence=minute * 10,
        max_sequence=minute * 10 + 2,
        sequenced_trades=3,
        repaired_trades=1,
        coverage=Coverage.REPAIRED,
        first_trade_ns=T0 + minute * MINUTE + 1_000,
        last_trade_ns=T0 + (minute + 1) * MINUTE - 1_000,
    )
    indicators = Indicators(sma_20=sma, rsi_14=55.5, macd=-0.25, bb_lower=None, atr_14=1.75)
    features = Features(log_return=0.0025, taker_buy_ratio=2 / 3, rsi_norm=None)
    return ClosedBar(bar=bar, indicators=indicators, features=features)


@pytest.fixture(params=["postgres", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(
    backend: str, metrics: PlatformMetrics, tmp_path: Path
) -> AsyncIterator[PostgresStore | SQLiteStore]:
    """A migrated store of the parametrized backend, on a fresh database."""
    if backend == "sqlite":
        lite = SQLiteStore(tmp_path / "market.db", metrics=metrics)
        await lite.migrate()
        yield lite
        await lite.close()
        return
    async with fresh_pg_database() as url:
        pg = PostgresStore(url, metrics=metrics, max_size=4)
        await pg.migrate()
        yield pg
        await pg.close()
