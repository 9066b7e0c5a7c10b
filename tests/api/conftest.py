"""Fixtures for the API tests: a real SQLite store seeded with symbols, bars and trades, the in-process
cache, the app and an httpx client over ASGI, and a real uvicorn server on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.settings import ApiSettings
from core.timeframes import NS_PER_SECOND
from core.types import Bar, ClosedBar, Coverage, Indicators, Side, SymbolInfo, Trade
from monitoring.metrics import PlatformMetrics
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore
from tests.conftest import free_port

T0 = 1_704_067_200 * NS_PER_SECOND  # 2024-01-01T00:00:00Z
MINUTE = 60 * NS_PER_SECOND
SYMBOLS = [
    SymbolInfo("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT"),
    SymbolInfo("binance", "ETH-USDT", "ETHUSDT", "ETH", "USDT"),
    SymbolInfo("coinbase", "BTC-USD", "BTC-USD", "BTC", "USD"),
]
BAR_COUNT = 5


def make_bar(
    i: int, *, symbol: str = "BTC-USDT", exchange: str = "binance", timeframe: str = "1m"
) -> ClosedBar:
    """Bar i of a series starting at T0; prices carry trailing zeros to prove they stay exact strings."""
    open_time = T0 + i * MINUTE
    bar = Bar(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        open_time=open_time,
        close_time=open_time + MINUTE,
        open=f"4200{i}.10",
        high=f"4210{i}.50",
        low=f"4190{i}.00",
        close=f"4205{i}.20",
        volume=f"{1.5 + i}0",  # exact decimal text, trailing zero kept
        quote_volume=f"{(1.5 + i) * 42000:.2f}",
        vwap=42000.0,
        trade_count=10 + i,
        buy_volume="1.00",
        sell_volume=f"{0.5 + i}0",
        first_trade_id=str(100 * i + 1),
        last_trade_id=str(100 * i + 10 + i),
        min_sequence=100 * i + 1,
        max_sequence=100 * i + 10 + i,
        sequenced_trades=10 + i,
        coverage=Coverage.COMPLETE,
    )
    indicators = Indicators(sma_20=42000.5 + i, rsi_14=55.25) if i >= 2 else Indicators()
    return ClosedBar(bar=bar, indicators=indicators)


def make_trade(i: int, *, symbol: str = "BTC-USDT", raw: str = "BTCUSDT") -> Trade:
    return Trade(
        exchange="binance",
        symbol=symbol,
        raw_symbol=raw,
        trade_id=str(1000 + i),
        sequence=1000 + i,
        price=f"4200{i}.10",
        quantity="0.0150",
        side=Side.BUY if i % 2 == 0 else Side.SELL,
        ts_event=T0 + i * NS_PER_SECOND + 123_000_000,
        ts_recv=T0 + i * NS_PER_SECOND + 125_000_000,
    )


@pytest.fixture
async def store(tmp_path: Path, metrics: PlatformMetrics) -> AsyncIterator[SQLiteStore]:
    db = SQLiteStore(tmp_path / "api.db", metrics=metrics)
    await db.migrate()
    await db.upsert_symbols(SYMBOLS)
    await db.upsert_bars([make_bar(i) for i in range(BAR_COUNT)])
    await db.upsert_bars([make_bar(i, symbol="ETH-USDT") for i in range(2)])
    await db.insert_trades([make_trade(i) for i in range(3)])
    yield db
    await db.close()


@pytest.fixture
async def cache(metrics: PlatformMetrics) -> AsyncIterator[MemoryCache]:
    memory = MemoryCache(metrics=metrics)
    yield memory
    await memory.close()


@pytest.fixture
def settings() -> ApiSettings:
    return ApiSettings(rate_limit_per_second=0)


@pytest.fixture
def app(store: SQLiteStore, cache: MemoryCache, metrics: PlatformMetrics, settings: ApiSettings) -> FastAPI:
    return create_app(store, cache, metrics=metrics, settings=settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield http


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` with a real uvicorn server on a free port; yields "127.0.0.1:<port>"."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio", lifespan="on"
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    async with asyncio.timeout(10):
        while not uv.started:
            assert not task.done(), "uvicorn exited during startup"
            await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    """A real uvicorn server with the app; yields "127.0.0.1:<port>"."""
    async with serve(app) as address:
        yield address


Sample = Callable[..., float | None]


@pytest.fixture
def sample(metrics: PlatformMetrics) -> Sample:
    """metrics.registry.get_sample_value, shortened."""

    def get(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    return get
