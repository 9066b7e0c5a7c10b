"""Conversion between core records and table rows, shared by the PostgreSQL and SQLite stores.

Column lists are derived from the record types, so that a field added to `Bar` or `Indicators` fails loudly
in the migrations rather than silently vanishing. Times stay integer ns UTC here; each store converts
at its own edge (PostgreSQL timestamptz in its type codec, SQLite keeps INTEGER ns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from msgspec.structs import astuple

from core.types import (
    Bar,
    ClosedBar,
    Coverage,
    CoverageEvent,
    CoverageKind,
    Features,
    Indicators,
    ResumePoint,
    Side,
    SymbolInfo,
    Trade,
)

TRADE_COLUMNS: tuple[str, ...] = Trade.__struct_fields__
BAR_FIELDS: tuple[str, ...] = Bar.__struct_fields__
INDICATOR_FIELDS: tuple[str, ...] = Indicators.__struct_fields__
FEATURE_FIELDS: tuple[str, ...] = Features.__struct_fields__
BAR_COLUMNS: tuple[str, ...] = BAR_FIELDS + INDICATOR_FIELDS + FEATURE_FIELDS
BAR_KEY_COLUMNS: tuple[str, ...] = ("exchange", "symbol", "timeframe", "open_time")
SYMBOL_COLUMNS: tuple[str, ...] = SymbolInfo.__struct_fields__
COVERAGE_COLUMNS: tuple[str, ...] = CoverageEvent.__struct_fields__
DECIMAL_BAR_FIELDS = frozenset(
    {"open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "sell_volume"}
)
"""Bar fields kept as exact decimal text (numeric in PostgreSQL, TEXT in SQLite)."""
_COVERAGE_AT = BAR_FIELDS.index("coverage")

TradeKey = tuple[str, str, str]
"""(exchange, symbol, trade_id): a trade's identity. The same id at another event time is the same trade."""

SOURCE_KEY = "data_source"
"""platform_meta key recording whether the data is 'simulated' or 'live'."""


INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def bar_range_params(
    exchange: str, symbol: str, timeframe: str, start_ns: int | None, end_ns: int | None, limit: int
) -> tuple[str, str, str, int, int, int]:
    """Query parameters for bars with open_time in [start_ns, end_ns) (open-ended when None), most
    recent `limit` (never negative)."""
    return (
        exchange,
        symbol,
        timeframe,
        INT64_MIN if start_ns is None else start_ns,
        INT64_MAX if end_ns is None else end_ns,
        max(limit, 0),
    )


def coverage_range_params(
    exchange: str, symbol: str, start_ns: int | None, end_ns: int | None
) -> tuple[str, str, int, int]:
    """Query parameters for coverage events overlapping [start_ns, end_ns) (open-ended when None)."""
    return (
        exchange,
        symbol,
        INT64_MIN if start_ns is None else start_ns,
        INT64_MAX if end_ns is None else end_ns,
    )


def trade_key(trade: Trade) -> TradeKey:
    return (trade.exchange, trade.symbol, trade.trade_id)


def trade_row(t: Trade) -> tuple[Any, ...]:
    return (
        t.exchange,
        t.symbol,
        t.raw_symbol,
        t.trade_id,
        t.sequence,
        t.price,
        t.quantity,
        str(t.side),  # a StrEnum's value; any other text is left for the store's CHECK to refuse
        t.ts_event,
        t.ts_recv,
        t.backfilled,
    )


def row_trade(row: Sequence[Any]) -> Trade:
    return Trade(
        row[0],
        row[1],
        row[2],
        str(row[3]),
        None if row[4] is None else int(row[4]),
        row[5],
        row[6],
        Side(row[7]),
        int(row[8]),
        int(row[9]),
        bool(row[10]),
    )


def bar_row(closed: ClosedBar) -> tuple[Any, ...]:
    """The bars-table row: bar, indicator and feature fields in BAR_COLUMNS order (coverage as text)."""
    bar = astuple(closed.bar)
    coverage = str(closed.bar.coverage)  # a StrEnum's value
    tail = (*bar[_COVERAGE_AT + 1 :], *astuple(closed.indicators), *astuple(closed.features))
    return (*bar[:_COVERAGE_AT], coverage, *tail)


def row_bar(row: Sequence[Any]) -> ClosedBar:
    bars, indicators = len(BAR_FIELDS), len(BAR_FIELDS) + len(INDICATOR_FIELDS)
    fields = list(row[:bars])
    fields[_COVERAGE_AT] = Coverage(fields[_COVERAGE_AT])
    return ClosedBar(
        bar=Bar(*fields),
        indicators=Indicators(*row[bars:indicators]),
        features=Features(*row[indicators : len(BAR_COLUMNS)]),
    )


def symbol_row(s: SymbolInfo) -> tuple[str, str, str, str, str]:
    return (s.exchange, s.symbol, s.raw_symbol, s.base, s.quote)


def new_in_order(
    trades: Sequence[Trade],
    inserted: Iterable[Sequence[Any]] | None,
    key: Callable[[Trade], TradeKey] = trade_key,
) -> list[Trade]:
    """The input trades whose keys (as `key` computes them) were inserted, in input order, each key once.
    `inserted` None: the plain insert took every trade, so all of them are new."""
    if inserted is None:
        return list(trades)
    pending = {(k[0], k[1], str(k[2])) for k in inserted}
    out: list[Trade] = []
    for t in trades:
        k = key(t)
        if k in pending:
            pending.discard(k)
            out.append(t)
    return out


def coverage_row(e: CoverageEvent) -> tuple[Any, ...]:
    values = astuple(e)
    return (*values[:3], e.kind.value, *values[4:])


def row_coverage(row: Sequence[Any]) -> CoverageEvent:
    return CoverageEvent(
        row[0], row[1], row[2], CoverageKind(row[3]), int(row[4]), int(row[5]), int(row[6]),
        None if row[7] is None else int(row[7]), None if row[8] is None else int(row[8]),
        None if row[9] is None else int(row[9]), row[10],
    )  # fmt: skip


def row_resume(row: Sequence[Any]) -> ResumePoint:
    """(exchange, raw_symbol, trade_id, sequence, ts_event) -> ResumePoint."""
    return ResumePoint(row[0], row[1], str(row[2]), None if row[3] is None else int(row[3]), int(row[4]))
