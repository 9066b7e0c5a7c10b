"""GET endpoints over symbols, bars, indicators and trades (all under /api/v1)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import (
    BarsLimitDep,
    CacheDep,
    ContextDep,
    InstrumentDep,
    StoreDep,
    TimeframeDep,
    TimeRangeDep,
    TradesLimitDep,
)
from api.errors import NotFound, Unavailable
from api.params import EXCHANGE_PATTERN, parse_exchange
from api.schemas import (
    BarOut,
    BarsOut,
    CoverageListOut,
    CoverageOut,
    ErrorOut,
    FeedOut,
    FeedsOut,
    IndicatorPointOut,
    IndicatorsSeriesOut,
    LatestBarOut,
    SymbolOut,
    SymbolsOut,
    TradeOut,
    TradesOut,
)
from core.timeframes import NS_PER_SECOND
from core.types import ClosedBar

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorOut, "description": "unknown exchange or symbol"},
    413: {"model": ErrorOut, "description": "request body above max_body_bytes (GET takes no body)"},
    422: {"model": ErrorOut, "description": "a parameter that cannot be used (named in the error)"},
    429: {"model": ErrorOut, "description": "rate limited; see Retry-After"},
    503: {
        "model": ErrorOut,
        "description": "storage unavailable, or too many requests in progress (overloaded); see Retry-After",
    },
}

router = APIRouter(prefix="/api/v1", tags=["market data"], responses=_ERRORS)


async def _closed_bars(
    store: StoreDep, instrument: InstrumentDep, timeframe: str, window: TimeRangeDep, limit: int
) -> list[ClosedBar]:
    return await store.bars(
        instrument.exchange,
        instrument.symbol,
        timeframe,
        start_ns=window.start_ns,
        end_ns=window.end_ns,
        limit=limit,
    )


FEED_STALE_AFTER_NS = (
    10 * NS_PER_SECOND
)  # a collector reports every second: silence this long means it is down


@router.get("/feeds", summary="Each symbol's feed: streaming, quiet, disconnected or repairing")
async def list_feeds(
    context: ContextDep,
    exchange: Annotated[
        str | None,
        Query(
            max_length=32,
            description="only this exchange (absent: every exchange)",
            json_schema_extra={"pattern": EXCHANGE_PATTERN},
        ),
    ] = None,
) -> FeedsOut:
    if context.feeds is None:
        raise Unavailable("this API process has no feed board (it needs the collectors' cache)")
    wanted = parse_exchange(exchange) if exchange is not None else None
    now = time.time_ns()
    statuses = [s for s in await context.feeds.feeds() if wanted is None or s.exchange == wanted]
    return FeedsOut(feeds=[FeedOut.of(s, now, FEED_STALE_AFTER_NS) for s in statuses])


@router.get("/coverage", summary="Gaps, repairs and unverifiable intervals of a symbol's trades")
async def get_coverage(store: StoreDep, window: TimeRangeDep, instrument: InstrumentDep) -> CoverageListOut:
    events = await store.coverage(
        instrument.exchange, instrument.symbol, start_ns=window.start_ns, end_ns=window.end_ns
    )
    return CoverageListOut(
        exchange=instrument.exchange,
        symbol=instrument.symbol,
        count=len(events),
        events=[CoverageOut.of(e) for e in events],
    )


@router.get("/symbols", summary="Known instruments")
async def list_symbols(context: ContextDep) -> SymbolsOut:
    return SymbolsOut(symbols=[SymbolOut.of(info) for info in await context.symbols.all()])


@router.get("/bars", summary="Closed bars, oldest first, with their indicators")
async def get_bars(
    store: StoreDep,
    timeframe: TimeframeDep,
    window: TimeRangeDep,
    limit: BarsLimitDep,
    instrument: InstrumentDep,
    indicators: Annotated[bool, Query(description="include each bar's indicators")] = True,
) -> BarsOut:
    closed = await _closed_bars(store, instrument, timeframe, window, limit)
    bars = [BarOut.of(c, with_indicators=indicators) for c in closed]
    return BarsOut(
        exchange=instrument.exchange,
        symbol=instrument.symbol,
        timeframe=timeframe,
        count=len(bars),
        bars=bars,
    )


@router.get("/bars/latest", summary="The newest closed bar (cache first, then the store)")
async def get_latest_bar(
    store: StoreDep, cache: CacheDep, timeframe: TimeframeDep, instrument: InstrumentDep
) -> LatestBarOut:
    exchange, symbol = instrument.exchange, instrument.symbol
    cached = await cache.latest_bar(exchange, symbol, timeframe)
    if cached is not None:
        return LatestBarOut(source="cache", bar=BarOut.of(cached))
    stored = await store.bars(exchange, symbol, timeframe, limit=1)
    if not stored:
        raise NotFound(f"no {timeframe} bars yet for {symbol} on {exchange}")
    return LatestBarOut(source="store", bar=BarOut.of(stored[-1]))


@router.get("/indicators", summary="Indicator values per bar open time, oldest first")
async def get_indicators(
    store: StoreDep,
    timeframe: TimeframeDep,
    window: TimeRangeDep,
    limit: BarsLimitDep,
    instrument: InstrumentDep,
) -> IndicatorsSeriesOut:
    closed = await _closed_bars(store, instrument, timeframe, window, limit)
    points = [IndicatorPointOut.at(c) for c in closed]
    return IndicatorsSeriesOut(
        exchange=instrument.exchange,
        symbol=instrument.symbol,
        timeframe=timeframe,
        count=len(points),
        indicators=points,
    )


@router.get("/trades", summary="Most recent trades, oldest first")
async def get_trades(store: StoreDep, limit: TradesLimitDep, instrument: InstrumentDep) -> TradesOut:
    trades = await store.trades(instrument.exchange, instrument.symbol, limit=limit)
    return TradesOut(
        exchange=instrument.exchange,
        symbol=instrument.symbol,
        count=len(trades),
        trades=[TradeOut.of(t) for t in trades],
    )
