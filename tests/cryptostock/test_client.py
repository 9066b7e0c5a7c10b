"""The pandas client against a real uvicorn server over a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pandas as pd
import pytest

from api.app import create_app
from api.settings import ApiSettings
from cryptostock.client import Client, ClientError
from monitoring.metrics import PlatformMetrics
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore
from tests.api.conftest import SYMBOLS, make_bar, make_trade, serve

BARS = 250


@pytest.fixture
async def base_url(tmp_path: Path, metrics: PlatformMetrics) -> AsyncIterator[str]:
    store = SQLiteStore(tmp_path / "client.db", metrics=metrics)
    cache = MemoryCache(metrics=metrics)
    await store.migrate()
    await store.upsert_symbols(SYMBOLS)
    await store.upsert_bars([make_bar(i) for i in range(BARS)])
    await store.insert_trades([make_trade(i) for i in range(30)])
    settings = ApiSettings(rate_limit_per_second=0, max_bars_limit=100, default_bars_limit=100)
    try:
        async with serve(
            create_app(store, cache, metrics=metrics, settings=settings, feeds=cache)
        ) as address:
            yield f"http://{address}"
    finally:
        await cache.close()
        await store.close()


def in_thread(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    """The client is synchronous: run it off the event loop that serves the API."""
    return asyncio.to_thread(function, *args, **kwargs)


async def test_bars_page_through_the_range_into_a_dataframe(base_url: str) -> None:
    with Client(base_url, page_size=100) as api:
        frame = await in_thread(api.bars, "BTCUSDT", start="2024-01-01T00:00:00Z", end="2024-01-01T03:30:00Z")
        exact = await in_thread(api.bars, "BTC-USDT", limit=3, exact=True, indicators=False)
    assert len(frame) == 210 and frame.index.is_unique and frame.index.is_monotonic_increasing
    assert (
        frame.index[0] == pd.Timestamp("2024-01-01T00:00:00Z")
        and str(frame.index.dtype) == "datetime64[ns, UTC]"
    )
    assert frame["close"].dtype == "float64" and frame["close"].iloc[1] == 42051.20
    assert pd.isna(frame["sma_20"].iloc[0]) and frame["sma_20"].iloc[2] == 42002.5
    assert list(exact["close"]) == [make_bar(i).bar.close for i in range(BARS - 3, BARS)]  # exact strings
    assert "sma_20" not in exact.columns


async def test_trades_symbols_and_errors(base_url: str) -> None:
    with Client(base_url, page_size=100) as api:
        trades = await in_thread(api.trades, "BTC-USDT", limit=10)
        symbols = await in_thread(api.symbols)
        with pytest.raises(ClientError, match="unknown symbol 'DOGE-USDT'") as refused:
            await in_thread(api.bars, "DOGE-USDT")
    assert len(trades) == 10 and trades.index[-1] == pd.Timestamp(
        make_trade(29).ts_event, unit="ns", tz="UTC"
    )
    assert trades["time_ns"].iloc[-1] == make_trade(29).ts_event and trades["price"].dtype == "float64"
    assert set(symbols["symbol"]) == {"BTC-USDT", "ETH-USDT", "BTC-USD"}
    assert (refused.value.status, refused.value.code) == (404, "not_found")


async def test_an_unreachable_api_is_a_client_error() -> None:
    with Client("http://127.0.0.1:9", timeout=2) as api, pytest.raises(ClientError, match="ConnectError"):
        await in_thread(api.symbols)
