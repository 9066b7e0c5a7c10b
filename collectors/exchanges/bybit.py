"""Bybit v5 public Spot trades: raw message types and a pure adapter.

Live data: `publicTrade.{symbol}` on `wss://stream.bybit.com/v5/public/spot`, subscribed with
`{"req_id":"trades-1","op":"subscribe","args":["publicTrade.BTCUSDT",...]}`, at most 10 args per message
(exchange-protocols.md §4.1). A push is `{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":...,
"data":[{"T","s","S","v","p","i","BT","RPI","seq"}]}` with up to 1024 trades (§4.2): `i` is the trade id,
a string kept exactly as sent; `S` the taker's side (Buy/Sell); `T` the fill time in ms; `p`/`v` the
exact price and size strings. Other keys (`L` on derivatives, `BT`, `RPI`, `seq`) are not read.

No sequence (§4.3, Addendum): spot ids are not consecutive per symbol and `seq` is a cross sequence
shared with the order book, "not guaranteed continuous". Trades therefore carry `sequence=None` and
completeness cannot be proven: there are no gaps to repair by id (`repair_request` is None).

Keep-alive (§4.4): the client sends `{"op":"ping"}` every 20 s; the spot pong `{"success":true,
"ret_msg":"pong",...,"op":"ping"}` and subscribe acks parse to nothing, `"success":false` is an exchange
error. REST (§4.5): `GET /v5/market/recent-trade?category=spot&symbol=X&limit=60` serves only the latest
60 trades, no cursor: what an outage lost is fetched from there (`recent_request` / `parse_recent`) and
anything older cannot be. Errors come as `retCode` in the body; 10006 / 10018 and HTTP 429 mean slow
down, HTTP 403 means the IP is blocked for at least ten minutes (Addendum). Symbols: `GET
/v5/market/instruments-info?category=spot`, keeping `status` "Trading" (§4.6). Candles (for checking
stored bars): `GET /v5/market/kline?category=spot&symbol=X&interval=1&start=<ms>&end=<ms>&limit=1000`,
`result.list` rows `[startTime, open, high, low, close, volume, turnover]` (strings), newest first, open
times in [start, end]; no trade count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Generic, Literal, TypeVar

import msgspec

from collectors.adapter import (
    EXCHANGE_ERROR,
    UNEXPECTED_EVENT,
    UNEXPECTED_SCHEMA,
    Capabilities,
    Gap,
    HeartbeatKind,
    KlineSupport,
    RepairKind,
    RepairPage,
    RestAnswer,
    RestRequest,
    RestVerdict,
    SequenceKind,
    chunks,
    classify_coded,
    retry_after_seconds,
    with_default_path,
)
from collectors.klines import make_candle, oldest_first
from collectors.symbols import ListedSymbols, spot_pair
from collectors.values import (
    convert_typed,
    decode_object,
    decode_or_none,
    decode_typed,
    ms_text_to_ns,
    ms_to_ns,
    reject_oversized,
    short_text,
)
from core.errors import ParseError
from core.types import Candle, Side, SymbolInfo, Trade

Row = TypeVar("Row")

_SIDES: Final = {"Buy": Side.BUY, "Sell": Side.SELL}
_TOPIC: Final = "publicTrade."
# Other public topics a shared connection may carry: not trades, not errors.
_MARKET_TOPICS: Final = ("orderbook.", "tickers.", "kline.", "allLiquidation.", "liquidation.", "kline_lt.",
                         "tickers_lt.", "lt.")  # fmt: skip
# `op` of acknowledgements: subscribe acks, the spot pong (op "ping"), the derivatives pong (op "pong").
_ACK_OPS: Final = frozenset({"subscribe", "unsubscribe", "ping", "pong"})
_PING: Final = '{"op":"ping"}'
# retCode 10006: too many visits; 10018: over the IP rate limit. The IP limit counts 600 requests per
# 5-second window, so without a Retry-After the backfiller waits one window.
_SLOW_DOWN: Final = frozenset({"10006", "10018"})
_RETRY_AFTER_S: Final = 5.0
_BANNED_S: Final = 600.0  # HTTP 403 "access too frequent": stop and wait at least ten minutes
_RECENT_PATH: Final = "/v5/market/recent-trade"


class BybitTrade(msgspec.Struct, frozen=True, gc=False):
    """One trade of a `publicTrade` push: T ms, s symbol, S taker side, v size, p price, i id."""

    T: int
    s: str
    S: Literal["Buy", "Sell"]
    v: str
    p: str
    i: str


class TradePush(msgspec.Struct, frozen=True, gc=False):
    """`{"topic": "publicTrade.<SYMBOL>", "type": "snapshot", "ts": ms, "data": [trade, ...]}`."""

    topic: str
    data: list[BybitTrade]


class RecentRow(msgspec.Struct, frozen=True, gc=False):
    """One `recent-trade` row (execId = the stream's `i`, side the taker's, time ms as a string)."""

    execId: str
    symbol: str
    price: str
    size: str
    side: Literal["Buy", "Sell"]
    time: str


class InstrumentRow(msgspec.Struct, frozen=True):
    symbol: str
    baseCoin: str
    quoteCoin: str
    status: str


class Listing(msgspec.Struct, Generic[Row], frozen=True):
    """A REST `result` holding `list` (recent trades, instruments)."""

    rows: list[Row] = msgspec.field(name="list")


class Envelope(msgspec.Struct, frozen=True):
    """Every REST answer: `retCode` 0 is success, anything else an error described by `retMsg`."""

    retCode: int
    retMsg: str = ""
    result: msgspec.Raw = msgspec.Raw(b"{}")


_PUSH = msgspec.json.Decoder(TradePush)
_ENVELOPE = msgspec.json.Decoder(Envelope)
_RECENT = msgspec.json.Decoder(Listing[RecentRow])
_INSTRUMENTS = msgspec.json.Decoder(Listing[InstrumentRow])
# A kline row: startTime (ms), open, high, low, close, volume (base), turnover (quote); all strings.
_KLINES = msgspec.json.Decoder(Listing[tuple[str, str, str, str, str, str, str]])
KLINES_PER_REQUEST: Final = 1000


class BybitAdapter(ListedSymbols):
    """Bybit v5 spot `publicTrade`; no sequence, so no gap repair: the latest 60 trades after an outage."""

    name: str = "bybit"
    default_ws_url: str = "wss://stream.bybit.com"
    default_rest_url: str = "https://api.bybit.com"
    default_symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    capabilities: Capabilities = Capabilities(
        sequence=SequenceKind.NONE,  # ids not consecutive per symbol, `seq` a cross sequence (§4.3)
        repair=RepairKind.RECENT_ONLY,  # recent-trade: the latest 60 spot trades, no cursor (§4.5)
        heartbeat=HeartbeatKind.APP_PING,  # {"op":"ping"} every 20 s, as Bybit recommends (§4.4)
        ping_interval_s=20.0,
        # A pong comes back within a round trip; 10 s tolerates a congested path and notices a dead
        # socket well before the stale watchdog.
        ping_timeout_s=10.0,
        # Spot allows 21,000 characters of args per connection: 200 topics of up to ~30 characters
        # use under a third of it, and keep one connection's bursts moderate.
        max_streams_per_connection=200,
        max_subscriptions_per_message=10,  # the spot limit per subscribe request (§4.1)
        # A push holds up to 1024 trades of ~150 bytes (~200 with long ids and symbols). A refused frame
        # cannot be repaired by id here, so the limit holds the largest push the venue sends.
        max_frame_bytes=256 * 1024,
        repair_page_size=60,  # recent-trade `limit` maximum for spot (Addendum)
        klines=KlineSupport(page_minutes=KLINES_PER_REQUEST),  # /v5/market/kline, limit at most 1000
        # repair_reach_s None: the reach is the latest 60 trades, however long ago they were; whether
        # they cover an outage is read from their times. No connection age limit (only a 10-minute idle
        # cut, which the pings prevent); the subscription sends no past trades.
    )

    # -- connection ------------------------------------------------------------------------------
    def ws_url(self, base_url: str, raw_symbols: Sequence[str]) -> str:
        """`base_url` + /v5/public/spot unless it names an endpoint path itself."""
        return with_default_path(base_url, "/v5/public/spot")

    def subscribe_messages(self, raw_symbols: Sequence[str]) -> list[str]:
        return [
            msgspec.json.encode(
                {"req_id": f"trades-{number}", "op": "subscribe", "args": [_TOPIC + raw for raw in batch]}
            ).decode()
            for number, batch in enumerate(
                chunks(raw_symbols, self.capabilities.max_subscriptions_per_message), start=1
            )
        ]

    def ping_message(self) -> str | None:
        return _PING

    # -- frames ----------------------------------------------------------------------------------
    def parse(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        reject_oversized(frame, self.capabilities.max_frame_bytes)
        push = decode_or_none(_PUSH, frame)
        if push is None or not push.topic.startswith(_TOPIC):
            return self._parse_other(frame, ts_recv)
        return self._push_trades(push.data, ts_recv)

    def _push_trades(self, data: list[BybitTrade], ts_recv: int) -> list[Trade]:
        make = self._trades.make
        return [make(d.s, d.i, d.p, d.v, _SIDES[d.S], ms_to_ns(d.T), ts_recv) for d in data]

    def _parse_other(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        """Frames that are not well-formed trade pushes: other topics, acks, pongs, errors, junk."""
        message = decode_object(frame)
        topic = message.get("topic")
        if isinstance(topic, str) and topic.startswith(_TOPIC):
            return self._push_trades(
                convert_typed(message, TradePush, frame, "publicTrade push").data, ts_recv
            )
        if isinstance(topic, str) and topic.startswith(_MARKET_TOPICS):
            return []
        if topic is not None:
            raise ParseError(
                f"push of unknown topic {short_text(topic)!r}", error_type=UNEXPECTED_EVENT, raw=frame
            )
        if message.get("success") is False:
            error = short_text(message.get("ret_msg"))
            raise ParseError(f"Bybit error: {error}", error_type=EXCHANGE_ERROR, raw=frame)
        op = message.get("op")
        if isinstance(op, str) and op in _ACK_OPS:
            return []
        raise ParseError("unrecognised frame", error_type=UNEXPECTED_EVENT, raw=frame)

    # -- REST --------------------------------------------------------------------------------------
    def repair_request(self, gap: Gap) -> RestRequest | None:
        return None  # no sequence, so no sequence gaps; outages are covered by `recent_request`

    def repair_page(self, gap: Gap, request: RestRequest, body: bytes, ts_recv: int) -> RepairPage:
        return RepairPage([], None)

    def recent_request(self, raw_symbol: str) -> RestRequest | None:
        limit = str(self.capabilities.repair_page_size)
        return RestRequest(_RECENT_PATH, (("category", "spot"), ("symbol", raw_symbol), ("limit", limit)))

    def parse_recent(self, raw_symbol: str, body: bytes, ts_recv: int) -> list[Trade]:
        """The rows as backfilled trades, oldest first. Bybit's reference page does not state the
        list's order (its own tooling describes it as newest first), so the trades are sorted by time,
        then id (numeric ids by value): either order gives the same result."""
        rows = decode_typed(_RECENT, _result(body, "recent-trade body"), "recent-trade result").rows
        if any(row.symbol != raw_symbol for row in rows):
            raise ParseError(
                f"rows of another symbol than {raw_symbol}", error_type=UNEXPECTED_SCHEMA, raw=body
            )
        make = self._trades.make
        trades = [
            make(raw_symbol, r.execId, r.price, r.size, _SIDES[r.side], ms_text_to_ns(r.time), ts_recv, True)
            for r in rows
        ]
        trades.sort(key=_oldest_first)
        return trades

    def klines_request(self, raw_symbol: str, start_ns: int, end_ns: int) -> RestRequest | None:
        """Open times in [start, end], ms, both inclusive: `end` is the window's last millisecond."""
        params = (
            ("category", "spot"),
            ("symbol", raw_symbol),
            ("interval", "1"),
            ("start", str(start_ns // 1_000_000)),
            ("end", str(end_ns // 1_000_000 - 1)),
            ("limit", str(KLINES_PER_REQUEST)),
        )
        return RestRequest("/v5/market/kline", params)

    def parse_klines(self, raw_symbol: str, body: bytes) -> list[Candle]:
        rows = decode_typed(_KLINES, _result(body, "kline body"), "kline result").rows
        return oldest_first(
            [make_candle(ms_text_to_ns(t), o, h, low, c, vol) for t, o, h, low, c, vol, _ in rows]
        )

    def classify_response(self, status: int, headers: Mapping[str, str], body: bytes) -> RestAnswer:
        """HTTP 403: banned for at least 600 s; HTTP 429, retCode 10006 or 10018: rate limited
        (Retry-After, else 5 s); another non-zero retCode or HTTP error: an error."""
        if status == 403:
            wait = max(retry_after_seconds(headers, _BANNED_S), _BANNED_S)
            return RestAnswer(RestVerdict.BANNED, wait, "HTTP 403: access too frequent")
        envelope = decode_or_none(_ENVELOPE, body)
        return classify_coded(
            status,
            headers,
            body,
            str(envelope.retCode) if envelope else None,
            ok="0",
            slow_down=_SLOW_DOWN,
            retry_s=_RETRY_AFTER_S,
            message=envelope.retMsg if envelope else "",
        )

    def symbols_request(self) -> RestRequest:
        return RestRequest("/v5/market/instruments-info", (("category", "spot"),))

    def parse_symbols(self, body: bytes) -> list[SymbolInfo]:
        rows = decode_typed(_INSTRUMENTS, _result(body, "instruments-info body"), "instruments").rows
        return [
            spot_pair(self.name, r.symbol, r.baseCoin, r.quoteCoin) for r in rows if r.status == "Trading"
        ]


def _oldest_first(trade: Trade) -> tuple[int, int, str]:
    """Sort key: event time, then the id (a numeric id by value: shorter is smaller)."""
    return trade.ts_event, len(trade.trade_id), trade.trade_id


def _result(body: bytes, what: str) -> msgspec.Raw:
    """The `result` of a successful REST answer; ParseError EXCHANGE_ERROR for a non-zero retCode (an
    answer that bypassed `classify_response`), UNEXPECTED_SCHEMA for no envelope."""
    envelope = decode_typed(_ENVELOPE, body, what)
    if envelope.retCode != 0:
        raise ParseError(
            f"Bybit retCode {envelope.retCode}: {envelope.retMsg[:200]}", error_type=EXCHANGE_ERROR, raw=body
        )
    return envelope.result
