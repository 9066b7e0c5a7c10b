"""FastAPI dependencies: the application context and parsed, checked query parameters.

Routes declare what they need with the `...Dep` aliases; a parameter that cannot be used raises
`InvalidParameter` or `NotFound` naming it, which `api.errors` answers with a 4xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from starlette.requests import HTTPConnection

from api.params import parse_exchange, parse_limit, parse_range, parse_timeframe
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


def exchange_param(
    settings: SettingsDep,
    exchange: Annotated[
        str | None, Query(max_length=64, description="exchange name; default from settings (binance)")
    ] = None,
) -> str:
    return parse_exchange(exchange if exchange is not None else settings.default_exchange)


ExchangeDep = Annotated[str, Depends(exchange_param)]


def timeframe_param(
    settings: SettingsDep,
    timeframe: Annotated[
        str | None, Query(max_length=16, description="bar length <n><s|m|h|d>, e.g. 1m, 4h; default 1m")
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
        ),
    ],
) -> SymbolInfo:
    return await context.symbols.resolve(exchange, symbol)


InstrumentDep = Annotated[SymbolInfo, Depends(instrument_param)]


def time_range_param(
    start: Annotated[
        str | None,
        Query(max_length=64, description="inclusive; ISO-8601 (UTC if no offset) or epoch ms"),
    ] = None,
    end: Annotated[
        str | None,
        Query(max_length=64, description="exclusive; ISO-8601 (UTC if no offset) or epoch ms"),
    ] = None,
) -> TimeRange:
    start_ns, end_ns = parse_range(start, end)
    return TimeRange(start_ns, end_ns)


TimeRangeDep = Annotated[TimeRange, Depends(time_range_param)]


def bars_limit_param(
    settings: SettingsDep,
    limit: Annotated[int | None, Query(description="1..max_bars_limit; the most recent bars")] = None,
) -> int:
    return parse_limit(limit, default=settings.default_bars_limit, maximum=settings.max_bars_limit)


def trades_limit_param(
    settings: SettingsDep,
    limit: Annotated[int | None, Query(description="1..max_trades_limit; the most recent trades")] = None,
) -> int:
    return parse_limit(limit, default=settings.default_trades_limit, maximum=settings.max_trades_limit)


BarsLimitDep = Annotated[int, Depends(bars_limit_param)]
TradesLimitDep = Annotated[int, Depends(trades_limit_param)]
