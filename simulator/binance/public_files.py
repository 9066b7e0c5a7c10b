"""Binance's public trade and aggTrade files (data.binance.vision) as replay sources, turned into the six
fields of our replay format (simulator.replay_formats).

- trades, `<SYMBOL>-trades-<date>.csv`: `id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match]`;
- aggTrades, `<SYMBOL>-aggTrades-<date>.csv`: `agg_trade_id,price,quantity,first_trade_id,last_trade_id,
  transact_time,is_buyer_maker[,is_best_match]`.
They come with or without a header row; their symbol is in the file name; their times are milliseconds, or
microseconds in the spot files since 2025 (read as milliseconds, the venue's resolution on the wire).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from simulator.replay_formats import ReplayFormat, Row

_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9]+)-(?P<kind>trades|aggTrades)-", re.IGNORECASE)
_MICROSECONDS_FROM = 10**14  # a time above this is in microseconds (ms stay below it until year 5138)
DESCRIPTION = "Binance's public data files named SYMBOL-trades-DATE.csv or SYMBOL-aggTrades-DATE.csv"


def _ms(text: str) -> str:
    value = int(text)
    return str(value // 1000 if value > _MICROSECONDS_FROM else value)


def public_file_format(path: Path, first_row: Sequence[str]) -> ReplayFormat | None:
    """The format of one of Binance's public files, None if `path` is not named like one."""
    match = _NAME.match(path.name)
    if match is None:
        return None
    symbol = match["symbol"].upper()
    has_header = bool(first_row) and not first_row[0].strip().isdigit()

    def trade(r: Row) -> Row:  # id, price, qty, quote_qty, time, is_buyer_maker[, is_best_match]
        return [_ms(r[4]), symbol, r[0], r[1], r[2], r[5]]

    def aggregate(r: Row) -> Row:  # agg id, price, quantity, first id, last id, time, is_buyer_maker[, ...]
        return [_ms(r[5]), symbol, r[0], r[1], r[2], r[6]]

    if match["kind"].lower() == "trades":
        return ReplayFormat("public trades file", (6, 7), has_header, trade, symbol)
    return ReplayFormat("public aggTrades file", (7, 8), has_header, aggregate, symbol)
