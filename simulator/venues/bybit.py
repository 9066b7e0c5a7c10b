"""Bybit v5 public Spot behind the venue seam: `publicTrade.{symbol}` on `/v5/public/spot` and market REST
(`/v5/market/recent-trade`, `/v5/market/instruments-info`).

Websocket: `{"req_id":"1","op":"subscribe","args":["publicTrade.BTCUSDT"]}` (at most 10 args, and at most
21,000 characters of args per connection) is answered `{"success":true,"ret_msg":"subscribe","conn_id":..,
"req_id":"1","op":"subscribe"}` (req_id only when the request had one); a refused request changes nothing
and is answered `"success":false` with the reason in `ret_msg`. Each trade is its own push
`{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":..,"data":[{"T","s","S","v","p","i","BT","RPI",
"seq"}]}`: `i` the trade id as a STRING, `S` the taker's side (Buy/Sell), `p`/`v` the exact decimal
strings, `seq` a cross sequence that grows by more than one between trades. `{"op":"ping"}` is answered
`{"success":true,"ret_msg":"pong","conn_id":..,"op":"ping"}`. A connection that sends and receives nothing
for 10 minutes is closed. A subscription sends no past trades.
REST (HTTP 200, `retCode` 0 or an error code): `recent-trade?category=spot&symbol=&limit=` serves only the
latest trades, newest first, limit 1-60 (default 60): what is older cannot be fetched at all.
`kline?category=spot&symbol=&interval=1&start=&end=&limit=` answers `result.list` rows `[startTime (ms),
open, high, low, close, volume, turnover]`, all strings (sums without trailing zeros), NEWEST first, for
the minutes with trades that overlap [start, end] (ms, both inclusive: a `start` inside a minute gets that
minute, as the live API does), the newest `limit` of them (1-1000, default 200; larger is clamped);
without `start` the `limit` minutes up to `end` (else the latest trade). Other valid intervals (3 ... 720,
D, W, M) answer no rows; errors are retCode 10001.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from simulator.candles import MS_PER_MINUTE, MinuteCandle, minute_candles, minute_of
from simulator.derived_fields import connection_uuid, order_sequence, taker_side
from simulator.malformed import COMMON_KINDS, TradeFields
from simulator.rest import RestRefusal, int_param, json_response
from simulator.trades import MarketTrade
from simulator.venue import (
    ExchangeView,
    IdleRule,
    KeepAlive,
    RestRoute,
    Route,
    VenueOptions,
    VenueProtocol,
    VenueSession,
    client_json,
)

TOPIC = "publicTrade."
MAX_ARGS = 10
MAX_ARGS_CHARS = 21_000
RECENT_LIMIT = 60
IDLE_S = 600.0
KLINE_DEFAULT_LIMIT, KLINE_MAX_LIMIT = 200, 1000
INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M")
_PUSH: list[Route] = [(None, None, b"")]  # the pre-encoded push, unwrapped


def push_payload(trade: MarketTrade) -> bytes:
    """The `publicTrade` push of one trade (fields in the order Bybit sends them)."""
    ms, side = trade.time_ms, taker_side(trade).capitalize()
    return (
        f'{{"topic":"{TOPIC}{trade.symbol}","type":"snapshot","ts":{ms},"data":[{{"T":{ms},'
        f'"s":"{trade.symbol}","S":"{side}","v":"{trade.quantity}","p":"{trade.price}",'
        f'"i":"{trade.trade_id}","BT":false,"RPI":false,"seq":{order_sequence(trade.trade_id)}}}]}}'
    ).encode()


class _Refused(Exception):
    """A request refused; the message is Bybit's `ret_msg`."""


class BybitSession(VenueSession):
    """One connection: its subscribed topics' symbols, in subscription order."""

    def __init__(self, conn_id: int, view: ExchangeView) -> None:
        self._view = view
        self.conn_id = connection_uuid(conn_id)
        self._symbols: dict[str, None] = {}

    @property
    def subscribed(self) -> bool:
        return bool(self._symbols)

    def streams(self) -> list[str]:
        return [TOPIC + symbol for symbol in self._symbols]

    def routes(self) -> dict[str, list[Route]]:
        return dict.fromkeys(self._symbols, _PUSH)

    def on_message(self, data: str | bytes, cursor: int) -> list[bytes]:
        request = client_json(data)
        req_id = request.get("req_id") if isinstance(request, dict) else None
        tail = {"req_id": req_id} if isinstance(req_id, str) else {}
        op = request.get("op") if isinstance(request, dict) else None
        op = op if isinstance(op, str) else ""
        try:
            if op == "ping":
                return [self._reply(True, "pong", tail, op)]
            if op not in ("subscribe", "unsubscribe"):
                raise _Refused(f"Invalid op: {op[:40]}" if op else "Invalid request")
            symbols = self._symbols_of(request)
            if op == "subscribe":
                self._subscribe(symbols)
            else:
                for symbol in symbols:
                    self._symbols.pop(symbol, None)
                self._version += 1
        except _Refused as exc:
            self.errors += 1
            return [self._reply(False, str(exc), tail, op)]
        return [self._reply(True, op, tail, op)]

    def _symbols_of(self, request: object) -> list[str]:
        args = request.get("args") if isinstance(request, dict) else None
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            raise _Refused("args must be a non-empty list of topics")
        if len(args) > MAX_ARGS:
            raise _Refused(f"args size >{MAX_ARGS}")
        unknown = [a for a in args if not a.startswith(TOPIC) or a[len(TOPIC) :] not in self._view.symbols]
        if unknown:
            raise _Refused(f"Invalid symbol :[{unknown[0][:60]}]")
        return [a[len(TOPIC) :] for a in dict.fromkeys(args)]

    def _subscribe(self, symbols: list[str]) -> None:
        new = [s for s in symbols if s not in self._symbols]
        if sum(len(TOPIC + s) for s in (*self._symbols, *new)) > MAX_ARGS_CHARS:
            raise _Refused(f"args length exceeds {MAX_ARGS_CHARS} characters per connection")
        self._symbols.update(dict.fromkeys(new))
        self._version += 1

    def _reply(self, success: bool, ret_msg: str, tail: dict[str, Any], op: str) -> bytes:
        head = {"success": success, "ret_msg": ret_msg, "conn_id": self.conn_id}
        return msgspec.json.encode({**head, **tail, "op": op})


class BybitProtocol(VenueProtocol):
    """Bybit v5 public Spot (see the module docstring and simulator/README.md)."""

    name = "bybit"
    default_symbols = ("BTCUSDT", "ETHUSDT")
    symbol_separator = ""
    ws_paths = ("/v5/public/spot",)
    malformed_kinds = COMMON_KINDS
    trade_fields = TradeFields(kind="topic", price="p", size="v", trade_id="i", symbol="s")
    encode_trade = staticmethod(push_payload)
    rate_limited_body = {"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "retExtInfo": {}}

    def __init__(self, options: VenueOptions) -> None:
        super().__init__(options)
        self.keepalive = KeepAlive(idle=IdleRule(IDLE_S, 1000, "idle timeout", until="traffic"))

    def open(self, request: web.Request, conn_id: int, view: ExchangeView) -> VenueSession:
        return BybitSession(conn_id, view)

    def rest_routes(self, view: ExchangeView) -> Sequence[RestRoute]:
        rest = _Rest(self, view)
        return [
            ("/v5/market/recent-trade", rest.recent_trade),
            ("/v5/market/instruments-info", rest.instruments_info),
            ("/v5/market/kline", rest.kline),
        ]


def _body(code: int, message: str, result: dict[str, Any]) -> dict[str, Any]:
    now_ms = time.time_ns() // 1_000_000
    return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": now_ms}


def _ok(result: dict[str, Any]) -> web.Response:
    return json_response(_body(0, "OK", result))


def _refusal(code: int, message: str) -> RestRefusal:
    return RestRefusal(200, _body(code, message, {}))


class _Rest:
    """Market REST handlers of one exchange."""

    def __init__(self, venue: BybitProtocol, view: ExchangeView) -> None:
        self._venue, self._view = venue, view

    async def recent_trade(self, request: web.Request) -> web.Response:
        _spot(request)
        symbol = request.query.get("symbol", "")
        if symbol not in self._view.symbols:
            raise _refusal(10001, "Not supported symbols")
        try:
            limit = int_param(request, "limit")
        except ValueError:
            limit = 0
        if limit is not None and limit < 1:
            raise _refusal(10001, "params error: limit")
        entries = self._view.history_of(symbol).latest(min(limit or RECENT_LIMIT, RECENT_LIMIT))
        return _ok({"category": "spot", "list": [_recent_row(e[0]) for e in reversed(entries)]})

    async def kline(self, request: web.Request) -> web.Response:
        _spot(request)
        symbol = request.query.get("symbol", "")
        if symbol not in self._view.symbols:
            raise _refusal(10001, "Not supported symbols")
        interval = request.query.get("interval")
        if interval not in INTERVALS:
            raise _refusal(10001, "params error: intervalTime is invalid")
        limit, start, end = (_int(request, name) for name in ("limit", "start", "end"))
        if limit is not None and limit < 1:
            raise _refusal(10001, "params error: limit")
        if start is not None and end is not None and start > end:
            raise _refusal(10001, "params error: start must be less than end")
        rows: list[MinuteCandle] = []
        if interval == "1":
            rows = minute_candles(
                self._view.history_of(symbol), start_ms=None if start is None else minute_of(start),
                end_ms=None if end is None else minute_of(end) + MS_PER_MINUTE,
                limit=min(limit or KLINE_DEFAULT_LIMIT, KLINE_MAX_LIMIT), from_newest=True,
            )  # fmt: skip
        listed = [_kline_row(c) for c in reversed(rows)]
        return _ok({"category": "spot", "symbol": symbol, "list": listed})

    async def instruments_info(self, request: web.Request) -> web.Response:
        _spot(request)
        wanted = request.query.get("symbol")
        listed = [s for s in sorted(self._view.symbols) if wanted in (None, s)]
        return _ok({"category": "spot", "list": [self._instrument(s) for s in listed], "nextPageCursor": ""})

    def _instrument(self, symbol: str) -> dict[str, Any]:
        base, quote = self._venue.instrument(symbol)
        return {
            "symbol": symbol, "baseCoin": base, "quoteCoin": quote, "innovation": "0", "status": "Trading",
            "marginTrading": "none", "stTag": "0",
            "lotSizeFilter": {"basePrecision": "0.00000001", "quotePrecision": "0.00000001",
                              "minOrderQty": "0.00000001", "maxOrderQty": "1000000", "minOrderAmt": "1",
                              "maxOrderAmt": "10000000"},
            "priceFilter": {"tickSize": "0.00000001"},
        }  # fmt: skip


def _spot(request: web.Request) -> None:
    if request.query.get("category") != "spot":
        raise _refusal(10001, "params error: category only support spot")


def _int(request: web.Request, name: str) -> int | None:
    try:
        return int_param(request, name)
    except ValueError:
        raise _refusal(10001, f"params error: {name}") from None


def _kline_row(c: MinuteCandle) -> list[str]:
    """[startTime, open, high, low, close, volume (base), turnover (quote)]."""
    return [str(c.open_ms), c.open, c.high, c.low, c.close, _plain(c.volume), _plain(c.quote_volume)]


def _plain(value: Decimal) -> str:
    """A sum as Bybit writes it: no exponent, no trailing zeros."""
    return f"{value.normalize():f}" if value else "0"


def _recent_row(trade: MarketTrade) -> dict[str, Any]:
    return {
        "execId": str(trade.trade_id), "symbol": trade.symbol, "price": trade.price, "size": trade.quantity,
        "side": taker_side(trade).capitalize(), "time": str(trade.time_ms), "isBlockTrade": False,
        "isRPITrade": False, "seq": str(order_sequence(trade.trade_id)),
    }  # fmt: skip
