"""Response models: what /openapi.json documents and what the routes return.

Prices are the exchange's exact strings. Every time is given twice: ISO-8601 UTC with millisecond
precision (`open_time`) and integer epoch milliseconds (`open_time_ms`). Indicator values are floats,
null until the indicator has warmed up (and never NaN or infinite).
"""

from __future__ import annotations

import math
from typing import Literal

from msgspec.structs import astuple
from pydantic import BaseModel, Field

from api.params import format_time
from core.timeframes import NS_PER_MS
from core.types import Bar, ClosedBar, CoverageEvent, Features, FeedStatus, Indicators, SymbolInfo, Trade


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class SymbolOut(BaseModel):
    exchange: str = Field(examples=["binance"])
    symbol: str = Field(description="canonical BASE-QUOTE", examples=["BTC-USDT"])
    raw_symbol: str = Field(description="the exchange's own name", examples=["BTCUSDT"])
    base: str = Field(examples=["BTC"])
    quote: str = Field(examples=["USDT"])

    @classmethod
    def of(cls, info: SymbolInfo) -> SymbolOut:
        return cls(
            exchange=info.exchange,
            symbol=info.symbol,
            raw_symbol=info.raw_symbol,
            base=info.base,
            quote=info.quote,
        )


class SymbolsOut(BaseModel):
    symbols: list[SymbolOut]


class FeedOut(BaseModel):
    """One symbol's feed as its collector last reported it (see docs/api.md: feed states)."""

    exchange: str = Field(examples=["coinbase"])
    symbol: str = Field(examples=["BTC-USD"])
    raw_symbol: str = Field(examples=["BTC-USD"])
    state: Literal["streaming", "quiet", "disconnected", "repairing"] = Field(
        description="streaming: trades arriving; quiet: connected, no trade lately (a quiet market); "
        "disconnected: its connection or its collector is down; repairing: trades missing, being fetched"
    )
    reporting: bool = Field(description="false when the collector has not reported for a while (down)")
    last_trade_time: str | None = Field(description="exchange time of the newest trade received")
    last_trade_age_s: float | None = Field(description="seconds since the newest trade was received")
    last_sequence: int | None = Field(description="the venue sequence of the newest live trade, if any")
    trades_received: int = Field(description="since the collector started (live and repaired)")
    gaps: int = Field(description="gaps in the venue's sequence found since the collector started")
    missing: int = Field(description="trades known missing and not repaired yet")
    repaired: int = Field(description="trades recovered over REST since the collector started")
    abandoned: int = Field(description="missing trades given up on (could not be repaired)")
    updated: str = Field(description="when the collector made this report")

    @classmethod
    def of(cls, status: FeedStatus, now_ns: int, stale_after_ns: int) -> FeedOut:
        reporting = now_ns - status.updated_ns <= stale_after_ns
        return cls(
            exchange=status.exchange,
            symbol=status.symbol,
            raw_symbol=status.raw_symbol,
            state=status.state.value if reporting else "disconnected",
            reporting=reporting,
            last_trade_time=format_time(status.last_trade_ns) if status.last_trade_ns else None,
            last_trade_age_s=max(now_ns - status.last_receive_ns, 0) / 1e9
            if status.last_receive_ns
            else None,
            last_sequence=status.last_sequence,
            trades_received=status.trades_received,
            gaps=status.gaps,
            missing=status.missing,
            repaired=status.repaired,
            abandoned=status.abandoned,
            updated=format_time(status.updated_ns),
        )


class CoverageOut(BaseModel):
    """One fact about the completeness of a symbol's trades (see docs/api.md: coverage)."""

    kind: Literal["gap", "repaired", "abandoned", "unverified"] = Field(
        description="gap: trades found missing, repair under way; repaired: all recovered over REST; "
        "abandoned: missing for good; unverified: completeness cannot be checked (no venue sequence, or "
        "its REST history does not reach back)"
    )
    start: str = Field(description="exchange event time where the interval starts (the trade before it)")
    start_ns: int
    end: str = Field(description="exchange event time where it ends (the trade after it)")
    end_ns: int
    first_sequence: int | None = Field(description="first sequence number concerned, if the venue has one")
    last_sequence: int | None
    trades: int | None = Field(description="trades missing (gap, abandoned) or recovered (repaired)")
    detail: str
    recorded: str = Field(description="when the collector recorded it")

    @classmethod
    def of(cls, event: CoverageEvent) -> CoverageOut:
        return cls(
            kind=event.kind.value,
            start=format_time(event.start_ns),
            start_ns=event.start_ns,
            end=format_time(event.end_ns),
            end_ns=event.end_ns,
            first_sequence=event.first_sequence,
            last_sequence=event.last_sequence,
            trades=event.trades,
            detail=event.detail,
            recorded=format_time(event.recorded_ns),
        )


class CoverageListOut(BaseModel):
    exchange: str
    symbol: str
    count: int
    events: list[CoverageOut] = Field(description="oldest first")


class FeedsOut(BaseModel):
    feeds: list[FeedOut] = Field(description="by exchange, then symbol")


_INDICATOR_FIELDS: tuple[str, ...] = Indicators.__struct_fields__


def _indicator_values(ind: Indicators) -> dict[str, float | None]:
    return {name: _finite(value) for name, value in zip(_INDICATOR_FIELDS, astuple(ind), strict=True)}


class IndicatorsOut(BaseModel):
    """Indicators on the bar's close: SMA/EMA 20, RSI 14, MACD 12/26/9, Bollinger 20x2, ATR 14."""

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

    @classmethod
    def of(cls, ind: Indicators) -> IndicatorsOut:
        return cls(**_indicator_values(ind))


class FeaturesOut(BaseModel):
    """ML features of the bar (null until warm): see core.types.Features for definitions."""

    log_return: float | None = None
    realized_vol_20: float | None = None
    volume_zscore_20: float | None = None
    taker_buy_ratio: float | None = None
    range_pct: float | None = None
    vwap_deviation: float | None = None
    rsi_norm: float | None = None

    @classmethod
    def of(cls, features: Features) -> FeaturesOut:
        return cls(**{name: _finite(getattr(features, name)) for name in Features.__struct_fields__})


class BarOut(BaseModel):
    """OHLCV over [open_time, close_time) by exchange event time."""

    exchange: str
    symbol: str
    timeframe: str
    open_time: str = Field(examples=["2024-01-01T00:00:00.000Z"])
    open_time_ms: int = Field(examples=[1704067200000])
    close_time: str = Field(examples=["2024-01-01T00:01:00.000Z"])
    close_time_ms: int = Field(examples=[1704067260000])
    open: str = Field(examples=["42000.10"])
    high: str
    low: str
    close: str
    volume: str = Field(
        description="base units, the exact decimal sum of the trades' sizes", examples=["9.13092000"]
    )
    quote_volume: str = Field(description="quote units, the exact sum of price x size")
    vwap: float | None = Field(description="quote_volume / volume, correctly rounded; null for an empty bar")
    trade_count: int
    buy_volume: str = Field(description="exact base volume of trades whose taker bought")
    sell_volume: str = Field(description="exact base volume of trades whose taker sold")
    first_trade_id: str = Field(description="the venue's id of the open trade, exactly as it sent it")
    last_trade_id: str = Field(description="the venue's id of the close trade, exactly as it sent it")
    coverage: str = Field(
        description="complete: every sequence number from the previous bar's last to this bar's last was "
        "seen; repaired: complete, some trades fetched over REST after the stream missed them; incomplete: "
        "a hole that was not repaired (or a trade that came after the bar closed); unverifiable: the venue "
        "gives no contiguous sequence, or the bar was stored before coverage was recorded",
        examples=["complete"],
    )
    min_sequence: int | None = Field(description="lowest venue sequence among its trades; null without one")
    max_sequence: int | None = Field(description="highest venue sequence among its trades; null without one")
    repaired_trades: int = Field(description="how many of its trades were fetched over REST")
    indicators: IndicatorsOut | None = Field(default=None, description="null when indicators=false")
    features: FeaturesOut | None = Field(default=None, description="null when indicators=false")

    @classmethod
    def of(cls, closed: ClosedBar, *, with_indicators: bool = True) -> BarOut:
        bar: Bar = closed.bar
        return cls(
            exchange=bar.exchange,
            symbol=bar.symbol,
            timeframe=bar.timeframe,
            open_time=format_time(bar.open_time),
            open_time_ms=bar.open_time // NS_PER_MS,
            close_time=format_time(bar.close_time),
            close_time_ms=bar.close_time // NS_PER_MS,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            quote_volume=bar.quote_volume,
            vwap=_finite(bar.vwap),
            trade_count=bar.trade_count,
            buy_volume=bar.buy_volume,
            sell_volume=bar.sell_volume,
            first_trade_id=bar.first_trade_id,
            last_trade_id=bar.last_trade_id,
            coverage=str(bar.coverage),
            min_sequence=bar.min_sequence,
            max_sequence=bar.max_sequence,
            repaired_trades=bar.repaired_trades,
            indicators=IndicatorsOut.of(closed.indicators) if with_indicators else None,
            features=FeaturesOut.of(closed.features) if with_indicators else None,
        )


class BarsOut(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    count: int
    bars: list[BarOut] = Field(description="oldest first")


class LatestBarOut(BaseModel):
    source: Literal["cache", "store"] = Field(description="where the bar was found")
    bar: BarOut


class _OpenTime(BaseModel):
    open_time: str = Field(examples=["2024-01-01T00:00:00.000Z"])
    open_time_ms: int = Field(examples=[1704067200000])


class IndicatorPointOut(IndicatorsOut, _OpenTime):
    """The indicators of the bar that opened at `open_time` (listed first)."""

    @classmethod
    def at(cls, closed: ClosedBar) -> IndicatorPointOut:
        open_time = closed.bar.open_time
        return cls(
            open_time=format_time(open_time),
            open_time_ms=open_time // NS_PER_MS,
            **_indicator_values(closed.indicators),
        )


class IndicatorsSeriesOut(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    count: int
    indicators: list[IndicatorPointOut] = Field(description="one entry per bar, oldest first")


class TradeOut(BaseModel):
    trade_id: str = Field(description="the venue's own trade id, exactly as sent", examples=["3123456789"])
    sequence: int | None = Field(
        description="the venue's contiguous per-symbol sequence (null where the venue gives none)"
    )
    price: str = Field(examples=["42000.10"])
    quantity: str = Field(examples=["0.0150"])
    side: Literal["buy", "sell"] = Field(description="the taker's side")
    time: str = Field(description="exchange event time", examples=["2024-01-01T00:00:00.123Z"])
    time_ms: int
    time_ns: int = Field(description="exchange event time, exact, ns since the epoch")
    backfilled: bool

    @classmethod
    def of(cls, trade: Trade) -> TradeOut:
        return cls(
            trade_id=trade.trade_id,
            sequence=trade.sequence,
            price=trade.price,
            quantity=trade.quantity,
            side=trade.side.value,
            time=format_time(trade.ts_event),
            time_ms=trade.ts_event // NS_PER_MS,
            time_ns=trade.ts_event,
            backfilled=trade.backfilled,
        )


class TradesOut(BaseModel):
    exchange: str
    symbol: str
    count: int
    trades: list[TradeOut] = Field(description="oldest first")


class BarMessage(BaseModel):
    """One WebSocket message: a bar that just closed."""

    type: Literal["bar"] = "bar"
    data: BarOut


class DependencyStatus(BaseModel):
    status: Literal["ok", "fail", "timeout"]
    duration_ms: float = Field(description="time the check took, ms")
    detail: str | None = Field(default=None, description="why it failed (null when ok)")


class ReadinessOut(BaseModel):
    """The same shape on the API port and on every metrics port."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, DependencyStatus]


class LivenessOut(BaseModel):
    """The same shape on the API port and on every metrics port."""

    status: Literal["ok", "fail"] = "ok"
    heartbeat_age_s: float | None = Field(
        default=None, description="seconds since the event-loop heartbeat (null when not watched)"
    )


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_parameter"])
    message: str = Field(examples=["timeframe: invalid timeframe '7x': expected <n><s|m|h|d>"])
    parameter: str | None = Field(default=None, examples=["timeframe"])
    request_id: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail
