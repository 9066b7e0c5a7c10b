"""Each simulated venue's klines endpoint, computed from its trade history by the shared core and written
in the venue's own shape, over real HTTP; a venue without the path answers 404 like any unknown path."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.simulator.conftest import StartVenue, replayed

T = 1_704_067_200_000  # 2024-01-01T00:00:00Z, ms
ROWS = [
    [T + 1000, "BTC-USDT", 1, "100.5", "1.0", "false"],  # a taker buy
    [T + 2000, "BTC-USDT", 2, "101", "0.5", "true"],  # a taker sell
    [T + 3000, "BTC-USDT", 3, "99.25", "2.0", "false"],
    [T + 121_000, "BTC-USDT", 4, "102", "0.1", "true"],  # minute 2; minute 1 has no trade
]
Client = Callable[[str], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def client(start_venue: StartVenue, tmp_path: Path) -> AsyncIterator[Client]:
    clients: list[httpx.AsyncClient] = []

    async def make(exchange: str) -> httpx.AsyncClient:
        rows = [[t, s.replace("USDT", "USD") if exchange == "coinbase" else s, *rest] for t, s, *rest in ROWS]
        sim = await replayed(start_venue, exchange, rows, tmp_path)
        clients.append(httpx.AsyncClient(base_url=sim.rest_url))
        return clients[-1]

    yield make
    for c in clients:
        await c.aclose()


async def test_binance_klines_rows_in_binance_shape(client: Client) -> None:
    http = await client("binance")
    window = {"symbol": "BTCUSDT", "interval": "1m", "startTime": str(T), "endTime": str(T + 179_999)}
    rows = (await http.get("/api/v3/klines", params=window)).json()
    assert rows == [
        [T, "100.50000000", "101.00000000", "99.25000000", "99.25000000", "3.50000000", T + 59_999,
         "349.50000000", 3, "3.00000000", "299.00000000", "0"],
        [T + 60_000, "99.25000000", "99.25000000", "99.25000000", "99.25000000", "0.00000000", T + 119_999,
         "0.00000000", 0, "0.00000000", "0.00000000", "0"],  # a quiet minute: the previous close, no trades
        [T + 120_000, "102.00000000", "102.00000000", "102.00000000", "102.00000000", "0.10000000",
         T + 179_999, "10.20000000", 1, "0.00000000", "0.00000000", "0"],
    ]  # fmt: skip
    first = (await http.get("/api/v3/klines", params={**window, "limit": "1"})).json()
    assert [r[0] for r in first] == [T]  # from startTime, the oldest
    minutes = [time.time_ns() // 1_000_000 // 60_000 * 60_000]
    latest = await http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": "2"})
    minutes.append(time.time_ns() // 1_000_000 // 60_000 * 60_000)
    _, (current, *quiet) = latest.json()  # no range: the most recent, up to the current minute
    assert current in minutes and quiet[3:5] == ["102.00000000", "0.00000000"] and quiet[7] == 0
    up_to = {"symbol": "BTCUSDT", "interval": "1m", "endTime": str(T + 119_999)}
    assert [r[0] for r in (await http.get("/api/v3/klines", params=up_to)).json()] == [T, T + 60_000]
    before_first = {**window, "startTime": str(T - 120_000), "endTime": str(T + 59_999)}
    assert [r[0] for r in (await http.get("/api/v3/klines", params=before_first)).json()] == [T]
    coarse = await http.get("/api/v3/klines", params={**window, "interval": "5m"})
    assert coarse.status_code == 200 and coarse.json() == []
    assert coarse.headers["X-MBX-USED-WEIGHT-1M"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "BTCUSDT"}, -1102),
        ({"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        ({"symbol": "NOPE", "interval": "1m"}, -1121),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "20", "endTime": "10"}, -1023),
        ({"symbol": "BTCUSDT", "interval": "1m", "bogus": "1"}, -1104),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, -1130),
    ],
)
async def test_binance_klines_errors(client: Client, params: dict[str, str], code: int) -> None:
    answer = await (await client("binance")).get("/api/v3/klines", params=params)
    assert answer.status_code == 400 and answer.json()["code"] == code


async def test_coinbase_candles_are_numbers_newest_first_low_before_high(client: Client) -> None:
    http = await client("coinbase")
    window = {"granularity": "60", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T00:02:00Z"}
    answer = await http.get("/products/BTC-USD/candles", params=window)
    assert answer.status_code == 200
    assert answer.text == f"[[{T // 1000 + 120},102,102,102,102,0.1],[{T // 1000},99.25,101,100.5,99.25,3.5]]"
    rows = json.loads(answer.text, parse_float=Decimal)
    assert rows[1][1:] == [Decimal("99.25"), 101, Decimal("100.5"), Decimal("99.25"), Decimal("3.5")]
    no_range = await http.get("/products/BTC-USD/candles", params={"granularity": "60"})
    assert [r[0] for r in no_range.json()] == [T // 1000 + 120, T // 1000]
    assert (await http.get("/products/BTC-USD/candles", params={**window, "granularity": "300"})).json() == []


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/products/BTC-USD/candles", {"granularity": "61"}, 400, "Unsupported granularity"),
        ("/products/BTC-USD/candles", {"start": "2024-01-01", "end": "2024-01-02"}, 400, "exceeds 300"),
        ("/products/BTC-USD/candles", {"start": "2024-01-02", "end": "2024-01-01"}, 400, "start must be"),
        ("/products/BTC-USD/candles", {"start": "yesterday", "end": "2024-01-01"}, 400, "Invalid"),
        ("/products/NOPE-USD/candles", {}, 404, "NotFound"),
    ],
)
async def test_coinbase_candles_errors(
    client: Client, path: str, params: dict[str, str], status: int, message: str
) -> None:
    answer = await (await client("coinbase")).get(path, params=params)
    assert answer.status_code == status and message in answer.json()["message"]


@pytest.mark.parametrize("path", ["/api/v5/market/history-candles", "/api/v5/market/candles"])
async def test_okx_candles_strings_newest_first_between_before_and_after(client: Client, path: str) -> None:
    http = await client("okx")
    window = {"instId": "BTC-USDT", "bar": "1m", "after": str(T + 180_000), "before": str(T - 1)}
    body = (await http.get(path, params=window)).json()
    assert body["code"] == "0"
    assert body["data"] == [
        [str(T + 120_000), "102", "102", "102", "102", "0.1", "10.2", "10.2", "1"],
        [str(T), "100.5", "101", "99.25", "99.25", "3.5", "349.500", "349.500", "1"],
    ]
    newest = (await http.get(path, params={**window, "limit": "1"})).json()["data"]
    assert [r[0] for r in newest] == [str(T + 120_000)]
    exclusive = (await http.get(path, params={**window, "before": str(T), "after": str(T + 120_000)})).json()
    assert exclusive["data"] == []  # both bounds are exclusive
    assert (await http.get(path, params={**window, "bar": "5m"})).json()["data"] == []
    bad_bar = await http.get(path, params={**window, "bar": "2m"})
    assert bad_bar.status_code == 400 and bad_bar.json()["code"] == "51000"
    unknown = await http.get(path, params={**window, "instId": "NOPE-USDT"})
    assert unknown.status_code == 200 and unknown.json()["code"] == "51001"


@pytest.mark.parametrize(
    ("exchange", "path"),
    [
        ("coinbase", "/api/v3/klines"),
        ("okx", "/products/BTC-USD/candles"),
        ("binance", "/0/public/OHLC"),
        ("kraken", "/v5/market/kline"),
        ("bybit", "/0/public/OHLC"),
    ],
)
async def test_a_venue_answers_404_for_another_venues_klines_path(
    client: Client, exchange: str, path: str
) -> None:
    assert (await (await client(exchange)).get(path)).status_code == 404


RecentClient = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def recent(start_venue: StartVenue, tmp_path: Path) -> AsyncIterator[RecentClient]:
    """make(exchange, base): like `client`, the trades of ROWS moved to `base` (Kraken serves the last 12
    hours only), on the venue's BTC pair."""
    clients: list[httpx.AsyncClient] = []

    async def make(exchange: str, base: int) -> httpx.AsyncClient:
        symbol = "BTC/USD" if exchange == "kraken" else "BTCUSDT"
        rows = [[t - T + base, symbol, *rest] for t, _, *rest in ROWS]
        sim = await replayed(start_venue, exchange, rows, tmp_path)
        clients.append(httpx.AsyncClient(base_url=sim.rest_url))
        return clients[-1]

    yield make
    for c in clients:
        await c.aclose()


def minutes_ago(minutes: int) -> int:
    """The open time (ms) of the minute `minutes` before the current one."""
    return (time.time_ns() // 1_000_000 // 60_000 - minutes) * 60_000


async def test_kraken_ohlc_rows_oldest_first_under_the_legacy_key_with_the_current_minute(
    recent: RecentClient,
) -> None:
    recent_ms = minutes_ago(10)
    http = await recent("kraken", recent_ms)
    answer = await http.get("/0/public/OHLC", params={"pair": "XBTUSD", "interval": "1", "since": "0"})
    body = json.loads(answer.text)  # ints stay ints: only time and count are numbers
    assert body["error"] == [] and list(body["result"]) == ["XXBTZUSD", "last"]
    rows = body["result"]["XXBTZUSD"]
    s = recent_ms // 1000
    assert rows[:2] == [
        [s, "100.5", "101", "99.25", "99.25", "99.86", "3.50000000", 3],  # vwap 349.5 / 3.5
        [s + 120, "102", "102", "102", "102", "102", "0.10000000", 1],  # minute 1 had no trade: no row
    ]
    current = rows[-1]  # always present: the current minute, nothing traded yet, at the last close
    assert len(rows) == 3 and current[0] * 1000 > recent_ms + 120_000
    assert current[1:] == ["102", "102", "102", "102", "102", "0.00000000", 0]
    assert body["result"]["last"] == s + 120  # the newest closed row
    since = await http.get("/0/public/OHLC", params={"pair": "BTC/USD", "since": str(s + 60)})
    assert [r[0] for r in since.json()["result"]["XXBTZUSD"]] == [s + 120, current[0]]  # inclusive
    coarse = (await http.get("/0/public/OHLC", params={"pair": "XBTUSD", "interval": "5"})).json()
    assert coarse["result"]["XXBTZUSD"] == []


async def test_kraken_ohlc_reaches_back_only_720_minutes(recent: RecentClient) -> None:
    first = minutes_ago(720)
    http = await recent("kraken", first)  # the first minute just beyond the reach, the third within
    rows = (await http.get("/0/public/OHLC", params={"pair": "XBTUSD", "since": "0"})).json()["result"]
    current = time.time_ns() // 1_000_000_000 // 60 * 60
    assert [r[0] for r in rows["XXBTZUSD"]][:1] == [first // 1000 + 120]
    assert rows["XXBTZUSD"][-1][0] in (current - 60, current)  # the current minute (it may have turned)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"pair": "NOPEUSD"}, "EQuery:Unknown asset pair"),
        ({"pair": "XBTUSD", "interval": "2"}, "EGeneral:Invalid arguments"),
        ({"pair": "XBTUSD", "since": "yesterday"}, "EGeneral:Invalid arguments"),
    ],
)
async def test_kraken_ohlc_errors(recent: RecentClient, params: dict[str, str], error: str) -> None:
    answer = await (await recent("kraken", minutes_ago(10))).get("/0/public/OHLC", params=params)
    assert answer.status_code == 200 and answer.json() == {"error": [error]}


async def test_bybit_kline_strings_newest_first_start_and_end_inclusive(recent: RecentClient) -> None:
    recent_ms = minutes_ago(10)
    http = await recent("bybit", recent_ms)
    window = {"category": "spot", "symbol": "BTCUSDT", "interval": "1", "start": str(recent_ms),
              "end": str(recent_ms + 120_000), "limit": "1000"}  # fmt: skip
    body = (await http.get("/v5/market/kline", params=window)).json()
    assert (body["retCode"], body["retMsg"]) == (0, "OK")
    assert body["result"] == {
        "category": "spot",
        "symbol": "BTCUSDT",
        "list": [
            [str(recent_ms + 120_000), "102", "102", "102", "102", "0.1", "10.2"],
            [str(recent_ms), "100.5", "101", "99.25", "99.25", "3.5", "349.5"],
        ],
    }
    inside = {
        **window,
        "start": str(recent_ms + 1),
        "end": str(recent_ms + 119_999),
    }  # a start inside a minute
    assert [r[0] for r in (await http.get("/v5/market/kline", params=inside)).json()["result"]["list"]] == [
        str(recent_ms)
    ]
    newest = (await http.get("/v5/market/kline", params={**window, "limit": "1"})).json()["result"]["list"]
    assert [r[0] for r in newest] == [str(recent_ms + 120_000)]
    no_range = {k: v for k, v in window.items() if k not in ("start", "end")}
    assert len((await http.get("/v5/market/kline", params=no_range)).json()["result"]["list"]) == 2
    coarse = (await http.get("/v5/market/kline", params={**window, "interval": "5"})).json()
    assert coarse["retCode"] == 0 and coarse["result"]["list"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"category": "linear"}, "category"),
        ({"symbol": "NOPEUSDT"}, "Not supported symbols"),
        ({"interval": "2"}, "intervalTime is invalid"),
        ({"limit": "0"}, "limit"),
        ({"start": "soon"}, "start"),
        ({"start": "20", "end": "10"}, "start must be less than end"),
    ],
)
async def test_bybit_kline_errors(recent: RecentClient, params: dict[str, str], message: str) -> None:
    query = {"category": "spot", "symbol": "BTCUSDT", "interval": "1", **params}
    answer = await (await recent("bybit", minutes_ago(10))).get("/v5/market/kline", params=query)
    body = answer.json()
    assert answer.status_code == 200 and body["retCode"] == 10001 and message in body["retMsg"]
