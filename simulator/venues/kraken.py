"""Kraken Spot WebSocket v2 behind the venue seam: the `trade` channel on `/v2` and public REST
(`/0/public/Trades`, `/0/public/AssetPairs`).

Websocket: on connect a `status` message; `{"method":"subscribe","params":{"channel":"trade","symbol":
["BTC/USD"],"snapshot":true},"req_id":1}` is acknowledged once per symbol (`{"method":"subscribe","result":
{"channel":"trade","snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":..,"time_out":..,
"req_id":1}`), then with `snapshot` (default false) one `{"channel":"trade","type":"snapshot","data":[..]}`
per symbol with its latest 50 trades the connection could have seen, then `type` "update" messages of one
trade each. Rows `{"symbol","side","price","qty","ord_type","trade_id","timestamp"}`: `price` and `qty` are
JSON NUMBERS written with exactly the digits of the trade's decimal text, `side` the taker's, `trade_id`
the per-pair sequence, `timestamp` RFC 3339 with microseconds. `{"channel":"heartbeat"}` every
`heartbeat_interval` once something is subscribed; `{"method":"ping","req_id":N}` answers `pong`.
Refusals are `{"error":..,"method":..,"success":false,..}` (per symbol for unknown or repeated pairs);
the connection stays open.
REST: `Trades?pair=&since=&count=` answers the trades stamped strictly after `since` (ns; seconds are
accepted too), oldest first, at most `count` (1-1000, default 1000), under the pair's legacy key with
`last` (ns) to pass as the next `since`; errors are HTTP 200 with an `error` list. Pairs are named as
Kraken names them: wsname `XBT/USD`, altname `XBTUSD`, key `XXBTZUSD` (BTC -> XBT, DOGE -> XDG); any of
them, or the v2 name `BTC/USD`, is accepted as `pair`.
REST candles: `OHLC?pair=&interval=1&since=<s>` answers, under the pair's legacy key, rows `[time (s),
open, high, low, close, vwap, volume, count]` (strings but time and count; volume with 8 decimals), oldest
first, for the minutes with trades opening at or after `since` (Kraken's reading of `since` is not
documented; the collector asks a minute early either way) and only within the latest 720 minutes, the
current one included, whatever `since` asks. The current minute's row is always there once the pair has
traded (at the previous close with volume 0 when nothing traded yet), as Kraken documents; `last` is the
open time (s) of the newest closed row (else `since`, else 0). Other valid intervals (5, 15, 30, 60, 240,
1440, 10080, 21600) answer no rows; an invalid interval or `since` is `EGeneral:Invalid arguments`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from simulator.candles import MS_PER_MINUTE, MinuteCandle, minute_candles, minute_of, quiet_candle
from simulator.derived_fields import iso_time_ms, iso_time_ns, json_number, taker_order_type, taker_side
from simulator.history import Recorded
from simulator.malformed import NUMERIC_PRICE_KINDS, TradeFields
from simulator.rest import int_param, json_response
from simulator.trades import MarketTrade
from simulator.venue import (
    ExchangeView,
    KeepAlive,
    RestRoute,
    Route,
    VenueOptions,
    VenueProtocol,
    VenueSession,
    client_json,
)

SNAPSHOT_TRADES = 50
MAX_COUNT = 1000
OHLC_POINTS = 720  # the most recent entries only, the current minute's included
OHLC_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
_VOLUME = Decimal("0.00000001")
_UPDATE: list[Route] = [(None, None, b"")]  # the pre-encoded update message, unwrapped
_HEARTBEAT = b'{"channel":"heartbeat"}'
# Kraken's own codes for assets the v2 API (and everyone else) names otherwise.
_KRAKEN_CODES = {"BTC": "XBT", "DOGE": "XDG"}
_FIAT = frozenset({"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF"})
_LEGACY_CRYPTO = frozenset({"XBT", "ETH", "LTC", "XDG", "XRP", "XLM", "ETC", "XMR", "ZEC", "MLN", "REP"})
_SECONDS = re.compile(r"^[0-9]{1,11}(\.[0-9]{1,9})?$")
_NS_FROM = 10**12  # a `since` at least this large is nanoseconds, a smaller one seconds


def trade_row(trade: MarketTrade) -> str:
    """One trade as a `data` entry of a trade message (prices as JSON numbers)."""
    return (
        f'{{"symbol":"{trade.symbol}","side":"{taker_side(trade)}","price":{json_number(trade.price)},'
        f'"qty":{json_number(trade.quantity)},"ord_type":"{taker_order_type(trade)}",'
        f'"trade_id":{trade.trade_id},"timestamp":"{iso_time_ms(trade.time_ms)}"}}'
    )


def trade_message(trades: Sequence[MarketTrade], kind: str = "update") -> bytes:
    rows = ",".join(trade_row(t) for t in trades)
    return f'{{"channel":"trade","type":"{kind}","data":[{rows}]}}'.encode()


def update_message(trade: MarketTrade) -> bytes:
    return trade_message((trade,))


class _Refused(Exception):
    """A request refused with the error text `message` (for one `symbol`, or for the whole request)."""

    def __init__(self, message: str, symbol: str | None = None) -> None:
        super().__init__(message)
        self.symbol = symbol


class KrakenSession(VenueSession):
    """One connection: the pairs subscribed to `trade`, in subscription order."""

    def __init__(self, conn_id: int, view: ExchangeView) -> None:
        self._conn_id, self._view = conn_id, view
        self._pairs: dict[str, None] = {}

    @property
    def subscribed(self) -> bool:
        return bool(self._pairs)

    def streams(self) -> list[str]:
        return [f"trade:{pair}" for pair in self._pairs]

    def routes(self) -> dict[str, list[Route]]:
        return dict.fromkeys(self._pairs, _UPDATE)

    def greeting(self, now_ns: int) -> list[bytes]:
        status = {"system": "online", "api_version": "v2", "connection_id": self._conn_id, "version": "2.0.8"}
        return [msgspec.json.encode({"channel": "status", "type": "update", "data": [status]})]

    def heartbeat(self, cursor: int, now_ns: int) -> list[bytes]:
        return [_HEARTBEAT] if self._pairs else []

    def on_message(self, data: str | bytes, cursor: int) -> list[bytes]:
        time_in = iso_time_ns(time.time_ns())
        request = client_json(data)
        if not isinstance(request, dict):
            return self._refuse(_Refused("Malformed request"), None, {}, time_in)
        method, req_id = request.get("method"), request.get("req_id")
        tail = {"req_id": req_id} if isinstance(req_id, int) and not isinstance(req_id, bool) else {}
        try:
            if method == "ping":
                return [_answer({"method": "pong"}, tail, time_in)]
            if method not in ("subscribe", "unsubscribe"):
                raise _Refused("Method not supported")
            pairs, snapshot = _params(request.get("params"))
        except _Refused as exc:
            return self._refuse(exc, method, tail, time_in)
        if method == "unsubscribe":
            return [self._unsubscribe(pair, tail, time_in) for pair in pairs]
        answers: list[bytes] = []
        for pair in pairs:
            answers.extend(self._subscribe(pair, snapshot, cursor, tail, time_in))
        return answers

    def _subscribe(self, pair: str, snapshot: bool, cursor: int, tail: dict[str, Any], t: str) -> list[bytes]:
        if pair not in self._view.symbols:
            unknown = pair[:60]  # echoed, bounded
            return self._refuse(
                _Refused(f"Currency pair not supported {unknown}", unknown), "subscribe", tail, t
            )
        if pair in self._pairs:
            return self._refuse(_Refused("Already subscribed", pair), "subscribe", tail, t)
        self._pairs[pair] = None
        self._version += 1
        result = {"channel": "trade", "snapshot": snapshot, "symbol": pair}
        answers = [_answer({"method": "subscribe", "result": result, "success": True}, tail, t)]
        if snapshot:
            recent = self._view.recent_before(pair, cursor, SNAPSHOT_TRADES, visible=True)
            answers.append(trade_message(recent, "snapshot"))
        return answers

    def _unsubscribe(self, pair: str, tail: dict[str, Any], t: str) -> bytes:
        if pair not in self._pairs:
            return self._refuse(_Refused("Subscription Not Found", pair[:60]), "unsubscribe", tail, t)[0]
        del self._pairs[pair]
        self._version += 1
        result = {"channel": "trade", "symbol": pair}
        return _answer({"method": "unsubscribe", "result": result, "success": True}, tail, t)

    def _refuse(self, exc: _Refused, method: object, tail: dict[str, Any], time_in: str) -> list[bytes]:
        self.errors += 1
        head: dict[str, Any] = {"error": str(exc)}
        if isinstance(method, str):
            head["method"] = method[:40]
        head["success"] = False
        if exc.symbol is not None:
            head["symbol"] = exc.symbol
        return [_answer(head, tail, time_in)]


def _answer(head: dict[str, Any], tail: dict[str, Any], time_in: str) -> bytes:
    return msgspec.json.encode({**head, "time_in": time_in, "time_out": iso_time_ns(time.time_ns()), **tail})


def _params(params: object) -> tuple[list[str], bool]:
    """(pairs, snapshot) of a subscribe/unsubscribe request's params; _Refused when malformed."""
    if not isinstance(params, dict):
        raise _Refused("Missing field: params")
    if params.get("channel") != "trade":
        raise _Refused(f"Channel not supported: {str(params.get('channel'))[:40]}")
    pairs, snapshot = params.get("symbol"), params.get("snapshot", False)
    if not isinstance(pairs, list) or not pairs or not all(isinstance(p, str) for p in pairs):
        raise _Refused("Field symbol must be a non-empty list of strings")
    if not isinstance(snapshot, bool):
        raise _Refused("Field snapshot must be a boolean")
    return list(dict.fromkeys(pairs)), snapshot


def kraken_code(asset: str) -> str:
    return _KRAKEN_CODES.get(asset, asset)


def _legacy(code: str) -> str | None:
    """The asset's prefixed legacy name (ZUSD, XXBT), None for assets listed after the scheme ended."""
    if code in _FIAT:
        return f"Z{code}"
    return f"X{code}" if code in _LEGACY_CRYPTO else None


class KrakenProtocol(VenueProtocol):
    """Kraken Spot WebSocket v2 (see the module docstring and simulator/README.md)."""

    name = "kraken"
    default_symbols = ("BTC/USD", "ETH/USD")
    symbol_separator = "/"
    ws_paths = ("/v2",)
    malformed_kinds = NUMERIC_PRICE_KINDS
    trade_fields = TradeFields(
        kind="channel", price="price", size="qty", trade_id="trade_id", symbol="symbol",
        unknown_symbol="NOSUCH/COIN",
    )  # fmt: skip
    encode_trade = staticmethod(update_message)
    rate_limited_body = {"error": ["EAPI:Rate limit exceeded"]}

    def __init__(self, options: VenueOptions) -> None:
        super().__init__(options)
        self.keepalive = KeepAlive(heartbeat_interval=options.heartbeat_interval)

    def open(self, request: web.Request, conn_id: int, view: ExchangeView) -> VenueSession:
        return KrakenSession(conn_id, view)

    def rest_routes(self, view: ExchangeView) -> Sequence[RestRoute]:
        rest = _Rest(self, view)
        return [
            ("/0/public/Trades", rest.trades),
            ("/0/public/AssetPairs", rest.asset_pairs),
            ("/0/public/OHLC", rest.ohlc),
        ]

    def names(self, pair: str) -> tuple[str, str, str]:
        """(key, altname, wsname) of a pair: ('XXBTZUSD', 'XBTUSD', 'XBT/USD') for BTC/USD."""
        base, quote = (kraken_code(asset) for asset in self.instrument(pair))
        legacy_base, legacy_quote = _legacy(base), _legacy(quote)
        altname = base + quote
        key = legacy_base + legacy_quote if legacy_base and legacy_quote else altname
        return key, altname, f"{base}/{quote}"


def _error(text: str) -> web.Response:
    return json_response({"error": [text]})


class _Rest:
    """Public REST handlers of one exchange."""

    def __init__(self, venue: KrakenProtocol, view: ExchangeView) -> None:
        self._venue, self._view = venue, view
        self._pairs: dict[str, str] = {}
        for pair in view.symbols:
            for name in (*venue.names(pair), pair):
                self._pairs[name] = pair

    async def trades(self, request: web.Request) -> web.Response:
        pair = self._pairs.get(request.query.get("pair", ""))
        if pair is None:
            return _error("EQuery:Unknown asset pair")
        since = _since_ns(request.query.get("since"))
        try:
            count = int_param(request, "count")
        except ValueError:
            count = 0
        if (since is not None and since < 0) or (count is not None and count < 1):
            return _error("EGeneral:Invalid arguments")
        history, limit = self._view.history_of(pair), min(count or MAX_COUNT, MAX_COUNT)
        if since is None:  # the latest `limit`
            page = history.after_time(None, limit)
        else:
            page = _page(history.after_time(since // 1_000_000, limit + 1), limit)
        last = page[-1][0].time_ms * 1_000_000 if page else (since or 0)
        key = self._venue.names(pair)[0]
        return json_response({"error": [], "result": {key: [_rest_row(e) for e in page], "last": str(last)}})

    async def ohlc(self, request: web.Request) -> web.Response:
        pair = self._pairs.get(request.query.get("pair", ""))
        if pair is None:
            return _error("EQuery:Unknown asset pair")
        try:
            interval, since = int_param(request, "interval"), int_param(request, "since")
        except ValueError:
            return _error("EGeneral:Invalid arguments")
        if interval not in (None, *OHLC_INTERVALS):
            return _error("EGeneral:Invalid arguments")
        now_minute = minute_of(time.time_ns() // 1_000_000)
        rows = [] if interval not in (None, 1) else self._ohlc_rows(pair, since, now_minute)
        closed = [c.open_ms // 1000 for c in rows if c.open_ms < now_minute]
        last = closed[-1] if closed else since or 0
        body = {self._venue.names(pair)[0]: [_ohlc_row(c) for c in rows], "last": last}
        return json_response({"error": [], "result": body})

    def _ohlc_rows(self, pair: str, since: int | None, now_minute: int) -> list[MinuteCandle]:
        """The minutes with trades from `since` (s) within the reach, and the current minute's row."""
        history = self._view.history_of(pair)
        start = now_minute - (OHLC_POINTS - 1) * MS_PER_MINUTE
        if since is not None:
            start = max(start, since * 1000)
        rows = minute_candles(history, start_ms=start, limit=OHLC_POINTS, from_newest=True)
        latest = history.latest(1)
        if latest and (not rows or rows[-1].open_ms < now_minute) and latest[0][0].time_ms < now_minute:
            rows = [*rows[-(OHLC_POINTS - 1) :], quiet_candle(now_minute, latest[0][0].price)]
        return rows

    async def asset_pairs(self, request: web.Request) -> web.Response:
        wanted = request.query.get("pair")
        pairs = sorted(self._view.symbols)
        if wanted is not None:
            named = [self._pairs.get(name.strip()) for name in wanted.split(",")]
            if None in named:
                return _error("EQuery:Unknown asset pair")
            pairs = [p for p in pairs if p in named]
        return json_response({"error": [], "result": dict(self._asset_pair(p) for p in pairs)})

    def _asset_pair(self, pair: str) -> tuple[str, dict[str, Any]]:
        key, altname, wsname = self._venue.names(pair)
        base, quote = wsname.split("/")
        return key, {
            "altname": altname, "wsname": wsname, "aclass_base": "currency", "base": _legacy(base) or base,
            "aclass_quote": "currency", "quote": _legacy(quote) or quote, "lot": "unit", "cost_decimals": 5,
            "pair_decimals": 8, "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [],
            "leverage_sell": [], "fees": [[0, 0.4]], "fees_maker": [[0, 0.25]], "fee_volume_currency": "ZUSD",
            "margin_call": 80, "margin_stop": 40, "ordermin": "0.00000001", "costmin": "0.5",
            "tick_size": "0.00000001", "status": "online",
        }  # fmt: skip


def _since_ns(text: str | None) -> int | None:
    """`since` in ns (None when absent); -1 when it is neither ns digits nor decimal seconds."""
    if not text:
        return None
    if not _SECONDS.match(text):
        return int(text) if text.isdigit() and len(text) <= 20 else -1
    value = Decimal(text)
    return int(value) if value >= _NS_FROM else int(value * 1_000_000_000)


def _page(entries: list[Recorded], limit: int) -> list[Recorded]:
    """`limit` of `entries` (fetched one beyond), cut so that `last` never falls inside a millisecond: when
    the trade after the page shares the millisecond of the page's last, that millisecond moves to the next
    page (unless it fills the whole page). Trade times are whole ms; `since` is exclusive."""
    if len(entries) <= limit:
        return entries
    page, boundary = entries[:limit], entries[limit][0].time_ms
    end = limit
    while end > 0 and page[end - 1][0].time_ms == boundary:
        end -= 1
    return page[:end] or page


def _ohlc_row(c: MinuteCandle) -> list[Any]:
    """[time (s), open, high, low, close, vwap, volume, count]: vwap to the prices' decimals (the close
    without trades), volume with 8 decimals as Kraken writes it."""
    vwap = Decimal(c.close)
    if c.volume:
        places = max(_decimals(p) for p in (c.open, c.high, c.low, c.close))
        vwap = (c.quote_volume / c.volume).quantize(Decimal(1).scaleb(-places))
    volume = f"{c.volume.quantize(_VOLUME):f}"
    return [c.open_ms // 1000, c.open, c.high, c.low, c.close, f"{vwap:f}", volume, c.trade_count]


def _decimals(price: str) -> int:
    return len(price.partition(".")[2])


def _rest_row(entry: Recorded) -> list[Any]:
    trade = entry[0]
    seconds = msgspec.Raw(f"{trade.time_ms // 1000}.{trade.time_ms % 1000:03d}".encode())
    side = "s" if trade.is_buyer_maker else "b"
    return [trade.price, trade.quantity, seconds, side, taker_order_type(trade)[0], "", trade.trade_id]
