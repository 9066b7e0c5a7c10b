"""Happy paths of the market-data endpoints over the real SQLite store and in-process cache."""

from __future__ import annotations

import httpx

from api.app import create_app
from api.settings import ApiSettings
from monitoring.metrics import PlatformMetrics
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore
from tests.api.conftest import BAR_COUNT, T0, Sample, make_bar

MINUTE_MS = 60_000
T0_MS = T0 // 1_000_000


async def test_symbols_lists_the_store_symbols(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/symbols")
    assert response.status_code == 200
    assert response.json()["symbols"] == [
        {
            "exchange": "binance",
            "symbol": "BTC-USDT",
            "raw_symbol": "BTCUSDT",
            "base": "BTC",
            "quote": "USDT",
        },
        {
            "exchange": "binance",
            "symbol": "ETH-USDT",
            "raw_symbol": "ETHUSDT",
            "base": "ETH",
            "quote": "USDT",
        },
        {"exchange": "coinbase", "symbol": "BTC-USD", "raw_symbol": "BTC-USD", "base": "BTC", "quote": "USD"},
    ]


async def test_bars_oldest_first_with_exact_strings_and_indicators(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/bars", params={"symbol": "BTC-USDT", "timeframe": "1m"})
    assert response.status_code == 200
    body = response.json()
    assert (body["exchange"], body["symbol"], body["timeframe"]) == ("binance", "BTC-USDT", "1m")
    assert body["count"] == BAR_COUNT
    assert [b["open_time_ms"] for b in body["bars"]] == [T0_MS + i * MINUTE_MS for i in range(BAR_COUNT)]
    first, third = body["bars"][0], body["bars"][2]
    assert first == {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "timeframe": "1m",
        "open_time": "2024-01-01T00:00:00.000Z",
        "open_time_ms": 1704067200000,
        "close_time": "2024-01-01T00:01:00.000Z",
        "close_time_ms": 1704067260000,
        "open": "42000.10",
        "high": "42100.50",
        "low": "41900.00",
        "close": "42050.20",
        "volume": "1.50",
        "quote_volume": "63000.00",
        "vwap": 42000.0,
        "trade_count": 10,
        "buy_volume": "1.00",
        "sell_volume": "0.50",
        "first_trade_id": "1",
        "last_trade_id": "10",
        "coverage": "complete",
        "min_sequence": 1,
        "max_sequence": 10,
        "repaired_trades": 0,
        "indicators": {
            "sma_20": None,
            "ema_20": None,
            "rsi_14": None,
            "macd": None,
            "macd_signal": None,
            "macd_hist": None,
            "bb_upper": None,
            "bb_middle": None,
            "bb_lower": None,
            "atr_14": None,
        },
        "features": {
            "log_return": None,
            "realized_vol_20": None,
            "volume_zscore_20": None,
            "taker_buy_ratio": None,
            "range_pct": None,
            "vwap_deviation": None,
            "rsi_norm": None,
        },
    }
    assert third["open"] == "42002.10"
    assert third["indicators"]["sma_20"] == 42002.5
    assert third["indicators"]["rsi_14"] == 55.25


async def test_bars_without_indicators(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/bars", params={"symbol": "BTC-USDT", "indicators": "false"})
    assert response.status_code == 200
    assert all(bar["indicators"] is None for bar in response.json()["bars"])


async def test_bars_accepts_exchange_spellings_of_the_symbol(client: httpx.AsyncClient) -> None:
    for spelling in ("BTCUSDT", "btcusdt", "btc-usdt", "BTC/USDT"):
        response = await client.get("/api/v1/bars", params={"symbol": spelling, "limit": 1})
        assert response.status_code == 200, spelling
        assert response.json()["symbol"] == "BTC-USDT"
        assert response.json()["bars"][0]["open"] == "42004.10"


async def test_bars_window_iso_and_epoch_ms_half_open(client: httpx.AsyncClient) -> None:
    iso = {"symbol": "BTC-USDT", "start": "2024-01-01T00:01:00Z", "end": "2024-01-01T00:03:00Z"}
    ms = {"symbol": "BTC-USDT", "start": str(T0_MS + MINUTE_MS), "end": str(T0_MS + 3 * MINUTE_MS)}
    offset = {"symbol": "BTC-USDT", "start": "2024-01-01T01:01:00+01:00", "end": "2024-01-01T00:03:00"}
    for params in (iso, ms, offset):
        response = await client.get("/api/v1/bars", params=params)
        assert response.status_code == 200, params
        times = [b["open_time"] for b in response.json()["bars"]]
        assert times == ["2024-01-01T00:01:00.000Z", "2024-01-01T00:02:00.000Z"], params


async def test_bars_limit_keeps_the_most_recent(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/bars", params={"symbol": "BTCUSDT", "limit": 2})
    assert [b["open"] for b in response.json()["bars"]] == ["42003.10", "42004.10"]


async def test_bars_default_exchange_comes_from_settings(
    store: SQLiteStore, cache: MemoryCache, metrics: PlatformMetrics
) -> None:
    app = create_app(store, cache, metrics=metrics, settings=ApiSettings(default_exchange="coinbase"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.get("/api/v1/bars", params={"symbol": "BTC-USD"})
    assert response.status_code == 200
    assert (response.json()["exchange"], response.json()["count"]) == ("coinbase", 0)


async def test_indicators_per_open_time(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/indicators", params={"symbol": "BTC-USDT", "limit": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    points = body["indicators"]
    assert [p["open_time"] for p in points] == [
        "2024-01-01T00:02:00.000Z",
        "2024-01-01T00:03:00.000Z",
        "2024-01-01T00:04:00.000Z",
    ]
    assert points[0]["open_time_ms"] == T0_MS + 2 * MINUTE_MS
    assert [p["sma_20"] for p in points] == [42002.5, 42003.5, 42004.5]
    assert points[0]["macd"] is None


async def test_latest_bar_from_store_then_from_cache(
    client: httpx.AsyncClient, cache: MemoryCache, sample: Sample
) -> None:
    params = {"symbol": "BTC-USDT", "timeframe": "1m"}
    miss = await client.get("/api/v1/bars/latest", params=params)
    assert miss.status_code == 200
    assert miss.json()["source"] == "store"
    assert miss.json()["bar"]["open"] == "42004.10"
    assert sample("cache_misses_total", cache="latest_bar") == 1.0

    await cache.put_bar(make_bar(BAR_COUNT))
    hit = await client.get("/api/v1/bars/latest", params=params)
    assert sample("cache_hits_total", cache="latest_bar") == 1.0
    assert hit.json()["source"] == "cache"
    assert hit.json()["bar"]["open"] == "42005.10"
    assert hit.json()["bar"]["open_time"] == "2024-01-01T00:05:00.000Z"


async def test_latest_bar_404_when_there_is_none(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/bars/latest", params={"symbol": "BTC-USDT", "timeframe": "1h"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no 1h bars yet for BTC-USDT on binance"


async def test_trades_recent_oldest_first_exact_strings(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/trades", params={"symbol": "BTCUSDT", "limit": 2})
    assert response.status_code == 200
    body = response.json()
    assert (body["exchange"], body["symbol"], body["count"]) == ("binance", "BTC-USDT", 2)
    assert body["trades"] == [
        {
            "trade_id": "1001",
            "sequence": 1001,
            "price": "42001.10",
            "quantity": "0.0150",
            "side": "sell",
            "time": "2024-01-01T00:00:01.123Z",
            "time_ms": 1704067201123,
            "time_ns": 1704067201123000000,
            "backfilled": False,
        },
        {
            "trade_id": "1002",
            "sequence": 1002,
            "price": "42002.10",
            "quantity": "0.0150",
            "side": "buy",
            "time": "2024-01-01T00:00:02.123Z",
            "time_ms": 1704067202123,
            "time_ns": 1704067202123000000,
            "backfilled": False,
        },
    ]


async def test_openapi_documents_every_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    for path in ("/api/v1/symbols", "/api/v1/bars", "/api/v1/bars/latest", "/api/v1/indicators"):
        assert "200" in spec["paths"][path]["get"]["responses"], path
    assert {"/api/v1/trades", "/livez", "/readyz", "/metrics"} <= set(spec["paths"])
    assert {"BarOut", "BarsOut", "TradeOut", "ErrorOut", "ReadinessOut"} <= set(spec["components"]["schemas"])
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
