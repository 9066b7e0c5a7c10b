"""Coinbase Exchange market trades: raw message types and a pure adapter.

Live data is the Exchange websocket feed (`wss://ws-feed.exchange.coinbase.com`, path `/`), public
`matches` channel plus `heartbeat` (exchange-protocols.md §2.6; both work without keys, Addendum).
`match` and `last_match` messages are trades: `trade_id` is a JSON integer that grows by one per trade of
a product, so it is both the text id and the sequence; `side` is the MAKER's side, so the taker's is the
opposite; `time` is ISO-8601 UTC with 6 (sometimes more) fractional digits, read to integer ns;
`price`/`size` stay the exact strings sent. `last_match` arrives right after subscribing and repeats a
trade that may already be stored (`subscribe_snapshot`). `sequence` in those messages belongs to the
full order feed and jumps between matches: it is not used.

Repair: `GET /products/{id}/trades?after=<id>&limit=1000` answers trades with ids below `after`, newest
first, rows `{"time","trade_id","price","size","side"}` with the same maker side (§2.5, Addendum).
Candles (for checking stored bars): `GET /products/{id}/candles?granularity=60&start=<ISO>&end=<ISO>`
answers at most 300 rows `[time (s), low, high, open, close, volume]` of JSON NUMBERS, NEWEST FIRST, the
minutes with trades in [start, end] (both inclusive: `end` is the window's last minute). No trade count.
Symbols: `GET /products`; products are kept while `status` is `online` and `trading_disabled` is not
true (the documented statuses are online, offline, internal, delisted): a collector cannot start on a
product that does not trade now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal

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
    SequenceKind,
    chunks,
    classify_http,
    newest_first_page,
)
from collectors.klines import make_candle, number_text, oldest_first
from collectors.symbols import ListedSymbols, spot_pair
from collectors.values import (
    DECODE_ERRORS,
    convert_typed,
    decode_json,
    decode_typed,
    iso_to_ns,
    reject_oversized,
    short_text,
)
from core.errors import ParseError
from core.timeframes import NS_PER_MINUTE, NS_PER_SECOND
from core.types import Candle, Side, SymbolInfo, Trade

# `side` is the maker's: a resting sell order filled means the taker bought.
_TAKER: Final = {"buy": Side.SELL, "sell": Side.BUY}
_TRADE_TYPES: Final = ("match", "last_match")
# Feed messages that are not trades: acknowledgements, heartbeats and other channels' events.
_FEED_MESSAGES: Final = frozenset(
    {
        "subscriptions",
        "heartbeat",
        "ticker",
        "l2update",
        "snapshot",
        "received",
        "open",
        "done",
        "change",
        "activate",
        "status",
    }
)
_RETRY_AFTER_S: Final = 1.0  # public REST allows 10 requests/s (bursts of 15): a second is enough


class Match(msgspec.Struct, tag_field="type", tag="match", frozen=True, gc=False):
    """A `matches` channel trade: product_id, trade_id (int), price/size strings, maker side, ISO time."""

    product_id: str
    trade_id: int
    price: str
    size: str
    side: Literal["buy", "sell"]
    time: str


class LastMatch(Match, tag="last_match", frozen=True, gc=False):
    """The product's latest trade, sent once right after subscribing."""


class TradeRow(msgspec.Struct, frozen=True, gc=False):
    """One row of `/products/{id}/trades` (side: the maker's, as on the feed)."""

    trade_id: int
    price: str
    size: str
    side: Literal["buy", "sell"]
    time: str


class ProductRow(msgspec.Struct, frozen=True):
    """One `/products` entry (fields the adapter reads)."""

    id: str
    base_currency: str
    quote_currency: str
    status: str = "online"
    trading_disabled: bool = False


_MATCH = msgspec.json.Decoder(Match | LastMatch)
_TRADE_ROWS = msgspec.json.Decoder(list[TradeRow])
_PRODUCTS = msgspec.json.Decoder(list[ProductRow])
# A candle row: time (s), low, high, open, close, volume; numbers decoded exactly as Decimal.
_CANDLES = msgspec.json.Decoder(list[tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]])
CANDLES_PER_REQUEST: Final = 300


class CoinbaseAdapter(ListedSymbols):
    """Coinbase Exchange `matches` + `heartbeat` feed; repair by trade id over `/products/{id}/trades`."""

    name: str = "coinbase"
    default_ws_url: str = "wss://ws-feed.exchange.coinbase.com"
    default_rest_url: str = "https://api.exchange.coinbase.com"
    default_symbols: tuple[str, ...] = ("BTC-USD", "ETH-USD")
    capabilities: Capabilities = Capabilities(
        sequence=SequenceKind.CONTIGUOUS,  # trade_id: +1 per trade per product (§2.6)
        repair=RepairKind.ID_CURSOR,  # /products/{id}/trades?after=<trade_id> (§2.5)
        heartbeat=HeartbeatKind.HEARTBEAT_CHANNEL,  # one heartbeat per product per second (§2.6)
        # Products per connection are not documented (§2.4): 100 products (x matches + heartbeat) keep a
        # connection's heartbeats at 100 messages/s and its `subscriptions` ack near 3 KB.
        max_streams_per_connection=200,
        streams_per_symbol=2,
        # One subscribe message per connection (~2.6 KB for 100 products): the feed takes 10 client
        # messages/s per IP (Addendum) and every reconnect resubscribes.
        max_subscriptions_per_message=100,
        # A match is ~350 bytes, a heartbeat ~150, the ack ~3 KB; only unsubscribed channels (level2
        # snapshots) send more. Larger frames are rejected as oversized.
        max_frame_bytes=64 * 1024,
        repair_page_size=1000,  # `limit` maximum (§2.5)
        subscribe_snapshot=True,  # last_match
        klines=KlineSupport(page_minutes=CANDLES_PER_REQUEST),  # /products/{id}/candles, 300 a request
        # repair_reach_s None: the id cursor reaches back to a product's first trade. No connection age
        # limit is documented for the feed (§0: unconfirmed), so none is declared.
    )

    # -- connection ------------------------------------------------------------------------------
    def ws_url(self, base_url: str, raw_symbols: Sequence[str]) -> str:
        return base_url  # the feed lives at `/`; the subscribe message names the products

    def subscribe_messages(self, raw_symbols: Sequence[str]) -> list[str]:
        return [
            msgspec.json.encode(
                {
                    "type": "subscribe",
                    "product_ids": list(batch),
                    "channels": ["matches", {"name": "heartbeat", "product_ids": list(batch)}],
                }
            ).decode()
            for batch in chunks(raw_symbols, self.capabilities.max_subscriptions_per_message)
        ]

    def ping_message(self) -> str | None:
        return None  # liveness: the heartbeat channel (and the library answers protocol pings)

    # -- frames ----------------------------------------------------------------------------------
    def parse(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        reject_oversized(frame, self.capabilities.max_frame_bytes)
        try:
            match = _MATCH.decode(frame)
        except DECODE_ERRORS:
            return self._parse_other(frame, ts_recv)
        return [self._trade(match.product_id, match, ts_recv, False)]

    def _trade(self, raw: str, m: Match | TradeRow, ts_recv: int, backfilled: bool) -> Trade:
        side = _TAKER[m.side]
        return self._trades.make(
            raw, m.trade_id, m.price, m.size, side, iso_to_ns(m.time), ts_recv, backfilled
        )

    def _parse_other(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        """Messages that are not well-formed matches: other feed messages, errors, junk."""
        message = decode_json(frame)
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(kind, str):
            raise ParseError("not a feed message (no type)", error_type=UNEXPECTED_SCHEMA, raw=frame)
        if kind in _TRADE_TYPES:
            match = convert_typed(message, Match | LastMatch, frame, kind)  # type: ignore[arg-type]
            return [self._trade(match.product_id, match, ts_recv, False)]
        if kind in _FEED_MESSAGES:
            return []
        if kind == "error":
            message_text = short_text(message.get("message"))
            raise ParseError(f"feed error: {message_text}", error_type=EXCHANGE_ERROR, raw=frame)
        raise ParseError(
            f"unexpected message type {short_text(kind, 80)!r}", error_type=UNEXPECTED_EVENT, raw=frame
        )

    # -- REST --------------------------------------------------------------------------------------
    def repair_request(self, gap: Gap) -> RestRequest | None:
        limit = str(self.capabilities.repair_page_size)
        path = f"/products/{gap.raw_symbol}/trades"
        return RestRequest(path, (("after", str(gap.last + 1)), ("limit", limit)))

    def repair_page(self, gap: Gap, request: RestRequest, body: bytes, ts_recv: int) -> RepairPage:
        """Rows come newest first, ids below `after`; see `newest_first_page` for the paging."""
        rows = decode_typed(_TRADE_ROWS, body, "product trades body")
        trades = [self._trade(gap.raw_symbol, row, ts_recv, True) for row in rows]
        return newest_first_page(gap, request, trades)

    def klines_request(self, raw_symbol: str, start_ns: int, end_ns: int) -> RestRequest | None:
        last = end_ns - NS_PER_MINUTE  # `end` is inclusive: the window's last minute
        params = (("granularity", "60"), ("start", _iso(start_ns)), ("end", _iso(max(last, start_ns))))
        return RestRequest(f"/products/{raw_symbol}/candles", params)

    def parse_klines(self, raw_symbol: str, body: bytes) -> list[Candle]:
        rows = decode_typed(_CANDLES, body, "candles body")
        return oldest_first(
            [
                make_candle(
                    t * NS_PER_SECOND,
                    number_text(open_),
                    number_text(high),
                    number_text(low),
                    number_text(close),
                    number_text(volume),
                )
                for t, low, high, open_, close, volume in rows
            ]
        )

    def classify_response(self, status: int, headers: Mapping[str, str], body: bytes) -> RestAnswer:
        """429: over the public limit (Retry-After, else 1 s); other 4xx/5xx: errors."""
        return classify_http(status, headers, body, _RETRY_AFTER_S)

    def symbols_request(self) -> RestRequest:
        return RestRequest("/products")

    def parse_symbols(self, body: bytes) -> list[SymbolInfo]:
        products = decode_typed(_PRODUCTS, body, "products body")
        return [
            spot_pair(self.name, p.id, p.base_currency, p.quote_currency)
            for p in products
            if p.status == "online" and not p.trading_disabled
        ]


def _iso(ns: int) -> str:
    """ns UTC -> '2024-01-01T00:00:00Z' (candle windows are whole minutes)."""
    return datetime.fromtimestamp(ns // NS_PER_SECOND, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
