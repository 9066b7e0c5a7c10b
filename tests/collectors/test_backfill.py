"""RestBackfiller against a real HTTP server on loopback (a small aiohttp app playing the exchange)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from collectors.adapter import Gap
from collectors.backfill import RestBackfiller, discover
from collectors.exchanges.binance import BinanceAdapter
from core.errors import CircuitOpenError, ExchangeError, RateLimitedError
from core.types import SymbolInfo
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import PlatformMetrics
from tests.collectors.http_server import serve
from tests.conftest import free_port

LAST_ID = 5000
EXCHANGE_INFO = {
    "symbols": [
        {"symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT", "status": "TRADING"},
        {"symbol": "ETHBTC", "baseAsset": "ETH", "quoteAsset": "BTC", "status": "TRADING"},
    ]
}


@dataclass
class FakeExchange:
    """State of the test's HTTP server: requests seen and failures to inject."""

    requests: list[dict[str, str]] = field(default_factory=list)
    fail_next: int = 0
    rate_limit_next: int = 0
    url: str = ""


def _row(trade_id: int) -> dict[str, object]:
    return {
        "id": trade_id,
        "price": f"{100 + trade_id % 7}.50",
        "qty": "0.010",
        "quoteQty": "1",
        "time": 1_700_000_000_000 + trade_id,
        "isBuyerMaker": trade_id % 2 == 0,
        "isBestMatch": True,
    }


@pytest.fixture
async def exchange() -> AsyncIterator[FakeExchange]:
    state = FakeExchange()

    async def historical(request: web.Request) -> web.Response:
        state.requests.append(dict(request.query))
        if state.rate_limit_next:
            state.rate_limit_next -= 1
            return web.json_response(
                {"code": -1003, "msg": "Too many requests"}, status=429, headers={"Retry-After": "7"}
            )
        if state.fail_next:
            state.fail_next -= 1
            return web.json_response({"code": -1000, "msg": "boom"}, status=500)
        start = int(request.query["fromId"])
        limit = min(int(request.query["limit"]), 1000)
        rows = [_row(i) for i in range(start, min(start + limit, LAST_ID + 1))]
        return web.Response(body=json.dumps(rows).encode(), content_type="application/json")

    async def exchange_info(request: web.Request) -> web.Response:
        return web.json_response(EXCHANGE_INFO)

    app = web.Application()
    app.router.add_get("/api/v3/historicalTrades", historical)
    app.router.add_get("/api/v3/exchangeInfo", exchange_info)
    async with serve(app) as state.url:
        yield state


def _adapter() -> BinanceAdapter:
    return BinanceAdapter([SymbolInfo("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT")])


async def test_fetch_gap_pages_until_the_gap_is_covered(
    exchange: FakeExchange, metrics: PlatformMetrics
) -> None:
    async with RestBackfiller(_adapter(), exchange.url, metrics=metrics) as backfiller:
        trades = await backfiller.fetch_gap(Gap("BTCUSDT", 10, 2500))
    assert [t.sequence for t in trades] == list(range(10, 2501))
    assert [t.trade_id for t in trades] == [str(i) for i in range(10, 2501)]
    assert all(t.backfilled and t.symbol == "BTC-USDT" for t in trades)
    assert [r["fromId"] for r in exchange.requests] == ["10", "1010", "2010"]
    assert trades[0].price == "103.50"


async def test_fetch_gap_returns_what_exists(exchange: FakeExchange, metrics: PlatformMetrics) -> None:
    async with RestBackfiller(_adapter(), exchange.url, metrics=metrics) as backfiller:
        trades = await backfiller.fetch_gap(Gap("BTCUSDT", LAST_ID - 2, LAST_ID + 10))
    assert [t.sequence for t in trades] == [LAST_ID - 2, LAST_ID - 1, LAST_ID]


async def test_rate_limit_is_honoured_locally(exchange: FakeExchange, metrics: PlatformMetrics) -> None:
    now = [100.0]
    exchange.rate_limit_next = 1
    backfiller = RestBackfiller(_adapter(), exchange.url, metrics=metrics, monotonic=lambda: now[0])
    async with backfiller:
        with pytest.raises(RateLimitedError) as caught:
            await backfiller.fetch_gap(Gap("BTCUSDT", 1, 5))
        assert caught.value.retry_after == 7.0
        with pytest.raises(RateLimitedError):
            await backfiller.fetch_gap(Gap("BTCUSDT", 1, 5))
        assert len(exchange.requests) == 1  # refused without asking the server again
        now[0] += 7.5
        assert len(await backfiller.fetch_gap(Gap("BTCUSDT", 1, 5))) == 5


async def test_server_errors_open_the_circuit(exchange: FakeExchange, metrics: PlatformMetrics) -> None:
    exchange.fail_next = 100
    breaker = CircuitBreaker("binance_rest", failure_threshold=2, reset_timeout=60, metrics=metrics,
                             failure_exceptions=(ExchangeError,))  # fmt: skip
    async with RestBackfiller(_adapter(), exchange.url, metrics=metrics, breaker=breaker) as backfiller:
        for _ in range(2):
            with pytest.raises(ExchangeError, match="HTTP 500"):
                await backfiller.fetch_gap(Gap("BTCUSDT", 1, 5))
        with pytest.raises(CircuitOpenError):
            await backfiller.fetch_gap(Gap("BTCUSDT", 1, 5))
    assert len(exchange.requests) == 2
    assert metrics.registry.get_sample_value("circuit_breaker_state", {"component": "binance_rest"}) == 1


async def test_unreachable_exchange_is_an_exchange_error(metrics: PlatformMetrics) -> None:
    async with RestBackfiller(_adapter(), f"http://127.0.0.1:{free_port()}", metrics=metrics) as backfiller:
        with pytest.raises(ExchangeError, match="ClientConnectorError"):
            await backfiller.fetch_gap(Gap("BTCUSDT", 1, 5))


async def test_discover_builds_the_symbol_map(exchange: FakeExchange, metrics: PlatformMetrics) -> None:
    async with await discover("binance", exchange.url, metrics=metrics) as backfiller:
        info = backfiller.adapter.symbol_info("ETHBTC")
        assert info == SymbolInfo("binance", "ETH-BTC", "ETHBTC", "ETH", "BTC")
        assert len(await backfiller.fetch_gap(Gap("BTCUSDT", 1, 3))) == 3
