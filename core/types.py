"""Records shared by every stage.

Times are integer nanoseconds since the Unix epoch, UTC: `ts_event` is the exchange's own time for the
event, `ts_recv` is when this platform received it. Prices and sizes are the exact decimal strings the
exchange sent; floats derived from them are only used for arithmetic (bars, indicators).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final

import msgspec

INT64_MAX: Final = 2**63 - 1  # the largest value a 64-bit store column holds (ns: 2262-04-11)
MAX_DECIMAL_CHARS: Final = 40  # '123456789012345678.000000000000000000001' is plenty for any market
MAX_TRADE_ID_CHARS: Final = 64

# What a decoder (the bus, the spool) accepts; adapters build trades directly after their own checks.
PlainDecimal = Annotated[str, msgspec.Meta(max_length=MAX_DECIMAL_CHARS)]
"""A plain non-negative decimal as text: ASCII digits and at most one point, no sign or exponent. The
decoder checks the length; the digits are checked by `is_plain_decimal` after decoding (storage.codec),
through a cache, since a pattern constraint would run a regular expression on every value."""


def is_plain_decimal(text: str) -> bool:
    """'0.00150000', '30000', '5.', '.5': ASCII digits and at most one point (what PlainDecimal holds)."""
    digits = text.replace(".", "", 1)
    return digits.isdigit() and digits.isascii()


Nanos = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Sequence64 = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]


class Side(StrEnum):
    """The taker's (aggressor's) side of a trade."""

    BUY = "buy"
    SELL = "sell"


class Trade(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One normalized trade.

    symbol: canonical BASE-QUOTE (BTC-USDT); raw_symbol: the exchange's own (BTCUSDT).
    trade_id: the venue's own trade id, exactly as sent, as text ("3123456789", "01cacfe9-...").
    sequence: an integer that grows by exactly one per trade of the symbol, given only by venues that
    guarantee it (gap detection and coverage rely on it); None where the venue gives no such sequence.
    price/quantity: exact strings as sent.
    ts_recv: when this platform received the trade, ns UTC at microsecond precision (what every store
    keeps); with ts_event it orders trades: ties in event time are broken by receive order.
    backfilled: True when it came from REST gap repair rather than the live stream.
    """

    exchange: str
    symbol: str
    raw_symbol: str
    trade_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TRADE_ID_CHARS)]
    sequence: Sequence64 | None
    price: PlainDecimal
    quantity: PlainDecimal
    side: Side
    ts_event: Nanos
    ts_recv: Nanos
    backfilled: bool = False


class Coverage(StrEnum):
    """Whether a bar's trades are known to be all there."""

    COMPLETE = "complete"  # every sequence number from the previous bar's last to this bar's last was seen
    REPAIRED = "repaired"  # complete, some of its trades fetched over REST after the stream missed them
    INCOMPLETE = "incomplete"  # a gap in its sequence numbers that was not (or not yet) repaired
    UNVERIFIABLE = "unverifiable"  # the venue gives no contiguous sequence, or an interval was unverifiable
    OPEN = "open"  # not closed yet (a bar as it stands)


class Bar(msgspec.Struct, gc=False):
    """OHLCV over [open_time, close_time) by exchange event time, ns.

    open/high/low/close are the exact price strings of the trades that set them. volume (base units),
    quote_volume (quote units: sum of price x quantity) and buy/sell_volume (by taker side) are exact
    decimal strings: sums of the venue's strings, never of binary floats. vwap = quote_volume / volume (a
    float, the one derived value). first/last_trade_id are the venue's ids (text) of the open and close
    trades: the earliest and latest by (ts_event, receive order).

    min/max_sequence: the lowest and highest venue sequence among its trades (None where the venue has no
    sequence); sequenced_trades: how many of its trades carry one; repaired_trades: how many came from REST
    repair; coverage: see Coverage. first/last_trade_ns: event times of the open and close trades (0 for a
    bar stored before they were recorded).
    """

    exchange: str
    symbol: str
    timeframe: str
    open_time: int
    close_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    vwap: float
    trade_count: int
    buy_volume: str
    sell_volume: str
    first_trade_id: str
    last_trade_id: str
    min_sequence: int | None = None
    max_sequence: int | None = None
    sequenced_trades: int = 0
    repaired_trades: int = 0
    coverage: Coverage = Coverage.OPEN
    first_trade_ns: int = 0
    last_trade_ns: int = 0


class Candle(msgspec.Struct, frozen=True, gc=False):
    """A venue's own candle (kline) of one minute, as its REST API serves it: venue-neutral.

    open_time: the minute's start, ns UTC. open/high/low/close/volume (base units): exact decimal text as
    the venue wrote it (trailing zeros as sent; a JSON number's own text). trade_count: the number of
    trades in the minute where the venue gives it (None elsewhere).
    """

    open_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    trade_count: int | None = None


class Indicators(msgspec.Struct, gc=False):
    """Indicator values on a closed bar's close (None until the indicator has warmed up).

    Default periods: SMA/EMA 20, RSI 14, MACD 12/26/9, Bollinger 20 x 2.0, ATR 14 (TA-Lib semantics).
    """

    sma_20: float | None = None
    ema_20: float | None = None
    rsi_14: float | None = None
    macd: float | None = None
    macd_signal: float | None = None
    macd_hist: float | None = None
    bb_upper: float | None = None
    bb_middle: float | None = None
    bb_lower: float | None = None
    atr_14: float | None = None


class Features(msgspec.Struct, gc=False):
    """ML features of a closed bar, computed incrementally over real bars (None until warm).

    log_return: ln(close / previous close); realized_vol_20: population std of the last 20 log returns
    (per bar, not annualized); volume_zscore_20: (volume - mean) / std over the last 20 volumes;
    taker_buy_ratio: buy_volume / volume; range_pct: (high - low) / close; vwap_deviation:
    (close - vwap) / vwap; rsi_norm: (RSI(14) - 50) / 50.
    """

    log_return: float | None = None
    realized_vol_20: float | None = None
    volume_zscore_20: float | None = None
    taker_buy_ratio: float | None = None
    range_pct: float | None = None
    vwap_deviation: float | None = None
    rsi_norm: float | None = None


class ClosedBar(msgspec.Struct, gc=False):
    """A finished bar with the indicators and features computed on it: what storage, cache and API
    exchange."""

    bar: Bar
    indicators: Indicators
    features: Features = msgspec.field(default_factory=Features)


class SymbolInfo(msgspec.Struct, frozen=True):
    """A tradable instrument: canonical BASE-QUOTE symbol, the exchange's own symbol, its assets."""

    exchange: str
    symbol: str
    raw_symbol: str
    base: str
    quote: str


class CoverageKind(StrEnum):
    """What a coverage event says about an interval of one symbol's trades."""

    GAP = "gap"  # sequence numbers found missing; the collector is repairing them
    REPAIRED = "repaired"  # a gap's missing trades were all fetched over REST
    ABANDONED = "abandoned"  # missing trades given up on: the interval lacks them for good
    UNVERIFIED = "unverified"  # completeness cannot be checked (no sequence, REST cannot reach back)


class CoverageEvent(msgspec.Struct, frozen=True, gc=False):
    """A fact about the completeness of one symbol's trades, from its collector, carried on the bus in
    order with the trades and stored.

    start_ns/end_ns: the interval by exchange event time (ns UTC) between the trades on either side (0 if
    unknown). first/last_sequence: the sequence numbers concerned, where the venue has a sequence.
    trades: how many trades the event concerns (missing for GAP and ABANDONED, recovered for REPAIRED;
    None when unknown). recorded_ns: when the collector made the event. detail: a short reason.
    """

    exchange: str
    symbol: str
    raw_symbol: str
    kind: CoverageKind
    start_ns: int
    end_ns: int
    recorded_ns: int
    first_sequence: int | None = None
    last_sequence: int | None = None
    trades: int | None = None
    detail: str = ""


class ResumePoint(msgspec.Struct, frozen=True, gc=False):
    """Where a collector left off with one symbol: its newest trade handed on (to the bus or the store).

    A restarted collector continues from here, so that the first live trade reveals the interval it was
    away as a gap to repair (by sequence, or by time where the venue has no sequence)."""

    exchange: str
    raw_symbol: str
    trade_id: str
    sequence: int | None
    ts_event: int


class BusItem(msgspec.Struct, frozen=True, omit_defaults=True):
    """What one publish hands the bus: trades, or coverage events (exactly one of the two non-empty).
    Kept in order where the bus could not take them (a collector's spool). trace: the W3C traceparent
    of the span that received the trades ("" unless tracing is on and the trace sampled)."""

    trades: list[Trade] = msgspec.field(default_factory=list)
    events: list[CoverageEvent] = msgspec.field(default_factory=list)
    trace: str = ""


class DeadLetter(msgspec.Struct, frozen=True):
    """Bus content that could not be stored, set aside with why, for a person to inspect: trades the
    store refused (each alone, the rest of their batch stored), or an entry that could not be decoded
    (`raw`, its first bytes). recorded_ns: when it was set aside (ns UTC)."""

    stream: str
    delivery_id: str
    reason: str
    recorded_ns: int
    trades: list[Trade] = msgspec.field(default_factory=list)
    raw: bytes = b""


class DeadLetterRecord(msgspec.Struct, frozen=True):
    """A dead letter read back for inspection: its trades as the field lists they were stored as
    (Trade's field order), since they may hold values no Trade may."""

    stream: str
    delivery_id: str
    reason: str
    recorded_ns: int
    trades: list[list[Any]] = msgspec.field(default_factory=list)
    raw: bytes = b""


class Delivery(msgspec.Struct):
    """A batch read from the bus: trades, or coverage events, of one symbol, in publishing order.
    Acknowledge it (by `delivery_id`) only once stored."""

    stream: str
    delivery_id: str
    trades: list[Trade]
    events: list[CoverageEvent] = msgspec.field(default_factory=list)
    trace: str = ""  # W3C traceparent the publisher carried on the entry ("" when none)


class FeedState(StrEnum):
    """What a symbol's feed is doing, apart from what data it delivers."""

    STREAMING = "streaming"  # trades arrived recently
    QUIET = "quiet"  # connected, no trade for a while: a quiet market, not an outage
    DISCONNECTED = "disconnected"  # the connection carrying the symbol is down (or the collector is)
    REPAIRING = "repairing"  # connected, with trades still missing from a gap being repaired


class FeedStatus(msgspec.Struct, frozen=True, gc=False):
    """One symbol's feed as its collector sees it, published every second or so.

    Times are ns UTC (0: none yet): last_trade_ns is the newest trade's event time, last_receive_ns when
    the collector received it, updated_ns when this status was made. Counts are since the collector
    started: trades_received (live and repaired), gaps found, sequence numbers repaired over REST,
    abandoned (could not be repaired) and still missing now.
    """

    exchange: str
    symbol: str
    raw_symbol: str
    state: FeedState
    updated_ns: int
    last_trade_ns: int = 0
    last_receive_ns: int = 0
    last_sequence: int | None = None
    trades_received: int = 0
    gaps: int = 0
    missing: int = 0
    repaired: int = 0
    abandoned: int = 0
