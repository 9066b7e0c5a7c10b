"""OKX v5 spot market trades: raw message types and a pure adapter.

Live data: the `trades-all` channel (one trade per update) on the business endpoint
`wss://ws.okx.com:8443/ws/v5/business`, subscribed with `{"op":"subscribe","args":[{"channel":
"trades-all","instId":"BTC-USDT"}, ...]}` (exchange-protocols.md §5.1-5.2; used without login, Addendum).
A push is `{"arg":{...},"data":[{"instId","tradeId","px","sz","side","ts","source"}]}`: `tradeId` is a
numeric string, consecutive per instrument (§5.3: implied by the docs, not stated as a guarantee), kept
as the trade id exactly as sent and read as the sequence; `side` is the taker's; `ts` is ms since the
epoch as a string; `px`/`sz` stay the exact strings sent. Several trades in one `data` array are
returned in ascending sequence.

The aggregated `trades` channel (public endpoint) parses the same way while a message covers one trade
(`count` absent or "1"). A message aggregating several (count > 1) names only the last of its trade
ids, so it cannot keep a per-trade sequence: it raises ParseError(UNEXPECTED_EVENT) (an event this
collector does not store, not a corrupt value); the ids it covered then show up as a gap and are
repaired one by one over REST, whose rows are never aggregated (§5.5).

Keep-alive (§5.4): the server closes a socket after 30 s without data; the client sends the text `ping`
and reads the text `pong`. `{"event":"notice","code":"64008"}` announces a service-upgrade disconnect
(60 s ahead): the adapter raises ReconnectRequested. Repair: `GET /api/v5/market/history-trades?
instId=X&type=1&after=<tradeId>&limit=100` answers trades older than `after`, newest first, about three
months back. Candles (for checking stored bars): `GET /api/v5/market/history-candles?instId=X&bar=1m&
after=<ts>&before=<ts>&limit=100` answers rows `[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`
(strings, `vol` in base currency for spot), NEWEST FIRST, open times strictly between `before` and
`after` (ms); no trade count. Symbols: `GET /api/v5/public/instruments?instType=SPOT`, keeping `state`
"live" only (suspend, preopen and test instruments do not trade now; field names from client code, §5.6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal

import msgspec

from collectors.adapter import (
    EXCHANGE_ERROR,
    INVALID_VALUE,
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
    SequenceKind,
    by_sequence,
    chunks,
    classify_coded,
    newest_first_page,
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
    uint_text,
)
from core.errors import ParseError
from core.types import Candle, Side, SymbolInfo, Trade

_SIDES: Final = {"buy": Side.BUY, "sell": Side.SELL}
_CHANNEL: Final = "trades-all"
_TRADE_CHANNELS: Final = ("trades-all", "trades")
_ACKS: Final = ("subscribe", "unsubscribe", "channel-conn-count", "login")
_UPGRADE_NOTICE: Final = "64008"
_PONG: Final = ("pong", b"pong")
# Body codes that mean "slow down" rather than "failed" (OKX REST error codes): 50011 rate limit
# reached, 50061 sub-account rate limit reached, 50013 system is busy, 50001 service temporarily
# unavailable. Limits count per 2 s, so without a Retry-After the backfiller waits 2 s.
_SLOW_DOWN_CODES: Final = frozenset({"50011", "50061", "50013", "50001"})
_RETRY_AFTER_S: Final = 2.0
_BUSINESS_PATH: Final = "/ws/v5/business"


class OkxTrade(msgspec.Struct, frozen=True, gc=False):
    """One trade of a `trades-all`/`trades` push or a `history-trades` row (`count`: `trades` only)."""

    instId: str
    tradeId: str
    px: str
    sz: str
    side: Literal["buy", "sell"]
    ts: str
    count: str = "1"


class TradeArg(msgspec.Struct, frozen=True, gc=False):
    channel: Literal["trades-all", "trades"]


class TradePush(msgspec.Struct, frozen=True, gc=False):
    """A trade channel push: `{"arg": {"channel", "instId"}, "data": [trade, ...]}`."""

    arg: TradeArg
    data: list[OkxTrade]


class Envelope(msgspec.Struct, frozen=True):
    """Every REST answer: `code` "0" is success, anything else an error described by `msg`."""

    code: str
    msg: str = ""
    data: msgspec.Raw = msgspec.Raw(b"[]")


class InstrumentRow(msgspec.Struct, frozen=True):
    instId: str
    baseCcy: str
    quoteCcy: str
    state: str


_PUSH = msgspec.json.Decoder(TradePush)
_ENVELOPE = msgspec.json.Decoder(Envelope)
_TRADE_ROWS = msgspec.json.Decoder(list[OkxTrade])
_INSTRUMENTS = msgspec.json.Decoder(list[InstrumentRow])
# A candle row: ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm (all strings).
_CANDLES = msgspec.json.Decoder(list[tuple[str, str, str, str, str, str, str, str, str]])
CANDLES_PER_REQUEST: Final = 100


class OkxAdapter(ListedSymbols):
    """OKX v5 spot `trades-all` on the business endpoint; repair by trade id over `history-trades`."""

    name: str = "okx"
    default_ws_url: str = "wss://ws.okx.com:8443"
    default_rest_url: str = "https://www.okx.com"
    default_symbols: tuple[str, ...] = ("BTC-USDT", "ETH-USDT")
    capabilities: Capabilities = Capabilities(
        sequence=SequenceKind.CONTIGUOUS,  # tradeId consecutive per instrument (§5.3)
        repair=RepairKind.ID_CURSOR,  # history-trades type=1, after=<tradeId> (§5.5)
        heartbeat=HeartbeatKind.APP_PING,  # text ping / pong (§5.4)
        ping_interval_s=25.0,  # the server closes a socket after 30 s without data
        # A pong comes back within a round trip; 10 s tolerates a congested path and still notices a
        # dead socket about as soon as the 30 s stale watchdog would.
        ping_timeout_s=10.0,
        # Public channels have no documented per-connection limit (the 30-connection rule is for private
        # ones): 200 instruments keep one connection's bursts and the cost of losing it moderate.
        max_streams_per_connection=200,
        # `args` of one request must stay under 64 KB: 100 args of ~50 bytes (~90 with a 40-character
        # instId) are under 10 KB; two requests per connect are far inside 480 per hour.
        max_subscriptions_per_message=100,
        max_frame_bytes=64 * 1024,  # a push of one trade is ~250 bytes; acks and notices are smaller
        repair_reach_s=90 * 86400.0,  # history-trades reaches about three months back
        repair_page_size=100,  # `limit` maximum and default
        # history-candles: 100 a request; 1m candles reach back about three months (unconfirmed)
        klines=KlineSupport(page_minutes=CANDLES_PER_REQUEST, reach_s=90 * 86400.0),
    )

    # -- connection ------------------------------------------------------------------------------
    def ws_url(self, base_url: str, raw_symbols: Sequence[str]) -> str:
        """`base_url` + /ws/v5/business, unless it already names a /ws/v5/... endpoint."""
        base = base_url.rstrip("/")
        return base if "/ws/v5/" in base else base + _BUSINESS_PATH

    def subscribe_messages(self, raw_symbols: Sequence[str]) -> list[str]:
        return [
            msgspec.json.encode(
                {"op": "subscribe", "args": [{"channel": _CHANNEL, "instId": raw} for raw in batch]}
            ).decode()
            for batch in chunks(raw_symbols, self.capabilities.max_subscriptions_per_message)
        ]

    def ping_message(self) -> str | None:
        return "ping"

    # -- frames ----------------------------------------------------------------------------------
    def parse(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        if frame in _PONG:  # the answer to `ping` is bare text, not JSON
            return []
        reject_oversized(frame, self.capabilities.max_frame_bytes)
        push = decode_or_none(_PUSH, frame)
        if push is None:
            return self._parse_other(frame, ts_recv)
        return self._push_trades(push.data, ts_recv)

    def _push_trades(self, data: list[OkxTrade], ts_recv: int) -> list[Trade]:
        trades = [self._trade(d.instId, d, ts_recv, False) for d in data]
        if len(trades) > 1:
            trades.sort(key=by_sequence)
        return trades

    def _trade(self, raw: str, d: OkxTrade, ts_recv: int, backfilled: bool) -> Trade:
        if d.count != "1":
            _reject_aggregate(d)
        side = _SIDES[d.side]
        return self._trades.make(raw, d.tradeId, d.px, d.sz, side, ms_text_to_ns(d.ts), ts_recv, backfilled)

    def _parse_other(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        """Frames that are not well-formed trade pushes: events, other channels, errors, junk."""
        message = decode_object(frame)
        event = message.get("event")
        if event is not None:
            return _event(event, message.get("code"), message.get("msg"), frame)
        arg = message.get("arg")
        if isinstance(arg, dict) and "data" in message:
            channel = arg.get("channel")
            if channel in _TRADE_CHANNELS:
                push = convert_typed(message, TradePush, frame, "trade push")
                return self._push_trades(push.data, ts_recv)
            if _is_market_channel(channel):
                return []  # tickers, books and other known channels' pushes
            raise ParseError(
                f"push of unknown channel {short_text(channel)!r}", error_type=UNEXPECTED_EVENT, raw=frame
            )
        raise ParseError("unrecognised frame", error_type=UNEXPECTED_EVENT, raw=frame)

    # -- REST --------------------------------------------------------------------------------------
    def repair_request(self, gap: Gap) -> RestRequest | None:
        limit = str(self.capabilities.repair_page_size)
        params = (("instId", gap.raw_symbol), ("type", "1"), ("after", str(gap.last + 1)), ("limit", limit))
        return RestRequest("/api/v5/market/history-trades", params)

    def repair_page(self, gap: Gap, request: RestRequest, body: bytes, ts_recv: int) -> RepairPage:
        """Rows come newest first, ids below `after`; see `newest_first_page` for the paging."""
        rows = decode_typed(_TRADE_ROWS, _data(body, "history-trades body"), "history-trades rows")
        if any(row.instId != gap.raw_symbol for row in rows):
            raise ParseError(
                f"rows of another instrument than {gap.raw_symbol}", error_type=UNEXPECTED_SCHEMA
            )
        trades = [self._trade(gap.raw_symbol, row, ts_recv, True) for row in rows]
        return newest_first_page(gap, request, trades)

    def klines_request(self, raw_symbol: str, start_ns: int, end_ns: int) -> RestRequest | None:
        """`after`/`before` are exclusive bounds on the open time (ms): (start - 1 ms, end)."""
        before, after = start_ns // 1_000_000 - 1, end_ns // 1_000_000
        params = (
            ("instId", raw_symbol),
            ("bar", "1m"),
            ("after", str(after)),
            ("before", str(before)),
            ("limit", str(CANDLES_PER_REQUEST)),
        )
        return RestRequest("/api/v5/market/history-candles", params)

    def parse_klines(self, raw_symbol: str, body: bytes) -> list[Candle]:
        rows = decode_typed(_CANDLES, _data(body, "history-candles body"), "history-candles rows")
        candles = []
        for ts, o, h, low, c, vol, *_ in rows:
            ms = uint_text(ts)
            candles.append(make_candle(ms_to_ns(ms or 0), o, h, low, c, vol))
        return oldest_first(candles)

    def classify_response(self, status: int, headers: Mapping[str, str], body: bytes) -> RestAnswer:
        """HTTP 429 or a slow-down body code: rate limited (Retry-After, else 2 s); other HTTP errors via
        classify_http; a body code other than "0": an error carrying its msg."""
        envelope = decode_or_none(_ENVELOPE, body)
        return classify_coded(
            status,
            headers,
            body,
            envelope.code if envelope else None,
            ok="0",
            slow_down=_SLOW_DOWN_CODES,
            retry_s=_RETRY_AFTER_S,
            message=envelope.msg if envelope else "",
        )

    def symbols_request(self) -> RestRequest:
        return RestRequest("/api/v5/public/instruments", (("instType", "SPOT"),))

    def parse_symbols(self, body: bytes) -> list[SymbolInfo]:
        rows = decode_typed(_INSTRUMENTS, _data(body, "instruments body"), "instruments")
        return [spot_pair(self.name, r.instId, r.baseCcy, r.quoteCcy) for r in rows if r.state == "live"]


# OKX v5 public market channels other than trades: their pushes on a shared connection are not errors.
_MARKET_CHANNELS: Final = frozenset(
    {
        "tickers", "books", "books5", "bbo-tbt", "books-l2-tbt", "books50-l2-tbt", "mark-price",
        "index-tickers", "funding-rate", "open-interest", "price-limit", "opt-summary", "status",
        "liquidation-orders", "estimated-price", "instruments",
    }
)  # fmt: skip
_CANDLE_PREFIXES: Final = ("candle", "mark-price-candle", "index-candle")


def _is_market_channel(channel: object) -> bool:
    return isinstance(channel, str) and (channel in _MARKET_CHANNELS or channel.startswith(_CANDLE_PREFIXES))


def _reject_aggregate(d: OkxTrade) -> None:
    """A `trades` message covering `count` trades: INVALID_VALUE for a count that is not a number >= 1,
    UNEXPECTED_EVENT for more than one trade (see the module docstring)."""
    count = uint_text(d.count)
    if not count:
        raise ParseError(f"bad count {d.count[:80]!r}", error_type=INVALID_VALUE, raw=repr(d)[:512])
    if count > 1:
        raise ParseError(
            f"aggregated trade ({count} trades up to id {d.tradeId[:80]}): no per-trade sequence",
            error_type=UNEXPECTED_EVENT,
            raw=repr(d)[:512],
        )


def _event(event: object, code: object, msg: object, frame: bytes | str) -> list[Trade]:
    """Acknowledgements parse to nothing; errors and notices raise."""
    if event in _ACKS:
        return []
    if event == "error":
        raise ParseError(
            f"OKX error {short_text(code)}: {short_text(msg)}", error_type=EXCHANGE_ERROR, raw=frame
        )
    if event == "notice" and code == _UPGRADE_NOTICE:
        raise ReconnectRequested(f"OKX notice {_UPGRADE_NOTICE}: {short_text(msg)}")
    raise ParseError(f"unexpected event {short_text(event)!r}", error_type=UNEXPECTED_EVENT, raw=frame)


def _data(body: bytes, what: str) -> msgspec.Raw:
    """The `data` of a successful REST answer; ParseError EXCHANGE_ERROR for a body code other than "0"
    (an answer that bypassed `classify_response`), UNEXPECTED_SCHEMA for no envelope."""
    envelope = decode_typed(_ENVELOPE, body, what)
    if envelope.code != "0":
        raise ParseError(
            f"OKX code {envelope.code[:20]}: {envelope.msg[:200]}", error_type=EXCHANGE_ERROR, raw=body
        )
    return envelope.data
