"""FastAPI dependencies: the application context and parsed, checked query parameters.

Routes declare what they need with the `...Dep` aliases; a parameter that cannot be used raises
`InvalidParameter` or `NotFound` naming it, which `api.errors` answers with a 4xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query
from starlette.requests import HTTPConnection

from api.openapi import SETTING_DEFAULT, SETTING_MAXIMUM
from api.params import (
    EXCHANGE_PATTERN,
    SYMBOL_PATTERN,
    TIME_PATTERN,
    TIMEFRAME_PATTERN,
    parse_exchange,
    parse_limit,
    parse_range,
    parse_timeframe,
)
from api.settings import ApiSettings
from api.symbols import SymbolDirectory
from core.ports import FeedBoard, MarketCache, MarketStore
from core.types import SymbolInfo
from monitoring.health import Health
from monitoring.metrics import PlatformMetrics


@dataclass(frozen=True)
class ApiContext:
    """Everything the routes use, built once by `create_app` and kept on `app.state.api`."""

    store: MarketStore
    cache: MarketCache
    metrics: PlatformMetrics
    settings: ApiSettings
    symbols: SymbolDirectory
    health: Health | None = None
    feeds: FeedBoard | None = None


@dataclass(frozen=True)
class TimeRange:
    """[start_ns, end_ns) in ns UTC; None is open-ended."""

    start_ns: int | None
    end_ns: int | None


def get_context(conn: HTTPConnection) -> ApiContext:
    context: ApiContext = conn.app.state.api
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_store(context: ContextDep) -> MarketStore:
    return context.store


def get_cache(context: ContextDep) -> MarketCache:
    return context.cache


def get_settings(context: ContextDep) -> ApiSettings:
    return context.settings


StoreDep = Annotated[MarketStore, Depends(get_store)]
CacheDep = Annotated[MarketCache, Depends(get_cache)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


TIME_RANGE = "between 1970-01-01T00:00:00Z and 2262-04-11T23:47:16.854Z (64-bit nanoseconds)"
TIME_EXAMPLES = ["2024-01-01T00:00:00Z", "1704067200000"]
ExchangeQuery = Query(
    max_length=32,
    description="exchange name, as the collectors' registry spells it (lowercase)",
    json_schema_extra={"pattern": EXCHANGE_PATTERN, SETTING_DEFAULT: "default_exchange"},
)


def exchange_param(settings: SettingsDep, exchange: Annotated[str | None, ExchangeQuery] = None) -> str:
    return parse_exchange(exchange if exchange is not None else settings.default_exchange)


ExchangeDep = Annotated[str, Depends(exchange_param)]


def timeframe_param(
    settings: SettingsDep,
    timeframe: Annotated[
        str | None,
        Query(
            max_length=16,
            description="bar length <n><s|m|h|d> dividing a day evenly (or whole days), e.g. 1m, 4h, 1d",
            json_schema_extra={"pattern": TIMEFRAME_PATTERN, SETTING_DEFAULT: "default_timeframe"},
        ),
    ] = None,
) -> str:
    return parse_timeframe(timeframe if timeframe is not None else settings.default_timeframe)


TimeframeDep = Annotated[str, Depends(timeframe_param)]


async def instrument_param(
    context: ContextDep,
    exchange: ExchangeDep,
    symbol: Annotated[
        str,
        Query(
            min_length=1,
            max_length=32,
            description="BTC-USDT (canonical), or the exchange's own BTCUSDT / btcusdt",
            json_schema_extra={"pattern": SYMBOL_PATTERN, "examples": ["BTC-USDT", "BTCUSDT"]},
        ),
    ],
) -> SymbolInfo:
    return await context.symbols.resolve(exchange, symbol)


InstrumentDep = Annotated[SymbolInfo, Depends(instrument_param)]


def _time_query(bound: str) -> Any:
    return Query(
        max_length=64,
        description=f"{bound}; ISO-8601 (UTC if no offset) or epoch ms, {TIME_RANGE}",
        json_schema_extra={"pattern": TIME_PATTERN, "examples": TIME_EXAMPLES},
    )


def time_range_param(
    start: Annotated[str | None, _time_query("inclusive")] = None,
    end: Annotated[str | None, _time_query("exclusive")] = None,
) -> TimeRange:
    start_ns, end_ns = parse_range(start, end)
    return TimeRange(start_ns, end_ns)


TimeRangeDep = Annotated[TimeRange, Depends(time_range_param)]


def _limit_query(rows: str) -> Any:
    return Query(
        description=f"how many of the most recent {rows} (at most max_{rows}_limit)",
        json_schema_extra={
            "minimum": 1,
            SETTING_MAXIMUM: f"max_{rows}_limit",
            SETTING_DEFAULT: f"default_{rows}_limit",
        },
    )


def bars_limit_param(settings: SettingsDep, limit: Annotated[int | None, _limit_query("bars")] = None) -> int:
    return parse_limit(limit, default=settings.default_bars_limit, maximum=settings.max_bars_limit)


def trades_limit_param(
    settings: SettingsDep, limit: Annotated[int | None, _limit_query("trades")] = None
) -> int:
    return parse_limit(limit, default=settings.default_trades_limit, maximum=settings.max_trades_limit)


BarsLimitDep = Annotated[int, Depends(bars_limit_param)]
TradesLimitDep = Annotated[int, Depends(trades_limit_param)]
