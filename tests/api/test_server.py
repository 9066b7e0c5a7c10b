"""Through a real uvicorn server on a free port: HTTP, and the bar WebSocket with the websockets client."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from monitoring.metrics import PlatformMetrics
from storage.memory_cache import MemoryCache
from tests.api.conftest import BAR_COUNT, make_bar


async def _subscribed(ws: ClientConnection) -> dict[str, object]:
    hello: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert hello["type"] == "subscribed"
    return hello


async def test_http_through_uvicorn(server: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://{server}") as http:
        bars = await http.get("/api/v1/bars", params={"symbol": "btcusdt", "start": "2024-01-01T00:03:00Z"})
        ready = await http.get("/readyz")
        missing = await http.get("/nope", headers={"X-Request-ID": "via-uvicorn"})
    assert bars.status_code == 200
    assert [b["close"] for b in bars.json()["bars"]] == ["42053.20", "42054.20"]
    assert ready.status_code == 200
    assert (missing.status_code, missing.headers["x-request-id"]) == (404, "via-uvicorn")


async def test_websocket_receives_matching_closed_bars(
    server: str, cache: MemoryCache, metrics: PlatformMetrics
) -> None:
    url = f"ws://{server}/api/v1/ws/bars?exchange=binance&symbol=BTCUSDT&timeframe=1m"
    async with connect(url) as ws:
        assert ws.response is not None and ws.response.headers["x-request-id"]
        hello = await _subscribed(ws)
        assert (hello["exchange"], hello["symbol"], hello["timeframe"]) == ("binance", "BTC-USDT", "1m")
        assert metrics.registry.get_sample_value("websocket_connections") == 1.0
        await cache.put_bar(make_bar(BAR_COUNT, symbol="ETH-USDT"))
        await cache.put_bar(make_bar(BAR_COUNT, timeframe="5m"))
        await cache.put_bar(make_bar(BAR_COUNT))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert message["type"] == "bar"
    bar = message["data"]
    assert (bar["symbol"], bar["timeframe"], bar["open"]) == ("BTC-USDT", "1m", "42005.10")
    assert bar["open_time"] == "2024-01-01T00:05:00.000Z"
    assert bar["indicators"]["sma_20"] == 42005.5
    assert metrics.registry.get_sample_value("websocket_messages_sent_total") == 1.0
    async with asyncio.timeout(5):  # the server notices the client left
        while metrics.registry.get_sample_value("websocket_connections") != 0.0:
            await asyncio.sleep(0.01)


async def test_websocket_without_filters_gets_every_symbol(server: str, cache: MemoryCache) -> None:
    async with connect(f"ws://{server}/api/v1/ws/bars") as ws:
        await _subscribed(ws)
        await cache.put_bar(make_bar(7, symbol="ETH-USDT", timeframe="1h"))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert (message["data"]["symbol"], message["data"]["timeframe"]) == ("ETH-USDT", "1h")


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("symbol=BTCUSDT&timeframe=7x", "timeframe: invalid timeframe '7x'"),
        ("symbol=DOGEUSDT", "unknown symbol 'DOGEUSDT' on binance"),
        ("symbol=BTCUSDT&exchange=kraken", "unknown exchange 'kraken'"),
        ("exchange=bad%20name", "exchange: invalid exchange name"),
    ],
)
async def test_websocket_bad_parameters_close_1008_with_reason(
    server: str, query: str, fragment: str, metrics: PlatformMetrics
) -> None:
    async with connect(f"ws://{server}/api/v1/ws/bars?{query}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert fragment in closed.value.rcvd.reason
    assert metrics.registry.get_sample_value("websocket_connections") == 0.0


async def test_websocket_closed_1001_when_the_cache_closes(server: str, cache: MemoryCache) -> None:
    async with connect(f"ws://{server}/api/v1/ws/bars") as ws:
        await _subscribed(ws)
        await cache.close()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "bar stream ended")
