"""REST endpoints of the simulated Binance: historicalTrades paging, trades, exchangeInfo, errors, weight."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitoring.metrics import PlatformMetrics
from simulator.exchange import SimulatedExchange
from simulator.markets import ReplayMarket
from tests.simulator.conftest import StartSim, finished, write_csv

FIRST_ID, COUNT = 100, 2500
START_MS = 1_700_000_000_000


@pytest.fixture
async def sim(start_sim: StartSim, tmp_path: Path) -> SimulatedExchange:
    rows: list[list[object]] = [
        [START_MS + i, "BTCUSDT", FIRST_ID + i, f"{60000 + i}.5", "0.00100000", "true" if i % 2 else "false"]
        for i in range(COUNT)
    ]
    rows.append([START_MS + COUNT, "ETHUSDT", 7, "3000.10000000", "2.00000000", "false"])
    return await finished(
        await start_sim(
            ReplayMarket(write_csv(tmp_path / "r.csv", rows), speed=1e9, wait_for_subscriber=False)
        )
    )


@pytest.fixture
async def http(sim: SimulatedExchange) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        yield client


async def get(http: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    return await http.get(path, params={k: str(v) for k, v in params.items()})


async def test_historical_trades_pages_from_an_inclusive_id(http: httpx.AsyncClient) -> None:
    r = await get(http, "/api/v3/historicalTrades", symbol="BTCUSDT", fromId=FIRST_ID + 10, limit=3)
    assert r.status_code == 200
    rows = r.json()
    assert [row["id"] for row in rows] == [110, 111, 112]
    assert list(rows[0]) == ["id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"]
    assert rows[0]["price"] == "60010.5" and rows[0]["qty"] == "0.00100000"
    assert Decimal(rows[0]["quoteQty"]) == Decimal("60010.5") * Decimal("0.001")
    assert (
        rows[0]["time"] == START_MS + 10
        and rows[0]["isBuyerMaker"] is False
        and rows[0]["isBestMatch"] is True
    )
    collected, from_id = [], FIRST_ID
    while True:
        page = (
            await get(http, "/api/v3/historicalTrades", symbol="BTCUSDT", fromId=from_id, limit=1000)
        ).json()
        if not page:
            break
        collected += [row["id"] for row in page]
        from_id = page[-1]["id"] + 1
    assert collected == list(range(FIRST_ID, FIRST_ID + COUNT))


async def test_historical_trades_defaults_and_limits(http: httpx.AsyncClient) -> None:
    latest = (await get(http, "/api/v3/historicalTrades", symbol="BTCUSDT")).json()
    assert len(latest) == 500 and latest[-1]["id"] == FIRST_ID + COUNT - 1
    clamped = (await get(http, "/api/v3/historicalTrades", symbol="BTCUSDT", fromId=0, limit=5000)).json()
    assert len(clamped) == 1000 and clamped[0]["id"] == FIRST_ID
    beyond = await get(http, "/api/v3/historicalTrades", symbol="BTCUSDT", fromId=10**9)
    assert beyond.status_code == 200 and beyond.json() == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, -1102),
        ({"symbol": "NOPEUSDT"}, -1121),
        ({"symbol": "btcusdt"}, -1100),
        ({"symbol": "BTCUSDT", "limit": "abc"}, -1100),
        ({"symbol": "BTCUSDT", "fromId": "-5"}, -1100),
        ({"symbol": "BTCUSDT", "limit": "0"}, -1130),
        ({"symbol": "BTCUSDT", "colour": "red"}, -1104),
    ],
)
async def test_historical_trades_errors(http: httpx.AsyncClient, params: dict[str, str], code: int) -> None:
    r = await http.get("/api/v3/historicalTrades", params=params)
    assert r.status_code == 400
    body = r.json()
    assert list(body) == ["code", "msg"] and body["code"] == code
    if code == -1121:
        assert body == {"code": -1121, "msg": "Invalid symbol."}


async def test_trades_are_the_most_recent(http: httpx.AsyncClient) -> None:
    rows = (await get(http, "/api/v3/trades", symbol="BTCUSDT", limit=2)).json()
    assert [row["id"] for row in rows] == [FIRST_ID + COUNT - 2, FIRST_ID + COUNT - 1]
    eth = (await get(http, "/api/v3/trades", symbol="ETHUSDT")).json()
    assert eth == [
        {
            "id": 7,
            "price": "3000.10000000",
            "qty": "2.00000000",
            "quoteQty": "6000.20000000",
            "time": START_MS + COUNT,
            "isBuyerMaker": False,
            "isBestMatch": True,
        }
    ]


async def test_exchange_info_lists_the_symbols_with_assets(http: httpx.AsyncClient) -> None:
    info = (await get(http, "/api/v3/exchangeInfo")).json()
    assert info["timezone"] == "UTC"
    symbols = {s["symbol"]: s for s in info["symbols"]}
    assert set(symbols) == {"BTCUSDT", "ETHUSDT"}
    assert (symbols["BTCUSDT"]["baseAsset"], symbols["BTCUSDT"]["quoteAsset"]) == ("BTC", "USDT")
    assert symbols["ETHUSDT"]["status"] == "TRADING"
    one = (await get(http, "/api/v3/exchangeInfo", symbol="ETHUSDT")).json()
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    many = (await get(http, "/api/v3/exchangeInfo", symbols='["ETHUSDT","BTCUSDT"]')).json()
    assert [s["symbol"] for s in many["symbols"]] == ["ETHUSDT", "BTCUSDT"]
    bad = await get(http, "/api/v3/exchangeInfo", symbol="DOGEUSDT")
    assert bad.status_code == 400 and bad.json() == {"code": -1121, "msg": "Invalid symbol."}


async def test_ping_time_and_used_weight(http: httpx.AsyncClient, metrics: PlatformMetrics) -> None:
    ping = await http.get("/api/v3/ping")
    assert ping.status_code == 200 and ping.json() == {}
    first = int(ping.headers["X-MBX-USED-WEIGHT-1M"])
    server_time = (await http.get("/api/v3/time")).json()["serverTime"]
    assert abs(server_time - time.time() * 1000) < 5000
    r = await get(http, "/api/v3/historicalTrades", symbol="BTCUSDT", limit=1)
    assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) in (first + 26, 26)  # 1 (time) + 25, unless a minute turned
    labels = {"method": "GET", "endpoint": "/api/v3/historicalTrades", "status": "200"}
    assert metrics.registry.get_sample_value("http_requests_total", labels) == 1.0


async def test_weight_limit_when_enabled(start_sim: StartSim, tmp_path: Path) -> None:
    rows = [[START_MS, "BTCUSDT", 1, "1.0", "1.0", "true"]]
    sim = await start_sim(
        ReplayMarket(write_csv(tmp_path / "r.csv", rows), speed=1e9, wait_for_subscriber=False),
        weight_limit=50,
    )
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        statuses = [
            (await client.get("/api/v3/trades", params={"symbol": "BTCUSDT"})).status_code for _ in range(3)
        ]
        refused = await client.get("/api/v3/trades", params={"symbol": "BTCUSDT"})
    assert statuses[:2] == [200, 200] and statuses[2] == 429
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 60
