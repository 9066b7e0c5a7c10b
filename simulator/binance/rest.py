"""The simulated Binance's REST endpoints (/api/v3/...).

Errors are Binance's: HTTP 400 with `{"code":-1121,"msg":"Invalid symbol."}` and friends. Every /api
response carries `X-MBX-USED-WEIGHT-1M` (weight used in the current UTC minute: trades and
historicalTrades 25, exchangeInfo 20, ping and time 1). 429s come from the `rate_limit` fault, or from
`weight_limit` when one is set (off by default so tests and benchmarks can backfill freely).
Not confirmed from Binance's text, chosen here: limit > 1000 is clamped to 1000, limit < 1 is -1130.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from aiohttp import web

from simulator.candles import MS_PER_MINUTE, MinuteCandle, minute_candles, minute_of
from simulator.history import Recorded
from simulator.rest import RestRefusal, json_response
from simulator.symbols import split_symbol
from simulator.venue import ExchangeView, Handler, RestRoute

WEIGHTS = {
    "/api/v3/ping": 1,
    "/api/v3/time": 1,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/trades": 25,
    "/api/v3/historicalTrades": 25,
    "/api/v3/klines": 2,
}
INTERVALS = (
    "1s",
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "3d",
    "1w",
    "1M",
)
DEFAULT_LIMIT, MAX_LIMIT = 500, 1000
_LIMIT_MSG = (
    "Too much request weight used; current limit is {} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)
_EIGHT = Decimal("0.00000001")


class BinanceApiError(RestRefusal):
    """A request the simulated exchange refuses: HTTP `status` with Binance's code and message."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(status, {"code": code, "msg": msg})


def too_many_requests_body(weight_limit: int | None) -> dict[str, Any]:
    """Binance's 429 body (-1003)."""
    return {"code": -1003, "msg": _LIMIT_MSG.format(weight_limit or 6000)}


class WeightMeter:
    """Request weight used in the current UTC minute, like Binance's X-MBX-USED-WEIGHT-1M."""

    def __init__(self) -> None:
        self._minute = -1
        self.used = 0

    def add(self, weight: int) -> int:
        minute = int(time.time() // 60)
        if minute != self._minute:
            self._minute, self.used = minute, 0
        self.used += weight
        return self.used


class Params:
    """Query parameters of one request, tracking which were read (Binance refuses unread ones: -1104)."""

    def __init__(self, request: web.Request) -> None:
        query = request.query
        if len(set(query.keys())) != len(query):
            raise BinanceApiError(-1101, "Duplicate values for a parameter detected.")
        self._query = query
        self._read: set[str] = set()

    def text(self, name: str) -> str | None:
        self._read.add(name)
        value = self._query.get(name)
        return value if value else None

    def integer(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not value.isdigit() or len(value) > 20:
            raise BinanceApiError(
                -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
            )
        return int(value)

    def finish(self) -> None:
        unread = set(self._query) - self._read
        if unread:
            raise BinanceApiError(
                -1104,
                f"Not all sent parameters were read; read '{len(self._read & set(self._query))}' "
                f"parameter(s) but was sent '{len(self._query)}'.",
            )


def _quote_qty(price: str, qty: str) -> str:
    try:
        return f"{(Decimal(price) * Decimal(qty)).quantize(_EIGHT):f}"
    except (InvalidOperation, ValueError):
        return "0.00000000"


def trade_rows(entries: list[Recorded]) -> list[dict[str, Any]]:
    return [
        {
            "id": t.trade_id,
            "price": t.price,
            "qty": t.quantity,
            "quoteQty": _quote_qty(t.price, t.quantity),
            "time": t.time_ms,
            "isBuyerMaker": t.is_buyer_maker,
            "isBestMatch": True,
        }
        for t in (e[0] for e in entries)
    ]


class RestApi:
    """aiohttp handlers bound to one exchange, and the weight middleware."""

    def __init__(self, view: ExchangeView, weight_limit: int | None) -> None:
        self._view = view
        self._weight = WeightMeter()
        self.weight_limit = weight_limit

    def routes(self) -> Sequence[RestRoute]:
        return [
            ("/api/v3/ping", self.ping),
            ("/api/v3/time", self.server_time),
            ("/api/v3/exchangeInfo", self.exchange_info),
            ("/api/v3/trades", self.trades),
            ("/api/v3/historicalTrades", self.historical_trades),
            ("/api/v3/klines", self.klines),
        ]

    @web.middleware
    async def weight(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """X-MBX-USED-WEIGHT-1M on every /api response (429s included); 429 past `weight_limit`."""
        resource = request.match_info.route.resource
        endpoint = resource.canonical if resource is not None else "unmatched"
        if not endpoint.startswith("/api/"):
            return await handler(request)
        used = self._weight.add(WEIGHTS.get(endpoint, 1))
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if self.weight_limit is not None and used > self.weight_limit:
            retry_after = str(60 - int(time.time()) % 60)
            body = too_many_requests_body(self.weight_limit)
            return json_response(body, status=429, headers={**headers, "Retry-After": retry_after})
        answer = await handler(request)
        answer.headers.update(headers)
        return answer

    async def ping(self, request: web.Request) -> web.Response:
        Params(request).finish()
        return json_response({})

    async def server_time(self, request: web.Request) -> web.Response:
        Params(request).finish()
        return json_response({"serverTime": time.time_ns() // 1_000_000})

    async def exchange_info(self, request: web.Request) -> web.Response:
        params = Params(request)
        one, many = params.text("symbol"), params.text("symbols")
        params.finish()
        known = self._view.symbols
        wanted = list(known)
        if one is not None:
            wanted = [one]
        elif many is not None:
            try:
                wanted = msgspec.json.decode(many, type=list[str])
            except msgspec.DecodeError as exc:
                raise BinanceApiError(-1100, "Illegal characters found in parameter 'symbols'.") from exc
        if any(s not in known for s in wanted):
            raise BinanceApiError(-1121, "Invalid symbol.")
        return json_response(
            {
                "timezone": "UTC",
                "serverTime": time.time_ns() // 1_000_000,
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": [_symbol_info(s) for s in wanted],
            }
        )

    async def trades(self, request: web.Request) -> web.Response:
        params = Params(request)
        symbol, limit = self._symbol(params), self._limit(params)
        params.finish()
        return json_response(trade_rows(self._view.history_of(symbol).latest(limit)))

    async def historical_trades(self, request: web.Request) -> web.Response:
        params = Params(request)
        symbol, limit = self._symbol(params), self._limit(params)
        from_id = params.integer("fromId")
        params.finish()
        history = self._view.history_of(symbol)
        entries = history.latest(limit) if from_id is None else history.from_id(from_id, limit)
        return json_response(trade_rows(entries))

    async def klines(self, request: web.Request) -> web.Response:
        """1m klines opening in [startTime, endTime] (ms, both inclusive), oldest first, `limit` of them
        (default 500, at most 1000): the oldest from startTime, else the latest up to endTime. Minutes
        without trades, up to the current one, have a kline at the previous close with volume 0 and no
        trades (as Binance's). Only the `1m` interval is served (other valid ones answer no rows);
        `timeZone` is read and ignored."""
        params = Params(request)
        symbol, limit = self._symbol(params), self._limit(params)
        interval = params.text("interval")
        start_ms, end_ms = params.integer("startTime"), params.integer("endTime")
        params.text("timeZone")
        params.finish()
        if interval is None:
            raise BinanceApiError(
                -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."
            )
        if interval not in INTERVALS:
            raise BinanceApiError(-1120, "Invalid interval.")
        if start_ms is not None and end_ms is not None and start_ms > end_ms:
            raise BinanceApiError(-1023, "Start time is greater than end time.")
        if interval != "1m":
            return json_response([])
        end = None if end_ms is None else minute_of(end_ms) + MS_PER_MINUTE
        now_minute = minute_of(time.time_ns() // 1_000_000)
        candles = minute_candles(
            self._view.history_of(symbol), start_ms=start_ms, end_ms=end, limit=limit,
            from_newest=start_ms is None, quiet_until_ms=now_minute + MS_PER_MINUTE,
        )  # fmt: skip
        return json_response([_kline_row(c) for c in candles])

    def _symbol(self, params: Params) -> str:
        symbol = params.text("symbol")
        if symbol is None:
            raise BinanceApiError(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        if not all(c.isupper() or c.isdigit() or c in "-_." for c in symbol) or len(symbol) > 20:
            raise BinanceApiError(
                -1100, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."
            )
        if symbol not in self._view.symbols:
            raise BinanceApiError(-1121, "Invalid symbol.")
        return symbol

    def _limit(self, params: Params) -> int:
        limit = params.integer("limit")
        if limit is None:
            return DEFAULT_LIMIT
        if limit < 1:
            raise BinanceApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        return min(limit, MAX_LIMIT)


def _eight(value: Decimal | str) -> str:
    """Binance writes klines' prices and sizes with 8 decimals ("148976.11427815", "0.00000000"); a value
    with more decimals than that is written exactly as it is (never rounded)."""
    exact = Decimal(value)
    if exact.as_tuple().exponent < -8:  # type: ignore[operator]
        return f"{exact:f}"
    return f"{exact.quantize(_EIGHT):f}"


def _kline_row(c: MinuteCandle) -> list[Any]:
    """[open time, open, high, low, close, volume, close time, quote volume, trades, taker-buy volume,
    taker-buy quote volume, "0"]: Binance's 12 fields, prices as the trades' strings."""
    prices = [_eight(p) for p in (c.open, c.high, c.low, c.close)]
    sums = (c.quote_volume, c.trade_count, _eight(c.taker_buy_volume), _eight(c.taker_buy_quote_volume))
    return [c.open_ms, *prices, _eight(c.volume), c.close_ms, _eight(sums[0]), *sums[1:], "0"]


def _symbol_info(symbol: str) -> dict[str, Any]:
    base, quote = split_symbol(symbol)
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }
