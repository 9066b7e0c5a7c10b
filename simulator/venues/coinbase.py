"""Coinbase Exchange behind the venue seam: the websocket feed (path `/`, channels `matches` and `heartbeat`)
and Exchange REST (`/products`, `/products/{product_id}`, `/products/{product_id}/trades`).

Websocket: `{"type":"subscribe","product_ids":[..],"channels":["matches",{"name":"heartbeat",
"product_ids":[..]}]}` is answered by `{"type":"subscriptions","channels":[..]}` listing everything the
connection is subscribed to, then one `last_match` per newly subscribed matches product (its latest trade
not withheld by the skip fault), then `match` messages. `side` is the MAKER side (a taker buy is "sell").
`sequence` is the product's order-feed sequence (simulator/derived_fields.py). Heartbeats, every
`heartbeat_interval` per heartbeat product, carry the id of the product's latest trade before the
connection's position in the feed (withheld ones included, so a missed match shows). Errors:
`{"type":"error","message":"Failed to subscribe","reason":".."}`; the whole request is then ignored.
A connection that has not subscribed within `subscribe_timeout` is closed 1008; more than 1000 client
frames in any 100 s close it 1008 (the documented 10 per second with bursts up to 1000).
REST candles: `/products/{product_id}/candles?granularity=60&start=<ISO>&end=<ISO>` rows `[time (s), low,
high, open, close, volume]` as JSON numbers, newest first, minutes opening in [start, end] (both
inclusive; start and end are used only together), at most 300 (more: 400); without a range the 300
minutes up to the latest trade. Only granularity 60 has rows; other supported ones answer `[]`.
REST paging is newest first: `after=N` older than N, `before=N` newer than N; CB-BEFORE / CB-AFTER hold the
newest and oldest id of the page; limit 1..1000 (default 1000, larger clamped).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from simulator.candles import MS_PER_MINUTE, MinuteCandle, minute_candles, minute_of
from simulator.derived_fields import (
    iso_time_ms,
    iso_time_ns,
    maker_order_id,
    maker_side,
    order_sequence,
    taker_order_id,
)
from simulator.history import Recorded
from simulator.malformed import COMMON_KINDS, TradeFields
from simulator.rest import RestRefusal, cursor_params, json_response
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

CHANNELS = ("matches", "heartbeat")
MAX_LIMIT = 1000
MAX_CANDLES = 300
GRANULARITIES = (60, 300, 900, 3600, 21600, 86400)
_NUMBERS = msgspec.json.Encoder(decimal_format="number")
INCOMING_LIMIT = (1000, 100.0)
_MATCHES: list[Route] = [(None, None, b"")]  # the pre-encoded match, unwrapped


def match_payload(trade: MarketTrade, kind: str = "match") -> bytes:
    """A `match` (or `last_match`) message, fields in the order the real feed sends them."""
    tid = trade.trade_id
    return (
        f'{{"type":"{kind}","trade_id":{tid},"maker_order_id":"{maker_order_id(trade)}",'
        f'"taker_order_id":"{taker_order_id(trade)}","side":"{maker_side(trade)}","size":"{trade.quantity}",'
        f'"price":"{trade.price}","product_id":"{trade.symbol}","sequence":{order_sequence(tid)},'
        f'"time":"{iso_time_ms(trade.time_ms)}"}}'
    ).encode()


def _error(reason: str) -> bytes:
    return msgspec.json.encode({"type": "error", "message": "Failed to subscribe", "reason": reason})


class _Refused(Exception):
    """A control message refused with `reason`."""


class CoinbaseSession(VenueSession):
    """One feed connection: channel -> products, each in subscription order."""

    def __init__(self, view: ExchangeView) -> None:
        self._view = view
        self._channels: dict[str, list[str]] = {}

    @property
    def subscribed(self) -> bool:
        return any(self._channels.values())

    def streams(self) -> list[str]:
        return [f"{name}:{product}" for name, products in self._channels.items() for product in products]

    def routes(self) -> dict[str, list[Route]]:
        return {product: _MATCHES for product in self._channels.get("matches", ())}

    def on_message(self, data: str | bytes, cursor: int) -> list[bytes]:
        try:
            kind, wanted = _parse_request(data)
            if kind == "unsubscribe":
                self._unsubscribe(wanted)
                return [self._subscriptions()]
            added = self._subscribe(wanted)
        except _Refused as exc:
            self.errors += 1
            return [_error(str(exc))]
        last_matches = (self._view.latest_before(p, cursor, visible=True) for p in added)
        return [self._subscriptions(), *(match_payload(t, "last_match") for t in last_matches if t)]

    def heartbeat(self, cursor: int, now_ns: int) -> list[bytes]:
        time = iso_time_ns(now_ns)
        beats = []
        for product in self._channels.get("heartbeat", ()):
            last = self._view.latest_before(product, cursor, visible=False)
            last_id = last.trade_id if last is not None else 0
            beats.append(
                f'{{"type":"heartbeat","sequence":{order_sequence(last_id) + 1},"last_trade_id":{last_id},'
                f'"product_id":"{product}","time":"{time}"}}'.encode()
            )
        return beats

    def _subscribe(self, wanted: dict[str, list[str] | None]) -> list[str]:
        """Apply a subscribe (all or nothing); the products newly subscribed to matches."""
        for products in wanted.values():
            if not products:
                raise _Refused("No product ids provided")
            unknown = [p for p in products if p not in self._view.symbols]
            if unknown:
                raise _Refused(f"{unknown[0]} is not a valid product")
        added: list[str] = []
        for name, products in wanted.items():
            current = self._channels.setdefault(name, [])
            new = [p for p in dict.fromkeys(products or ()) if p not in current]
            current.extend(new)
            added.extend(new if name == "matches" else ())
        self._version += 1
        return added

    def _unsubscribe(self, wanted: dict[str, list[str] | None]) -> None:
        for name, products in wanted.items():
            if products is None:
                self._channels.pop(name, None)
            elif name in self._channels:
                self._channels[name] = [p for p in self._channels[name] if p not in products]
        self._version += 1

    def _subscriptions(self) -> bytes:
        channels = [{"name": n, "product_ids": ps} for n, ps in self._channels.items() if ps]
        return msgspec.json.encode({"type": "subscriptions", "channels": channels})


def _parse_request(data: str | bytes) -> tuple[str, dict[str, list[str] | None]]:
    """(type, channel -> product ids or None for 'not given') of a subscribe/unsubscribe request."""
    request = client_json(data)
    if not isinstance(request, dict):
        raise _Refused("Malformed JSON")
    kind = request.get("type")
    if kind not in ("subscribe", "unsubscribe"):
        raise _Refused(f"type {str(kind)[:40]!r} is not subscribe or unsubscribe")
    top = _product_ids(request.get("product_ids"))
    channels = request.get("channels")
    if not isinstance(channels, list) or not channels:
        raise _Refused("channels must be a non-empty list")
    wanted: dict[str, list[str] | None] = {}
    for channel in channels:
        if isinstance(channel, dict):
            name, products = channel.get("name"), _product_ids(channel.get("product_ids")) or top
        else:
            name, products = channel, top
        if name not in CHANNELS:
            raise _Refused(f"{str(name)[:40]} is not a valid channel")
        wanted[name] = products
    return kind, wanted


def _product_ids(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise _Refused("product_ids must be a list of strings")
    return value


class CoinbaseProtocol(VenueProtocol):
    """Coinbase Exchange (see the module docstring and simulator/README.md)."""

    name = "coinbase"
    default_symbols = ("BTC-USD", "ETH-USD")
    symbol_separator = "-"
    ws_paths = ("/",)
    malformed_kinds = COMMON_KINDS
    trade_fields = TradeFields(
        kind="type", price="price", size="size", trade_id="trade_id", symbol="product_id",
        unknown_symbol="NOSUCH-COIN",
    )  # fmt: skip
    encode_trade = staticmethod(match_payload)
    rate_limited_body = {"message": "Public rate limit exceeded"}

    def __init__(self, options: VenueOptions) -> None:
        super().__init__(options)
        self.keepalive = KeepAlive(
            ping_interval=options.ping_interval,
            ping_timeout=options.ping_timeout,
            heartbeat_interval=options.heartbeat_interval,
            idle=IdleRule(options.subscribe_timeout, 1008, "subscribe timeout", until="subscribed"),
            incoming=INCOMING_LIMIT,
        )

    def open(self, request: web.Request, conn_id: int, view: ExchangeView) -> VenueSession:
        return CoinbaseSession(view)

    def rest_routes(self, view: ExchangeView) -> Sequence[RestRoute]:
        rest = _Rest(self, view)
        return [
            ("/products", rest.products),
            ("/products/{product_id}", rest.product),
            ("/products/{product_id}/trades", rest.trades),
            ("/products/{product_id}/candles", rest.candles),
        ]


class _Rest:
    """Exchange REST handlers of one exchange."""

    def __init__(self, venue: CoinbaseProtocol, view: ExchangeView) -> None:
        self._venue, self._view = venue, view

    async def products(self, request: web.Request) -> web.Response:
        return json_response([self._product(s) for s in sorted(self._view.symbols)])

    async def product(self, request: web.Request) -> web.Response:
        return json_response(self._product(self._listed(request)))

    async def trades(self, request: web.Request) -> web.Response:
        product = self._listed(request)
        try:
            limit, after, before = cursor_params(request, default=MAX_LIMIT, maximum=MAX_LIMIT)
        except ValueError as exc:
            raise RestRefusal(400, {"message": f"Invalid {exc}"}) from None
        page = self._view.history_of(product).page(after=after, before=before, limit=limit)
        headers = (
            {"CB-BEFORE": str(page[0][0].trade_id), "CB-AFTER": str(page[-1][0].trade_id)} if page else {}
        )
        return json_response([_trade_row(e) for e in page], headers=headers)

    async def candles(self, request: web.Request) -> web.Response:
        product = self._listed(request)
        granularity = request.query.get("granularity", "60")
        if not granularity.isdigit() or int(granularity) not in GRANULARITIES:
            raise RestRefusal(400, {"message": "Unsupported granularity"})
        start, end = _iso_ms(request.query.get("start")), _iso_ms(request.query.get("end"))
        if start is None or end is None:
            start = end = None  # Coinbase ignores one without the other
        elif end < start:
            raise RestRefusal(400, {"message": "start must be before end"})
        elif (minute_of(end) - minute_of(start)) // MS_PER_MINUTE + 1 > MAX_CANDLES:
            raise RestRefusal(
                400,
                {"message": "granularity too small for the requested time range. "
                 "Count of aggregations requested exceeds 300"},
            )  # fmt: skip
        if granularity != "60":
            return json_response([])
        upto = None if end is None else minute_of(end) + MS_PER_MINUTE
        rows = minute_candles(
            self._view.history_of(product), start_ms=start, end_ms=upto, limit=MAX_CANDLES, from_newest=True
        )
        body = _NUMBERS.encode([_candle_row(c) for c in reversed(rows)])
        return web.Response(body=body, content_type="application/json")

    def _listed(self, request: web.Request) -> str:
        product = request.match_info["product_id"]
        if product not in self._view.symbols:
            raise RestRefusal(404, {"message": "NotFound"})
        return product

    def _product(self, product: str) -> dict[str, Any]:
        base, quote = self._venue.instrument(product)
        return {
            "id": product, "base_currency": base, "quote_currency": quote, "display_name": f"{base}/{quote}",
            "quote_increment": "0.00000001", "base_increment": "0.00000001",
            "min_market_funds": "1", "margin_enabled": False, "post_only": False, "limit_only": False,
            "cancel_only": False, "trading_disabled": False, "status": "online", "status_message": "",
        }  # fmt: skip


def _iso_ms(text: str | None) -> int | None:
    """An ISO-8601 time (UTC when no offset) -> ms; None when absent; 400 when unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RestRefusal(400, {"message": "Invalid start or end"}) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def _candle_row(c: MinuteCandle) -> list[int | Decimal]:
    """[time (s), low, high, open, close, volume], numbers (Coinbase's order: low before high)."""
    return [
        c.open_ms // 1000, Decimal(c.low), Decimal(c.high), Decimal(c.open), Decimal(c.close), c.volume,
    ]  # fmt: skip


def _trade_row(entry: Recorded) -> dict[str, Any]:
    trade = entry[0]
    return {
        "time": iso_time_ms(trade.time_ms),
        "trade_id": trade.trade_id,
        "price": trade.price,
        "size": trade.quantity,
        "side": maker_side(trade),
    }
