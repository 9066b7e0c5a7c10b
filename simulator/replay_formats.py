"""The trade files a replay reads (pure): our own CSV, and Binance's public trade and aggTrade files
(data.binance.vision), each turned into the six fields of our format.

- Ours: header `timestamp_ms,symbol,trade_id,price,quantity,is_buyer_maker` (see simulator.replay).
- Binance trades, `<SYMBOL>-trades-<date>.csv`: `id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match]`.
- Binance aggTrades, `<SYMBOL>-aggTrades-<date>.csv`: `agg_trade_id,price,quantity,first_trade_id,
  last_trade_id,transact_time,is_buyer_maker[,is_best_match]`.
Binance's files come with or without a header row; their symbol is in the file name; their times are
milliseconds, or microseconds in the spot files since 2025 (read as milliseconds, the venue's resolution on
the wire).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError

OUR_COLUMNS = ("timestamp_ms", "symbol", "trade_id", "price", "quantity", "is_buyer_maker")
_BINANCE_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9]+)-(?P<kind>trades|aggTrades)-", re.IGNORECASE)
_MICROSECONDS_FROM = 10**14  # a time above this is in microseconds (ms stay below it until year 5138)
Row = list[str]


@dataclass(frozen=True)
class ReplayFormat:
    """How to read one file: `columns` per data row, whether its first row is a header, and `to_ours`
    turning a data row into our six fields (time ms, symbol, id, price, quantity, is_buyer_maker)."""

    name: str
    columns: tuple[int, ...]  # accepted field counts
    has_header: bool
    to_ours: Callable[[Row], Row]
    symbol: str | None = None  # the file's one symbol, where its name says it


def _ms(text: str) -> str:
    value = int(text)
    return str(value // 1000 if value > _MICROSECONDS_FROM else value)


def _binance(kind: str, symbol: str, has_header: bool) -> ReplayFormat:
    if kind.lower() == "trades":  # id, price, qty, quote_qty, time, is_buyer_maker[, is_best_match]
        return ReplayFormat(
            "binance trades",
            (6, 7),
            has_header,
            lambda r: [_ms(r[4]), symbol, r[0], r[1], r[2], r[5]],
            symbol,
        )
    # agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time, is_buyer_maker[, ...]
    return ReplayFormat(
        "binance aggTrades",
        (7, 8),
        has_header,
        lambda r: [_ms(r[5]), symbol, r[0], r[1], r[2], r[6]],
        symbol,
    )


def detect(path: Path, first_row: Sequence[str]) -> ReplayFormat:
    """The format of `path` from its name and first row; ConfigError saying what is accepted."""
    cells = tuple(cell.strip() for cell in first_row)
    if cells == OUR_COLUMNS:
        return ReplayFormat("ours", (6,), True, list)
    match = _BINANCE_NAME.match(path.name)
    if match is not None:
        has_header = bool(cells) and not cells[0].isdigit()
        return _binance(match["kind"], match["symbol"].upper(), has_header)
    raise ConfigError(
        f"replay file {path}: expected the header {','.join(OUR_COLUMNS)}, or a Binance public data file "
        f"named SYMBOL-trades-DATE.csv or SYMBOL-aggTrades-DATE.csv; got first row {list(first_row)[:8]}"
    )
