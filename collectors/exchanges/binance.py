"""Binance (spot, USD-M futures, COIN-M futures) market trades: raw message types and a pure adapter.

Live data comes from the combined-stream URL `/stream?streams=<sym>@trade/...` (spot: one event per
trade, id `t`, consecutive per symbol) or `<sym>@aggTrade` (futures: id `a`, consecutive per symbol).
Every connect uses that URL, so every reconnect resubscribes; no SUBSCRIBE message is sent.
Side: `m` is "buyer is the maker", so m=true means the taker sold. `T` (trade time, ms) becomes
`ts_event` in ns. Prices and quantities stay the exact strings sent, validated as positive decimals.
Symbols are normalized from exchangeInfo `baseAsset`/`quoteAsset` (never by guessing suffixes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final

import msgspec

from collectors.adapter import (
    EXCHANGE_ERROR,
    UNEXPECTED_EVENT,
    UNEXPECTED_SCHEMA,
    Capabilities,
    Gap,
    HeartbeatKind,
    KlineSupport,
    ReconnectRequested,
    RepairKind,
    RepairPage,
    RestAnswer,
    RestRequest,
    RestVerdict,
    SequenceKind,
    classify_http,
    retry_after_seconds,
)
from collectors.klines import make_candle, oldest_first
from collectors.symbols import ListedSymbols
from collectors.values import (
    DECODE_ERRORS,
    MAX_TIME_MS,
    NS_PER_MS,
    convert_typed,
    decode_json,
    decode_typed,
    ms_to_ns,
    reject_oversized,
)
from core.errors import ParseError
from core.types import INT64_MAX, Candle, Side, SymbolInfo, Trade

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_PERPETUAL_DELIVERY_MS: Final = 4_000_000_000_000  # Binance dates perpetuals in the year 2100
# Market events a trade collector may see on a shared connection: not trades, not errors.
_MARKET_EVENTS: Final = frozenset(
    {
        "depthUpdate",
        "kline",
        "bookTicker",
        "24hrTicker",
        "24hrMiniTicker",
        "1hTicker",
        "4hTicker",
        "1dTicker",
        "avgPrice",
        "markPriceUpdate",
        "indexPriceUpdate",
        "forceOrder",
        "continuous_kline",
        "indexPrice_kline",
        "markPrice_kline",
        "compositeIndex",
        "contractInfo",
        "assetIndexUpdate",
    }
)


class TradeEvent(msgspec.Struct, tag_field="e", tag="trade", frozen=True, gc=False):
    """`<symbol>@trade`: s symbol, t trade id, p price, q base quantity, T trade time ms, m buyer is maker."""

    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class AggTradeEvent(msgspec.Struct, tag_field="e", tag="aggTrade", frozen=True, gc=False):
    """`<symbol>@aggTrade`: a aggregate trade id (consecutive per symbol); other fields as TradeEvent."""

    s: str
    a: int
    p: str
    q: str
    T: int
    m: bool


# The hot path's decoders check the id and time ranges themselves (in C): a trade id that is not a 64-bit
# sequence, or a time beyond 64-bit nanoseconds, fails the typed decode, and the slow path then reads the
# frame loosely and lets the trade factory say what is wrong.
_Id = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
_TimeMs = Annotated[int, msgspec.Meta(gt=0, le=MAX_TIME_MS)]


class CheckedTrade(TradeEvent, tag="trade", frozen=True, gc=False):
    """TradeEvent with its id and time in range."""

    t: _Id
    T: _TimeMs


class CheckedAggTrade(AggTradeEvent, tag="aggTrade", frozen=True, gc=False):
    """AggTradeEvent with its id and time in range."""

    a: _Id
    T: _TimeMs


class CombinedFrame(msgspec.Struct, frozen=True, gc=False):
    """The combined-stream wrapper `{"stream": "<name>", "data": <event>}`."""

    stream: str
    data: CheckedTrade | CheckedAggTrade


class HistoricalTradeRow(msgspec.Struct, frozen=True, gc=False):
    """One row of `historicalTrades` (id = stream `t`, time ms, isBuyerMaker = stream `m`)."""

    id: int
    price: str
    qty: str
    time: int
    isBuyerMaker: bool


class AggTradeRow(msgspec.Struct, frozen=True, gc=False):
    """One row of `aggTrades` (a = stream `a`, T ms, m = buyer is maker)."""

    a: int
    p: str
    q: str
    T: int
    m: bool


class SymbolRow(msgspec.Struct, frozen=True):
    """One `exchangeInfo.symbols[]` entry (futures add contractType and deliveryDate ms)."""

    symbol: str
    baseAsset: str
    quoteAsset: str
    contractType: str | None = None
    deliveryDate: int | None = None


class ExchangeInfo(msgspec.Struct, frozen=True):
    symbols: list[SymbolRow]


KlineRow = tuple[int, str, str, str, str, str, int, str, int, str, str, Any]
"""One `/api/v3/klines` row: open time ms, open, high, low, close, base volume, close time ms, quote
volume, number of trades, taker-buy base volume, taker-buy quote volume, unused (§1.8)."""


_COMBINED = msgspec.json.Decoder(CombinedFrame)
_RAW_EVENT = msgspec.json.Decoder(CheckedTrade | CheckedAggTrade)
_HISTORICAL = msgspec.json.Decoder(list[HistoricalTradeRow])
_AGG_ROWS = msgspec.json.Decoder(list[AggTradeRow])
_EXCHANGE_INFO = msgspec.json.Decoder(ExchangeInfo)
_KLINES = msgspec.json.Decoder(list[KlineRow])


def _event_name(payload: dict[str, Any]) -> str | None:
    """The event type `e` of an untrusted payload, None when absent or not text."""
    event = payload.get("e")
    return event if isinstance(event, str) else None


def canonical_symbol(row: SymbolRow) -> str:
    """BASE-QUOTE for spot; futures add -PERP or the delivery date -YYMMDD (BTC-USD-211231)."""
    base = f"{row.baseAsset.upper()}-{row.quoteAsset.upper()}"
    if row.contractType is None:
        return base
    delivery = row.deliveryDate
    if row.contractType == "PERPETUAL" or delivery is None or delivery >= _PERPETUAL_DELIVERY_MS:
        return f"{base}-PERP"
    return f"{base}-{datetime.fromtimestamp(delivery / 1000, tz=UTC):%y%m%d}"


class BinanceAdapter(ListedSymbols):
    """Binance spot `@trade` streams; REST repair from `historicalTrades` (public, weight 25) by id."""

    name: str = "binance"
    default_ws_url: str = "wss://stream.binance.com:9443"
    default_rest_url: str = "https://api.binance.com"
    default_symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    trade_stream: ClassVar[str] = "trade"
    repair_path: ClassVar[str] = "/api/v3/historicalTrades"
    symbols_path: ClassVar[str] = "/api/v3/exchangeInfo"
    klines_path: ClassVar[str] = "/api/v3/klines"
    capabilities: Capabilities = Capabilities(
        sequence=SequenceKind.CONTIGUOUS,  # `t` grows by one per trade of a symbol
        repair=RepairKind.ID_CURSOR,
        heartbeat=HeartbeatKind.PROTOCOL_PING,  # a ping frame every 20 s; the client library answers
        max_streams_per_connection=1024,
        max_frame_bytes=64 * 1024,
        max_connection_age_s=24 * 3600.0,
        reconnect_margin_s=1800.0,
        klines=KlineSupport(page_minutes=1000),  # /api/v3/klines: limit at most 1000, no reach limit
    )

    def __init__(self, symbols: Iterable[SymbolInfo] = ()) -> None:
        super().__init__(symbols)
        self._canonical = self._symbols.canonical
        self._valid_decimals = self._trades.valid_decimals
        self._admit_decimal = self._trades.admit_decimal
        self._max_frame_bytes = self.capabilities.max_frame_bytes

    # -- connection ------------------------------------------------------------------------------
    def ws_url(self, base_url: str, raw_symbols: Sequence[str]) -> str:
        base = base_url.rstrip("/")
        if not base.endswith("/stream"):
            base += "/stream"
        streams = "/".join(f"{raw.lower()}@{self.trade_stream}" for raw in raw_symbols)
        return f"{base}?streams={streams}"

    def subscribe_messages(self, raw_symbols: Sequence[str]) -> list[str]:
        return []  # the combined-stream URL subscribes on every connect

    def ping_message(self) -> str | None:
        return None

    # -- frames ----------------------------------------------------------------------------------
    def parse(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        if len(frame) > self._max_frame_bytes:
            reject_oversized(frame, self._max_frame_bytes)
        try:
            event: CheckedTrade | CheckedAggTrade = _COMBINED.decode(frame).data
        except DECODE_ERRORS:
            return self._parse_slow(frame, ts_recv)
        return [self._normalize(event, ts_recv)]

    def _normalize(self, ev: CheckedTrade | CheckedAggTrade, ts_recv: int) -> Trade:
        """The hot path: a dict lookup and two set lookups, then the Trade (the decoder checked the id and
        time ranges); the trade factory's checks inlined (its four function calls would cost a tenth of
        the whole pipeline). A bad value goes through the factory, which raises the ParseError that says
        what is wrong."""
        sequence = ev.t if type(ev) is CheckedTrade else ev.a  # type: ignore[union-attr]
        side = _SELL if ev.m else _BUY
        symbol = self._canonical.get(ev.s)
        price, qty = ev.p, ev.q  # (four names in one assignment would build and unpack a tuple)
        valid = self._valid_decimals
        if (
            symbol is not None
            and (price in valid or self._admit_decimal(price))
            and (qty in valid or self._admit_decimal(qty))
        ):
            ts_event = ev.T * NS_PER_MS
            return Trade(
                self.name, symbol, ev.s, str(sequence), sequence, price, qty, side, ts_event, ts_recv
            )
        return self._trades.make(ev.s, sequence, price, qty, side, ms_to_ns(ev.T), ts_recv)

    def _checked(self, ev: TradeEvent | AggTradeEvent, ts_recv: int) -> Trade:
        """A trade event read loosely (its ranges unchecked): through the trade factory's every check."""
        sequence = ev.t if isinstance(ev, TradeEvent) else ev.a
        side = _SELL if ev.m else _BUY
        return self._trades.make(ev.s, sequence, ev.p, ev.q, side, ms_to_ns(ev.T), ts_recv)

    def _parse_slow(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        """Frames that are not combined trade events: raw events, control frames, other events, junk."""
        try:
            return [self._normalize(_RAW_EVENT.decode(frame), ts_recv)]
        except DECODE_ERRORS:
            pass
        obj = decode_json(frame)
        payload = obj
        if isinstance(obj, dict) and "stream" in obj and "data" in obj:
            payload = obj["data"]
        if isinstance(payload, dict):
            return self._classify(payload, frame, ts_recv)
        if isinstance(payload, list) and all(
            isinstance(item, dict) and _event_name(item) in _MARKET_EVENTS for item in payload
        ):
            return []  # array streams such as !miniTicker@arr
        raise ParseError("frame is not a JSON object", error_type=UNEXPECTED_SCHEMA, raw=frame)

    def _classify(self, payload: dict[str, Any], frame: bytes | str, ts_recv: int) -> list[Trade]:
        event = _event_name(payload)
        if event in ("trade", "aggTrade"):
            typed = convert_typed(payload, TradeEvent | AggTradeEvent, frame, event)  # type: ignore[arg-type]
            return [self._checked(typed, ts_recv)]
        if event == "serverShutdown":
            raise ReconnectRequested("Binance serverShutdown: the server is going away")
        if event in _MARKET_EVENTS:
            return []
        if event is not None:
            raise ParseError(f"unexpected event {event[:80]!r}", error_type=UNEXPECTED_EVENT, raw=frame)
        if "result" in payload and "id" in payload:
            return []  # SUBSCRIBE / LIST_SUBSCRIPTIONS acknowledgement
        if "code" in payload and "msg" in payload:
            raise ParseError("exchange error", error_type=EXCHANGE_ERROR, raw=frame)
        if {"u", "s", "b", "a"} <= payload.keys() or {"lastUpdateId", "bids", "asks"} <= payload.keys():
            return []  # spot bookTicker / partial depth: events without an "e" field
        raise ParseError("unrecognised frame", error_type=UNEXPECTED_EVENT, raw=frame)

    # -- REST --------------------------------------------------------------------------------------
    def repair_request(self, gap: Gap) -> RestRequest | None:
        return self._page_request(gap.raw_symbol, gap.first)

    def _page_request(self, raw_symbol: str, from_id: int) -> RestRequest:
        limit = str(self.capabilities.repair_page_size)
        return RestRequest(
            self.repair_path, (("symbol", raw_symbol), ("fromId", str(from_id)), ("limit", limit))
        )

    def repair_page(self, gap: Gap, request: RestRequest, body: bytes, ts_recv: int) -> RepairPage:
        """Pages run oldest first from `fromId` (inclusive); the next starts after the newest row."""
        rows = self._repair_rows(body, gap.raw_symbol, ts_recv)
        wanted = [t for t in rows if gap.first <= t.sequence <= gap.last]  # type: ignore[operator]
        from_id = int(request.param("fromId") or gap.first)
        newest = rows[-1].sequence if rows else None
        if newest is None or newest >= gap.last or newest < from_id:
            return RepairPage(wanted, None)
        return RepairPage(wanted, self._page_request(gap.raw_symbol, newest + 1))

    def _repair_rows(self, body: bytes, raw_symbol: str, ts_recv: int) -> list[Trade]:
        rows = decode_typed(_HISTORICAL, body, "historicalTrades body")
        return [
            self._backfilled(raw_symbol, r.id, r.price, r.qty, r.time, r.isBuyerMaker, ts_recv) for r in rows
        ]

    def _backfilled(
        self, raw: str, sequence: int, price: str, qty: str, time_ms: int, maker: bool, ts_recv: int
    ) -> Trade:
        side = _SELL if maker else _BUY
        return self._trades.make(raw, sequence, price, qty, side, ms_to_ns(time_ms), ts_recv, True)

    def classify_response(self, status: int, headers: Mapping[str, str], body: bytes) -> RestAnswer:
        """429: request weight exceeded; 418: this IP is banned (2 minutes to 3 days), Retry-After."""
        if status == 418:
            return RestAnswer(RestVerdict.BANNED, retry_after_seconds(headers), "HTTP 418: IP banned")
        return classify_http(status, headers, body)

    def klines_request(self, raw_symbol: str, start_ns: int, end_ns: int) -> RestRequest | None:
        """Open times in [startTime, endTime], both ms and inclusive: endTime is the window's last ms."""
        start_ms, end_ms = start_ns // NS_PER_MS, end_ns // NS_PER_MS - 1
        limit = str(self.capabilities.klines.page_minutes)
        params = (
            ("symbol", raw_symbol),
            ("interval", "1m"),
            ("startTime", str(start_ms)),
            ("endTime", str(end_ms)),
            ("limit", limit),
        )
        return RestRequest(self.klines_path, params)

    def parse_klines(self, raw_symbol: str, body: bytes) -> list[Candle]:
        rows = decode_typed(_KLINES, body, "klines body")
        return oldest_first([make_candle(ms_to_ns(r[0]), r[1], r[2], r[3], r[4], r[5], r[8]) for r in rows])

    def symbols_request(self) -> RestRequest:
        return RestRequest(self.symbols_path)

    def parse_symbols(self, body: bytes) -> list[SymbolInfo]:
        info = decode_typed(_EXCHANGE_INFO, body, "exchangeInfo body")
        return [
            SymbolInfo(
                self.name, canonical_symbol(row), row.symbol, row.baseAsset.upper(), row.quoteAsset.upper()
            )
            for row in info.symbols
        ]


class _BinanceAggTradeAdapter(BinanceAdapter):
    """Futures venues: `@aggTrade` streams (id `a`) and `aggTrades?fromId=` repair."""

    trade_stream: ClassVar[str] = "aggTrade"

    def _repair_rows(self, body: bytes, raw_symbol: str, ts_recv: int) -> list[Trade]:
        rows = decode_typed(_AGG_ROWS, body, "aggTrades body")
        return [self._backfilled(raw_symbol, r.a, r.p, r.q, r.T, r.m, ts_recv) for r in rows]


_FUTURES_CAPABILITIES: Final = msgspec.structs.replace(
    BinanceAdapter.capabilities, max_streams_per_connection=200
)


class BinanceFuturesAdapter(_BinanceAggTradeAdapter):
    """Binance USD-M futures (fstream / fapi): BTC-USDT-PERP, BTC-USDT-210924."""

    name = "binance_futures"
    default_ws_url = "wss://fstream.binance.com"
    default_rest_url = "https://fapi.binance.com"
    repair_path: ClassVar[str] = "/fapi/v1/aggTrades"
    symbols_path: ClassVar[str] = "/fapi/v1/exchangeInfo"
    klines_path: ClassVar[str] = "/fapi/v1/klines"
    capabilities = _FUTURES_CAPABILITIES


class BinanceDeliveryAdapter(_BinanceAggTradeAdapter):
    """Binance COIN-M futures (dstream / dapi): BTC-USD-PERP, BTC-USD-211231."""

    name = "binance_delivery"
    default_ws_url = "wss://dstream.binance.com"
    default_rest_url = "https://dapi.binance.com"
    default_symbols: tuple[str, ...] = ("BTCUSD_PERP", "ETHUSD_PERP")
    repair_path: ClassVar[str] = "/dapi/v1/aggTrades"
    symbols_path: ClassVar[str] = "/dapi/v1/exchangeInfo"
    klines_path: ClassVar[str] = "/dapi/v1/klines"
    capabilities = _FUTURES_CAPABILITIES
