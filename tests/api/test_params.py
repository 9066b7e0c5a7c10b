"""Every unusable parameter gets a 4xx JSON error that names it and says why; never a 500."""

from __future__ import annotations

import httpx
import pytest

BARS = "/api/v1/bars"


async def _error(client: httpx.AsyncClient, path: str, params: dict[str, str], status: int) -> dict[str, str]:
    response = await client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, str] = response.json()["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


@pytest.mark.parametrize(
    ("params", "parameter", "fragment"),
    [
        ({"timeframe": "7x"}, "timeframe", "invalid timeframe '7x'"),
        ({"timeframe": "7m"}, "timeframe", "must divide a day evenly"),
        ({"limit": "0"}, "limit", "must be between 1 and 5000 (got 0)"),
        ({"limit": "5001"}, "limit", "must be between 1 and 5000 (got 5001)"),
        ({"limit": "99999999999999999999999"}, "limit", "must be between 1 and 5000"),
        ({"limit": "ten"}, "limit", "valid integer"),
        ({"limit": "1.5"}, "limit", "valid integer"),
        ({"start": "yesterday"}, "start", "invalid time 'yesterday'"),
        ({"end": "2024-13-01"}, "end", "invalid time '2024-13-01'"),
        ({"start": "-5"}, "start", "outside 1970-01-01T00:00:00.000Z..2262-04-11T23:47:16.854Z"),
        ({"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "start", "must be before end"),
        ({"start": "1704067200000", "end": "1704067200000"}, "start", "must be before end"),
        ({"indicators": "maybe"}, "indicators", "valid boolean"),
        ({"exchange": "Bin ance!"}, "exchange", "invalid exchange name"),
        ({"symbol": ""}, "symbol", "at least 1 character"),
        ({"symbol": "X" * 40}, "symbol", "at most 32 characters"),
    ],
)
async def test_bars_bad_parameter_is_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, str], parameter: str, fragment: str
) -> None:
    error = await _error(client, BARS, {"symbol": "BTC-USDT", **params}, 422)
    assert error["code"] == "invalid_parameter"
    assert error["parameter"] == parameter
    assert error["message"].startswith(f"{parameter}: ")
    assert fragment in error["message"]


async def test_missing_symbol_is_422_naming_it(client: httpx.AsyncClient) -> None:
    error = await _error(client, BARS, {}, 422)
    assert (error["parameter"], error["message"]) == ("symbol", "symbol: Field required")


async def test_unknown_symbol_is_404_naming_it(client: httpx.AsyncClient) -> None:
    error = await _error(client, BARS, {"symbol": "DOGE-USDT"}, 404)
    assert error == {
        "code": "not_found",
        "message": "unknown symbol 'DOGE-USDT' on binance",
        "parameter": "symbol",
        "request_id": error["request_id"],
    }


async def test_unknown_exchange_is_404_naming_it(client: httpx.AsyncClient) -> None:
    error = await _error(client, BARS, {"symbol": "BTC-USDT", "exchange": "kraken"}, 404)
    assert error["parameter"] == "exchange"
    assert error["message"] == "unknown exchange 'kraken' (known: binance, coinbase)"


async def test_symbol_of_another_exchange_is_unknown(client: httpx.AsyncClient) -> None:
    error = await _error(client, BARS, {"symbol": "BTC-USD"}, 404)
    assert error["parameter"] == "symbol"


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/api/v1/indicators", {"symbol": "BTC-USDT", "timeframe": "1y"}, "timeframe"),
        ("/api/v1/indicators", {"symbol": "BTC-USDT", "limit": "0"}, "limit"),
        ("/api/v1/bars/latest", {"symbol": "BTC-USDT", "timeframe": "0m"}, "timeframe"),
        ("/api/v1/bars/latest", {"symbol": "NOPE"}, "symbol"),
        ("/api/v1/trades", {"symbol": "BTC-USDT", "limit": "1001"}, "limit"),
        ("/api/v1/trades", {"symbol": "BTC-USDT", "limit": "-1"}, "limit"),
        ("/api/v1/trades", {"symbol": "BTC-USDT", "exchange": "nowhere"}, "exchange"),
    ],
)
async def test_other_endpoints_name_the_bad_parameter(
    client: httpx.AsyncClient, path: str, params: dict[str, str], parameter: str
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code in (404, 422)
    assert response.json()["error"]["parameter"] == parameter


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["message"] == "no such endpoint: GET /api/v1/nothing-here"


async def test_wrong_method_is_json_405(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/bars")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
