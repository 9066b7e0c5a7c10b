"""OKX v5 behind the venue seam: public websockets and market-data REST.

Websockets: `/ws/v5/public` serves channel `trades` (aggregated; here every trade is its own aggregate,
`count` "1", `tradeId` its id, plus `seqId`), `/ws/v5/business` serves `trades-all` (one trade per push,
no `count`). `{"id":"1","op":"subscribe","args":[{"channel":..,"instId":..}]}` gets one ack per arg
(`{"id":"1","event":"subscribe","arg":{..},"connId":".."}`); pushes are `{"arg":{..},"data":[{..}]}` with
`side` the TAKER side and `tradeId`/`ts` strings. Errors `{"id":..,"event":"error","code":..,"msg":..,
"connId":..}` (id only when the request had one): 60012 bad JSON, op or args; 60018 unknown channel or
instId, or a channel of the other endpoint; 60014 past 480 subscribe/unsubscribe requests per hour per
connection. A request with an error changes nothing. The client text `ping` is answered `pong`. A
connection that has sent and received nothing for `idle_timeout` (30 s) is closed 4004 "No data received
in 30s."; `stop()` sends the notice 64008 first, then closes 1001. No server ping frames.
REST: `/api/v5/public/instruments?instType=SPOT`, `/api/v5/market/history-trades` (type 1: paging by
trade id, newest first, `after` older / `before` newer, limit <= 100), `/api/v5/market/trades` (latest,
limit <= 500), `/api/v5/market/history-candles` and `/api/v5/market/candles` (`bar=1m`, rows `[ts, o, h,
l, c, vol, volCcy, volCcyQuote, confirm]` newest first, open times strictly between `before` and `after`
(ms); limit <= 100 and <= 300; other valid bars answer no rows). Errors HTTP 400
`{"code":"51000"|"50014",..,"data":[]}` for bad parameters, HTTP 200 with code 51001 for an unknown
instrument (as the live API answers); 429 is code 50011.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from aiohttp import web

from simulator.candles import MinuteCandle, minute_candles
from simulator.derived_fields import order_sequence, taker_side
from simulator.history import Recorded
from simulator.malformed import COMMON_KINDS, TradeFields
from simulator.rest import RestRefusal, cursor_params, json_response
from simulator.trades import MarketTrade
from simulator.venue import (
    ExchangeView,
    HandshakeRefused,
    IdleRule,
    KeepAlive,
    RestRoute,
    Route,
    VenueOptions,
    VenueProtocol,
    VenueSession,
    client_json,
)

ENDPOINT_CHANNELS = {"/ws/v5/public": "trades", "/ws/v5/business": "trades-all"}
MAX_OPS_PER_HOUR = 480
HISTORY_LIMIT, TRADES_DEFAULT_LIMIT, TRADES_MAX_LIMIT = 100, 100, 500
CANDLE_LIMITS = {"/api/v5/market/history-candles": 100, "/api/v5/market/candles": 300}
BARS = ("1m", "3m", "5m", "15m", "30m", "1H", "2H", "4H", "6H", "12H", "1D", "1W", "1M", "6Hutc", "12Hutc",
        "1Dutc", "1Wutc", "1Mutc")  # fmt: skip
_WRONG_URL = (
    "Wrong URL or channel:{},instId:{} doesn't exist. "
    "Please use the correct URL, channel and parameters referring to API document."
)
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_UPGRADE = "The connection will soon be closed for a service upgrade. Please reconnect."


def trade_row(trade: MarketTrade) -> bytes:
    """One `trades-all` data row (the venue's pre-encoded payload)."""
    return (
        f'{{"instId":"{trade.symbol}","tradeId":"{trade.trade_id}","px":"{trade.price}",'
        f'"sz":"{trade.quantity}","side":"{taker_side(trade)}","source":"0","ts":"{trade.time_ms}"}}'
    ).encode()


def aggregated_row(trade: MarketTrade) -> bytes:
    """One `trades` data row: the trade as an aggregate of one."""
    return (
        f'{{"instId":"{trade.symbol}","tradeId":"{trade.trade_id}","px":"{trade.price}",'
        f'"sz":"{trade.quantity}","side":"{taker_side(trade)}","ts":"{trade.time_ms}","count":"1",'
        f'"source":"0","seqId":{order_sequence(trade.trade_id)}}}'
    ).encode()


class _Refused(Exception):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


class OkxSession(VenueSession):
    """One connection to one endpoint: its channel, the subscribed instIds, recent subscribe requests."""

    def __init__(self, channel: str, conn_id: int, view: ExchangeView) -> None:
        self._channel, self._view = channel, view
        self.conn_id = f"{conn_id * 2654435761 & 0xFFFFFFFF:08x}"
        self._subscribed: dict[str, None] = {}
        self._ops: collections.deque[float] = collections.deque(maxlen=MAX_OPS_PER_HOUR)

    @property
    def subscribed(self) -> bool:
        return bool(self._subscribed)

    def streams(self) -> list[str]:
        return [f"{self._channel}:{inst}" for inst in self._subscribed]

    def routes(self) -> dict[str, list[Route]]:
        render = aggregated_row if self._channel == "trades" else None
        return {inst: [(render, self._prefix(inst), b"]}")] for inst in self._subscribed}

    def _prefix(self, inst: str) -> bytes:
        return f'{{"arg":{{"channel":"{self._channel}","instId":"{inst}"}},"data":['.encode()

    def on_message(self, data: str | bytes, cursor: int) -> list[bytes]:
        if data in ("ping", b"ping"):
            return [b"pong"]
        request = client_json(data)
        request_id = request.get("id") if isinstance(request, dict) else None
        request_id = request_id if isinstance(request_id, str) else None
        try:
            op, args = _checked(request, data)
            insts = self._check_args(args)
            self._count_op()
        except _Refused as exc:
            self.errors += 1
            return [self._reply(request_id, event="error", code=exc.code, msg=exc.msg)]
        for inst in insts:
            if op == "subscribe":
                self._subscribed[inst] = None
            else:
                self._subscribed.pop(inst, None)
        self._version += 1
        return [self._reply(request_id, event=op, arg=arg) for arg in args]

    def farewell(self, time_ms: int) -> list[bytes]:
        return [self._reply(None, event="notice", code="64008", msg=_UPGRADE)]

    def _check_args(self, args: list[dict[str, str]]) -> list[str]:
        for arg in args:
            if arg["channel"] != self._channel or arg["instId"] not in self._view.symbols:
                raise _Refused("60018", _WRONG_URL.format(arg["channel"], arg["instId"]))
        return [arg["instId"] for arg in args]

    def _count_op(self) -> None:
        now = time.monotonic()
        if len(self._ops) == MAX_OPS_PER_HOUR and now - self._ops[0] < 3600.0:
            raise _Refused("60014", "Requests too frequent.")
        self._ops.append(now)

    def _reply(self, request_id: str | None, **fields: object) -> bytes:
        head = {} if request_id is None else {"id": request_id}
        return msgspec.json.encode({**head, **fields, "connId": self.conn_id})


def _checked(request: object, data: str | bytes) -> tuple[str, list[dict[str, str]]]:
    """(op, args) of a well-formed subscribe/unsubscribe request; 60012 otherwise."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    invalid = _Refused("60012", f"Invalid request: {text[:200]}")
    if not isinstance(request, dict) or request.get("op") not in ("subscribe", "unsubscribe"):
        raise invalid
    request_id, args = request.get("id"), request.get("args")
    if request_id is not None and not (isinstance(request_id, str) and _ID.match(request_id)):
        raise invalid
    if not isinstance(args, list) or not args or not all(_valid_arg(a) for a in args):
        raise invalid
    return request["op"], args


def _valid_arg(arg: object) -> bool:
    return isinstance(arg, dict) and all(isinstance(arg.get(k), str) for k in ("channel", "instId"))


class OkxProtocol(VenueProtocol):
    """OKX v5 (see the module docstring and simulator/README.md)."""

    name = "okx"
    default_symbols = ("BTC-USDT", "ETH-USDT")
    symbol_separator = "-"
    ws_paths = tuple(ENDPOINT_CHANNELS)
    malformed_kinds = COMMON_KINDS
    trade_fields = TradeFields(
        kind="channel",
        price="px",
        size="sz",
        trade_id="tradeId",
        symbol="instId",
        unknown_symbol="NOSUCH-COIN",
    )
    encode_trade = staticmethod(trade_row)
    rate_limited_body = {"code": "50011", "msg": "Too Many Requests", "data": []}

    def __init__(self, options: VenueOptions) -> None:
        super().__init__(options)
        reason = f"No data received in {options.idle_timeout:g}s."
        self.keepalive = KeepAlive(idle=IdleRule(options.idle_timeout, 4004, reason, until="traffic"))

    def open(self, request: web.Request, conn_id: int, view: ExchangeView) -> VenueSession:
        channel = ENDPOINT_CHANNELS.get(request.path)
        if channel is None:
            raise HandshakeRefused(json_response({"code": "404", "msg": "Not Found"}, status=404))
        return OkxSession(channel, conn_id, view)

    def rest_routes(self, view: ExchangeView) -> Sequence[RestRoute]:
        rest = _Rest(self, view)
        return [
            ("/api/v5/public/instruments", rest.instruments),
            ("/api/v5/market/history-trades", rest.history_trades),
            ("/api/v5/market/trades", rest.trades),
            ("/api/v5/market/history-candles", rest.candles),
            ("/api/v5/market/candles", rest.candles),
        ]


def _refusal(code: str, msg: str, status: int = 400) -> RestRefusal:
    return RestRefusal(status, {"code": code, "msg": msg, "data": []})


def _ok(data: list[dict[str, Any]] | list[list[str]]) -> web.Response:
    return json_response({"code": "0", "msg": "", "data": data})


class _Rest:
    """Market-data REST handlers of one exchange."""

    def __init__(self, venue: OkxProtocol, view: ExchangeView) -> None:
        self._venue, self._view = venue, view

    async def instruments(self, request: web.Request) -> web.Response:
        inst_type = _required(request, "instType")
        if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            raise _refusal("51000", "Parameter instType error")
        wanted = request.query.get("instId")
        listed = sorted(self._view.symbols) if inst_type == "SPOT" else []
        return _ok([self._instrument(s) for s in listed if wanted in (None, s)])

    async def history_trades(self, request: web.Request) -> web.Response:
        inst = self._listed(request)
        if request.query.get("type", "1") != "1":
            raise _refusal("51000", "Parameter type error")  # type 2 (by time) is not simulated
        try:
            limit, after, before = cursor_params(request, default=HISTORY_LIMIT, maximum=HISTORY_LIMIT)
        except ValueError as exc:
            raise _refusal("51000", f"Parameter {exc} error") from None
        page = self._view.history_of(inst).page(after=after, before=before, limit=limit)
        return _ok([_rest_row(e) for e in page])

    async def trades(self, request: web.Request) -> web.Response:
        inst = self._listed(request)
        try:
            limit, _, _ = cursor_params(request, default=TRADES_DEFAULT_LIMIT, maximum=TRADES_MAX_LIMIT)
        except ValueError as exc:
            raise _refusal("51000", f"Parameter {exc} error") from None
        return _ok([_rest_row(e) for e in reversed(self._view.history_of(inst).latest(limit))])

    async def candles(self, request: web.Request) -> web.Response:
        inst = self._listed(request)
        maximum = CANDLE_LIMITS[request.path]
        bar = request.query.get("bar", "1m")
        if bar not in BARS:
            raise _refusal("51000", "Parameter bar error")
        try:
            limit, after, before = cursor_params(request, default=100, maximum=maximum)
        except ValueError as exc:
            raise _refusal("51000", f"Parameter {exc} error") from None
        if bar != "1m":
            return _ok([])
        start = None if before is None else before + 1
        rows = minute_candles(
            self._view.history_of(inst), start_ms=start, end_ms=after, limit=limit,
            from_newest=not (before is not None and after is None),
        )  # fmt: skip
        now_ms = time.time_ns() // 1_000_000
        return _ok([_candle_row(c, now_ms) for c in reversed(rows)])

    def _listed(self, request: web.Request) -> str:
        inst = _required(request, "instId")
        if inst not in self._view.symbols:
            raise _refusal("51001", "Instrument ID doesn't exist.", status=200)
        return inst

    def _instrument(self, inst: str) -> dict[str, Any]:
        base, quote = self._venue.instrument(inst)
        return {
            "instType": "SPOT", "instId": inst, "uly": "", "instFamily": "", "baseCcy": base,
            "quoteCcy": quote, "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "",
            "stk": "", "listTime": "1548133413000", "expTime": "", "lever": "10", "tickSz": "0.00000001",
            "lotSz": "0.00000001", "minSz": "0.00000001", "ctType": "", "alias": "", "state": "live",
        }  # fmt: skip


def _required(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise _refusal("50014", f"{name} cannot be empty")
    return value


def _rest_row(entry: Recorded) -> dict[str, Any]:
    trade = entry[0]
    return {
        "instId": trade.symbol, "side": taker_side(trade), "sz": trade.quantity, "source": "0",
        "px": trade.price, "tradeId": str(trade.trade_id), "ts": str(trade.time_ms),
    }  # fmt: skip


def _candle_row(c: MinuteCandle, now_ms: int) -> list[str]:
    """[ts, o, h, l, c, vol (base), volCcy (quote), volCcyQuote (quote), confirm ("1": minute over)]."""
    confirm = "1" if c.close_ms < now_ms else "0"
    quote = f"{c.quote_volume:f}"
    return [str(c.open_ms), c.open, c.high, c.low, c.close, f"{c.volume:f}", quote, quote, confirm]
