"""Binance Spot stream names: what is well-formed, and which streams carry the simulator's trades.

Well-formed names for symbols the exchange does not list are accepted and never deliver (real Binance
acknowledges them too); names that are not Binance stream names at all are refused with
"Invalid request: invalid stream". Only `<symbol>@trade` and `<symbol>@aggTrade` carry data here.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_STREAMS = 1024
_INTERVALS = "1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M"
_SYMBOL_STREAM = re.compile(
    r"^(?P<symbol>[a-z0-9]{2,30})@(?P<kind>trade|aggTrade"
    rf"|kline_(?:{_INTERVALS})(?:@[+-]\d{{2}}:\d{{2}})?"
    r"|depth(?:5|10|20)?(?:@100ms|@1000ms)?"
    r"|bookTicker|miniTicker|ticker|ticker_(?:1h|4h|1d)|avgPrice|rollingWindow)$"
)
_MARKET_STREAM = re.compile(r"^!(?:miniTicker@arr|ticker@arr|ticker_(?:1h|4h|1d)@arr|bookTicker)$")
DATA_KINDS = ("trade", "aggTrade")


class Stream(NamedTuple):
    """A parsed stream name: `symbol` uppercase (empty for all-market streams), `kind` e.g. 'trade'."""

    name: str
    symbol: str
    kind: str


def parse_stream(name: object) -> Stream | None:
    """A well-formed stream name, or None."""
    if not isinstance(name, str):
        return None
    match = _SYMBOL_STREAM.match(name)
    if match is not None:
        return Stream(name, match.group("symbol").upper(), match.group("kind"))
    if _MARKET_STREAM.match(name):
        return Stream(name, "", name)
    return None
