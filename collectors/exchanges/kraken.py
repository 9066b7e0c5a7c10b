"""Kraken Spot WebSocket v2 trades: raw message types and a pure adapter.

Live data: the `trade` channel of `wss://ws.kraken.com/v2`, subscribed with `{"method":"subscribe",
"params":{"channel":"trade","symbol":["BTC/USD",...],"snapshot":true},"req_id":1}` (exchange-protocols.md
§3.1). `snapshot` is sent explicitly because Kraken's pages disagree on its default (Addendum): the last
50 trades of each pair arrive first and repeat what may be stored (`subscribe_snapshot`; the session
drops them as duplicates by sequence). A trade message is `{"channel":"trade","type":"snapshot"|"update",
"data":[{"symbol","side","price","qty","ord_type","trade_id","timestamp"}]}` (§3.2): `trade_id` is an
integer sequence per book, so it is both the text id and the sequence; `side` is the taker's;
`timestamp` is RFC 3339 with microseconds. `price` and `qty` are JSON NUMBERS: they are decoded as
`msgspec.Raw` and kept as the exact text sent (`json_number_text`), so `0.10000000` stays
`0.10000000` and `30000` stays `30000`; no float ever holds them. `heartbeat` and `status` messages,
acknowledgements and `pong` parse to nothing; `"success": false` answers are exchange errors.

Repair (§3.5, Addendum): `GET /0/public/Trades?pair=XBTUSD&since=<ns>&count=1000` answers the trades
strictly after `since` (ns), oldest first, as rows `[price, volume, time, "b"|"s", "m"|"l", misc,
trade_id]` under the pair's legacy name, with `last`, the `since` of the next page. A gap is fetched
forward from the event time of the trade before it (`Gap.after_ns`, a millisecond earlier), keeping only
the gap's ids; see `repair_page` for when paging stops. Row times are float seconds: their JSON text is
read to the microsecond (`seconds_text_to_ns`), so a backfilled trade has the event time the websocket
gave it. Kraken reports failures in the body's `error` list under HTTP 200.

Candles (for checking stored bars, Addendum): `GET /0/public/OHLC?pair=XBTUSD&interval=1&since=<s>`
answers, under the pair's legacy name with `last`, rows `[time (s), open, high, low, close, vwap, volume,
count]` (strings but the ints), oldest first, only the last 720 minutes whatever `since` asks: a check
reaches back 12 hours. `since` is asked a minute early, so that the window's first minute is in the
answer whether Kraken reads it as inclusive or exclusive.

Symbols (§3.6): `GET /0/public/AssetPairs` maps legacy names to `{altname, wsname, ...}`. The raw
symbol is the `wsname` as v2 spells it (Kraken's own asset codes XBT and XDG become BTC and DOGE:
`XBT/USD` -> `BTC/USD`), canonical BTC-USD; dark-pool pairs (`.d`, no wsname) and pairs in
`cancel_only` are skipped. Each pair keeps its REST name (altname `XBTUSD`) and its other names as
aliases (`XBT/USD`, `XBTUSD`, `XXBTZUSD`), which `resolve_symbol` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    by_sequence,
    chunks,
    classify_coded,
    with_default_path,
)
from collectors.klines import make_candle, oldest_first
from collectors.symbols import ListedPair, ListedSymbols, spot_pair
from collectors.values import (
    decode_object,
    decode_or_none,
    decode_typed,
    iso_to_ns,
    json_number_text,
    reject_oversized,
    seconds_text_to_ns,
    short_text,
    uint_text,
)
from core.errors import ParseError
from core.timeframes import NS_PER_MINUTE, NS_PER_SECOND
from core.types import Candle, Side, SymbolInfo, Trade

_SIDES: Final = {"buy": Side.BUY, "sell": Side.SELL}
_REST_SIDES: Final = {"b": Side.BUY, "s": Side.SELL}
# Kraken's own asset codes and the names the v2 websocket (and the rest of the world) uses for them.
_V2_ASSETS: Final = {"XBT": "BTC", "XDG": "DOGE"}
_KRAKEN_ASSETS: Final = {v2: code for code, v2 in _V2_ASSETS.items()}
# Channels whose messages are not trades and not errors: liveness, system status, other market data.
_QUIET_CHANNELS: Final = frozenset({"heartbeat", "status", "book", "ticker", "ohlc", "instrument", "level3"})
_ACK_METHODS: Final = frozenset({"subscribe", "unsubscribe", "pong"})
# AssetPairs `status` values under which the pair trades (cancel_only: no new orders, no trades).
_TRADING: Final = frozenset({"online", "post_only", "limit_only", "reduce_only"})
# Body errors that mean "slow down". Public endpoints allow about one call per second per IP, so a
# few seconds clear the counter.
_SLOW_DOWN: Final = frozenset({"EAPI:Rate limit exceeded", "EGeneral:Too many requests"})
_RETRY_AFTER_S: Final = 5.0
# Repair asks from this much before the trade preceding the gap: the first missing trades may share its
# timestamp (fills of one taker order), and `since` is exclusive. Rows before the gap are dropped by id.
_SINCE_MARGIN_NS: Final = 1_000_000
_TRADES_PATH: Final = "/0/public/Trades"
_LAST: Final = "last"


class KrakenTrade(msgspec.Struct, frozen=True, gc=False):
    """One entry of a `trade` message's data; price and qty are JSON numbers, kept as their text."""

    symbol: str
    side: Literal["buy", "sell"]
    price: msgspec.Raw
    qty: msgspec.Raw
    trade_id: int
    timestamp: str


class TradeMessage(msgspec.Struct, frozen=True, gc=False):
    """`{"channel": "trade", "type": "snapshot" | "update", "data": [trade, ...]}`."""

    channel: Literal["trade"]
    type: Literal["snapshot", "update"]
    data: list[KrakenTrade]


class TradeRow(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One `/0/public/Trades` row: [price, volume, time (float s), taker b/s, market/limit, misc, id]."""

    price: str
    volume: str
    time: msgspec.Raw
    side: Literal["b", "s"]
    order_type: str
    misc: str
    trade_id: int


class Envelope(msgspec.Struct, frozen=True):
    """Every REST answer: an empty `error` list is success."""

    error: list[str]
    result: msgspec.Raw = msgspec.Raw(b"{}")


class PairRow(msgspec.Struct, frozen=True):
    """One AssetPairs entry (fields the adapter reads; dark-pool pairs have no wsname)."""

    altname: str
    wsname: str = ""
    status: str = "online"


_TRADE_MESSAGE = msgspec.json.Decoder(TradeMessage)
_ENVELOPE = msgspec.json.Decoder(Envelope)
_RESULT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ROWS = msgspec.json.Decoder(list[TradeRow])
_CURSOR = msgspec.json.Decoder(str | int)
_PAIRS = msgspec.json.Decoder(dict[str, PairRow])
# An OHLC row: time (s), open, high, low, close, vwap, volume, count.
_OHLC_ROWS = msgspec.json.Decoder(list[tuple[int, str, str, str, str, str, str, int]])
OHLC_POINTS: Final = 720


class KrakenAdapter(ListedSymbols):
    """Kraken Spot WebSocket v2 `trade` channel; repair forward by time over `/0/public/Trades`."""

    name: str = "kraken"
    default_ws_url: str = "wss://ws.kraken.com/v2"
    default_rest_url: str = "https://api.kraken.com"
    default_symbols: tuple[str, ...] = ("BTC/USD", "ETH/USD")
    capabilities: Capabilities = Capabilities(
        sequence=SequenceKind.CONTIGUOUS,  # trade_id: a sequence number per book (§3.3, Addendum)
        repair=RepairKind.TIME_WINDOW,  # Trades?since=<ns>, forward; the gap's ids are kept (§3.5)
        # The venue sends `heartbeat` about once a second whenever nothing else flows (§3.4), which the
        # stale watchdog reads as life. The optional `{"method":"ping"}` is not sent: its pong would
        # arrive behind a heartbeat that already proved the connection, and every client message counts
        # toward Kraken's undocumented, dynamic message-rate limit.
        heartbeat=HeartbeatKind.HEARTBEAT_CHANNEL,
        # No per-connection limit is documented (§3.4). 200 pairs make a 200-message, ~1.8 MB burst of
        # 50-trade snapshots on every (re)connect: moderate, and what one lost connection costs.
        max_streams_per_connection=200,
        # One subscribe message per connection: Kraken takes a list of symbols, acknowledges each
        # one separately, and 200 symbols make about 3 KB.
        max_subscriptions_per_message=None,
        # A trade is ~150 bytes, a snapshot of 50 about 8 KB; an update batches the fills of a moment,
        # with no documented maximum. 256 KiB holds ~1,700 trades. A larger frame is refused as oversized
        # and, since its ids go missing, comes back through gap repair.
        max_frame_bytes=256 * 1024,
        repair_page_size=1000,  # `count` maximum and default (Addendum)
        subscribe_snapshot=True,
        # OHLC: the last 720 points only; a window one short of that, as `since` is asked a minute early
        klines=KlineSupport(page_minutes=OHLC_POINTS - 1, reach_s=OHLC_POINTS * 60.0),
        # repair_reach_s None: `since` reaches back to a pair's first trade. No connection age limit is
        # documented, so none is declared.
    )

    # -- connection ------------------------------------------------------------------------------
    def ws_url(self, base_url: str, raw_symbols: Sequence[str]) -> str:
        """`base_url` + /v2 unless it names an endpoint path itself."""
        return with_default_path(base_url, "/v2")

    def subscribe_messages(self, raw_symbols: Sequence[str]) -> list[str]:
        return [
            msgspec.json.encode(
                {
                    "method": "subscribe",
                    "params": {"channel": "trade", "symbol": list(batch), "snapshot": True},
                    "req_id": number,
                }
            ).decode()
            for number, batch in enumerate(
                chunks(raw_symbols, self.capabilities.max_subscriptions_per_message), start=1
            )
        ]

    def ping_message(self) -> str | None:
        return None  # liveness: the heartbeat channel (see capabilities)

    # -- frames ----------------------------------------------------------------------------------
    def parse(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        reject_oversized(frame, self.capabilities.max_frame_bytes)
        message = decode_or_none(_TRADE_MESSAGE, frame)
        if message is None:
            return self._parse_other(frame, ts_recv)
        return self._message_trades(message.data, frame, ts_recv)

    def _message_trades(self, data: list[KrakenTrade], frame: bytes | str, ts_recv: int) -> list[Trade]:
        make = self._trades.make
        trades = [
            make(
                d.symbol,
                d.trade_id,
                json_number_text(d.price, frame),
                json_number_text(d.qty, frame),
                _SIDES[d.side],
                iso_to_ns(d.timestamp),
                ts_recv,
            )
            for d in data
        ]
        if len(trades) > 1:
            trades.sort(key=by_sequence)
        return trades

    def _parse_other(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        """Frames that are not well-formed trade messages: other channels, acks, errors, junk."""
        message = decode_object(frame)
        channel = message.get("channel")
        if channel == "trade":
            return self._message_trades(
                decode_typed(_TRADE_MESSAGE, frame, "trade message").data, frame, ts_recv
            )
        if isinstance(channel, str) and channel in _QUIET_CHANNELS:
            return []
        if channel is not None:
            raise ParseError(
                f"message of unknown channel {short_text(channel)!r}", error_type=UNEXPECTED_EVENT, raw=frame
            )
        if message.get("success") is False or "error" in message:
            error = short_text(message.get("error"))
            raise ParseError(f"Kraken error: {error}", error_type=EXCHANGE_ERROR, raw=frame)
        method = message.get("method")
        if isinstance(method, str) and method in _ACK_METHODS:
            return []
        raise ParseError("unrecognised frame", error_type=UNEXPECTED_EVENT, raw=frame)

    # -- REST --------------------------------------------------------------------------------------
    def repair_request(self, gap: Gap) -> RestRequest | None:
        """Trades after the one preceding the gap (a millisecond earlier). Without its time (after_ns 0)
        no `since` is sent and Kraken answers its latest `count` trades: a gap among them is repaired, an
        older one stays pending, rather than paging through the pair's whole history from the epoch."""
        params = [("pair", self._rest_pair(gap.raw_symbol))]
        if gap.after_ns > 0:
            params.append(("since", str(max(gap.after_ns - _SINCE_MARGIN_NS, 0))))
        params.append(("count", str(self.capabilities.repair_page_size)))
        return RestRequest(_TRADES_PATH, tuple(params))

    def repair_page(self, gap: Gap, request: RestRequest, body: bytes, ts_recv: int) -> RepairPage:
        """The page's trades within gap.first..gap.last. The next page starts at the answer's `last`
        while the newest id is still below gap.last and `last` moved past this request's `since`; an
        empty page, an id at or past gap.last, or a cursor that did not advance ends the repair."""
        rows, cursor = self._trade_rows(body)
        trades = [self._row_trade(gap.raw_symbol, row, body, ts_recv) for row in rows]
        wanted = [t for t in trades if gap.first <= t.sequence <= gap.last]  # type: ignore[operator]
        wanted.sort(key=by_sequence)
        newest = max((row.trade_id for row in rows), default=None)
        since = uint_text(request.param("since") or "0")
        if newest is None or newest >= gap.last or since is None or cursor <= since:
            return RepairPage(wanted, None)
        return RepairPage(wanted, request.with_param("since", str(cursor)))

    def _trade_rows(self, body: bytes) -> tuple[list[TradeRow], int]:
        """The rows of a Trades answer (under the first key that is not `last`) and its `last` cursor."""
        result = decode_typed(_RESULT, _result(body, "Trades body"), "Trades result")
        cursor = uint_text(str(decode_typed(_CURSOR, result.get(_LAST, b""), "Trades last")))
        pair = next((key for key in result if key != _LAST), None)
        if pair is None or cursor is None:
            raise ParseError("Trades result without rows or cursor", error_type=UNEXPECTED_SCHEMA, raw=body)
        return decode_typed(_ROWS, result[pair], "Trades rows"), cursor

    def _row_trade(self, raw: str, row: TradeRow, body: bytes, ts_recv: int) -> Trade:
        ns = seconds_text_to_ns(json_number_text(row.time, body))
        side = _REST_SIDES[row.side]
        return self._trades.make(raw, row.trade_id, row.price, row.volume, side, ns, ts_recv, True)

    def klines_request(self, raw_symbol: str, start_ns: int, end_ns: int) -> RestRequest | None:
        since = max(start_ns - NS_PER_MINUTE, 0) // NS_PER_SECOND
        params = (("pair", self._rest_pair(raw_symbol)), ("interval", "1"), ("since", str(since)))
        return RestRequest("/0/public/OHLC", params)

    def parse_klines(self, raw_symbol: str, body: bytes) -> list[Candle]:
        result = decode_typed(_RESULT, _result(body, "OHLC body"), "OHLC result")
        pair = next((key for key in result if key != _LAST), None)
        if pair is None:
            raise ParseError("OHLC result without rows", error_type=UNEXPECTED_SCHEMA, raw=body)
        rows = decode_typed(_OHLC_ROWS, result[pair], "OHLC rows")
        return oldest_first(
            [make_candle(t * NS_PER_SECOND, o, h, low, c, vol, n) for t, o, h, low, c, _, vol, n in rows]
        )

    def _rest_pair(self, raw_symbol: str) -> str:
        """The pair's REST name: the altname kept from AssetPairs, else derived from the raw symbol as
        Kraken names its altnames (its own asset codes, no slash: BTC/USD -> XBTUSD)."""
        info = self._symbols.info(raw_symbol)
        if isinstance(info, ListedPair) and info.rest_symbol:
            return info.rest_symbol
        return "".join(_KRAKEN_ASSETS.get(asset, asset) for asset in raw_symbol.split("/"))

    def classify_response(self, status: int, headers: Mapping[str, str], body: bytes) -> RestAnswer:
        """HTTP 429 or a rate-limit error in the body: rate limited (Retry-After, else 5 s); other body
        errors (EService:Unavailable, EService:Busy, ...) and HTTP errors: errors."""
        envelope = decode_or_none(_ENVELOPE, body)
        errors = envelope.error if envelope else []
        code = next((e for e in errors if e in _SLOW_DOWN), errors[0] if errors else "")
        return classify_coded(
            status,
            headers,
            body,
            code if envelope else None,
            ok="",
            slow_down=_SLOW_DOWN,
            retry_s=_RETRY_AFTER_S,
            message="; ".join(errors),
        )

    def symbols_request(self) -> RestRequest:
        return RestRequest("/0/public/AssetPairs")

    def parse_symbols(self, body: bytes) -> list[SymbolInfo]:
        pairs = decode_typed(_PAIRS, _result(body, "AssetPairs body"), "AssetPairs result")
        return [info for key, row in pairs.items() if (info := self._pair(key, row)) is not None]

    def _pair(self, key: str, row: PairRow) -> SymbolInfo | None:
        """A listed pair, or None for a dark-pool pair, a pair not trading, or a name not BASE/QUOTE."""
        assets = row.wsname.split("/")
        if key.endswith(".d") or row.status not in _TRADING or len(assets) != 2 or not all(assets):
            return None
        base, quote = (_V2_ASSETS.get(asset, asset) for asset in assets)
        aliases = (row.wsname, row.altname, key)
        return spot_pair(self.name, f"{base}/{quote}", base, quote, aliases, row.altname)


def _result(body: bytes, what: str) -> msgspec.Raw:
    """The `result` of a successful REST answer; ParseError EXCHANGE_ERROR for a body with errors (an
    answer that bypassed `classify_response`), UNEXPECTED_SCHEMA for no envelope."""
    envelope = decode_typed(_ENVELOPE, body, what)
    if envelope.error:
        raise ParseError(
            f"Kraken error: {'; '.join(envelope.error)[:200]}", error_type=EXCHANGE_ERROR, raw=body
        )
    return envelope.result
