"""Every query parameter of every route at its extremes gets a 4xx naming the parameter, never a 5xx, over
both real stores (SQLite and PostgreSQL): times far in the future or past, huge and negative integers,
NaN, very long strings, control characters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from monitoring.metrics import PlatformMetrics
from storage.factory import SqlStore, open_store
from storage.memory_cache import MemoryCache
from tests.api.live import seed
from tests.conftest import fresh_pg_database

TIME_ROUTES = ("/api/v1/bars", "/api/v1/indicators", "/api/v1/coverage")
BAD_TIMES = [
    "9999-12-31T23:59:59Z",  # a valid date, but beyond 64-bit nanoseconds
    "2262-04-11T23:47:16.855Z",  # the first millisecond past them
    "9223372036855",  # the same as epoch ms
    "253402300799999",
    "99999999999999999999",
    "1969-12-31T23:59:59.999Z",
    "-1",
    "0001-01-01T00:00:00+14:00",
    "1e20",
    "NaN",
    "inf",
    "2024-13-01",
    "x" * 10_000,
    "2024-01-01\x00",
    "",
]
GOOD_TIMES = ["1970-01-01T00:00:00Z", "2262-04-11T23:47:16.854Z", "9223372036854", "0"]
BAD_LIMITS = ["0", "-1", "5001", "1.5", "1e3", "NaN", "inf", "9" * 40, "-" + "9" * 40, "", "ten"]
BAD_SYMBOLS = [
    "",
    "x" * 10_000,
    "BTC\x00USDT",
    "ÄÖÜ-USDT",
    "../../etc/passwd",
    "BTCUSDT'--",
    "\U0001f4a9" * 20,
]
BAD_EXCHANGES = ["x" * 100, "bin ance", "", "\x00", "BINANCE" * 10]
BAD_TIMEFRAMES = ["0m", "1y", "", "9" * 40 + "d", "-1m", "1.5h", "x" * 1000]


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, metrics: PlatformMetrics
) -> AsyncIterator[SqlStore]:
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_pg_database()) if request.param == "postgres" else None
        store = open_store(url, tmp_path / "extremes.db", metrics)
        stack.push_async_callback(store.close)
        await seed(store)
        yield store


@pytest.fixture
async def http(any_store: SqlStore, metrics: PlatformMetrics) -> AsyncIterator[httpx.AsyncClient]:
    cache = MemoryCache(metrics=metrics)
    settings = ApiSettings(rate_limit_per_second=0)
    app = create_app(any_store, cache, metrics=metrics, settings=settings, feeds=cache)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client
    await cache.close()


async def _refused(http: httpx.AsyncClient, path: str, params: dict[str, str], parameter: str) -> None:
    response = await http.get(path, params=params)
    assert 400 <= response.status_code < 500, (path, params, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error.get("parameter") == parameter, (path, params, error)


@pytest.mark.parametrize("path", TIME_ROUTES)
@pytest.mark.parametrize("name", ["start", "end"])
async def test_times_out_of_range_are_refused(http: httpx.AsyncClient, path: str, name: str) -> None:
    for value in BAD_TIMES:
        await _refused(http, path, {"symbol": "BTCUSDT", name: value}, name)


@pytest.mark.parametrize("path", TIME_ROUTES)
async def test_times_at_the_edges_of_the_range_are_served(http: httpx.AsyncClient, path: str) -> None:
    for value in GOOD_TIMES:
        for name in ("start", "end"):
            response = await http.get(path, params={"symbol": "BTCUSDT", name: value})
            assert response.status_code == 200, (path, name, value, response.text[:300])
    whole = await http.get(path, params={"symbol": "BTCUSDT", "start": "0", "end": "9223372036854"})
    assert whole.status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/bars", "/api/v1/indicators", "/api/v1/trades"])
async def test_limits_out_of_range_are_refused(http: httpx.AsyncClient, path: str) -> None:
    for value in BAD_LIMITS:
        await _refused(http, path, {"symbol": "BTCUSDT", "limit": value}, "limit")


@pytest.mark.parametrize(
    "path",
    ["/api/v1/bars", "/api/v1/bars/latest", "/api/v1/indicators", "/api/v1/trades", "/api/v1/coverage"],
)
async def test_symbols_exchanges_and_timeframes_out_of_range_are_refused(
    http: httpx.AsyncClient, path: str
) -> None:
    for value in BAD_SYMBOLS:
        await _refused(http, path, {"symbol": value}, "symbol")
    for value in BAD_EXCHANGES:
        await _refused(http, path, {"symbol": "BTCUSDT", "exchange": value}, "exchange")
    if path != "/api/v1/trades" and path != "/api/v1/coverage":
        for value in BAD_TIMEFRAMES:
            await _refused(http, path, {"symbol": "BTCUSDT", "timeframe": value}, "timeframe")


async def test_feeds_and_flags_out_of_range_are_refused(http: httpx.AsyncClient) -> None:
    for value in BAD_EXCHANGES:
        await _refused(http, "/api/v1/feeds", {"exchange": value}, "exchange")
    for value in ("maybe", "", "2", "x" * 1000):
        await _refused(http, "/api/v1/bars", {"symbol": "BTCUSDT", "indicators": value}, "indicators")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("symbol=%ED%A0%80", "symbol"),  # a UTF-8 encoded surrogate
        ("symbol=%FF%FE", "symbol"),  # not UTF-8 at all
        ("symbol=BTCUSDT&start=%FF", "start"),
        ("symbol=BTCUSDT&limit=%00", "limit"),
        ("symbol=BTCUSDT&exchange=%C0%AF", "exchange"),
    ],
)
async def test_undecodable_query_strings_are_refused(
    http: httpx.AsyncClient, query: str, parameter: str
) -> None:
    response = await http.get(f"/api/v1/bars?{query}")
    assert 400 <= response.status_code < 500, (query, response.status_code, response.text[:300])
    assert response.json()["error"].get("parameter") == parameter
