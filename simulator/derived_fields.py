"""Fields real venues send that a `MarketTrade` does not carry, derived from it deterministically so that
every rendering of one trade (a websocket push, a replayed `last_match`, a REST row) agrees.

- ISO-8601 times with microseconds and `Z`: a trade's time is whole milliseconds, so its microsecond
  digits end in 000.
- An order-feed sequence number: the sequence of a venue's full order feed, in which each match is
  preceded by other order events, so it grows by more than 1 between trades.
- Order ids of the maker and the taker as UUID strings.
- The side of the taker or of the maker, as 'buy'/'sell'; the taker's order type (market or limit).
- A connection's id as a UUID string.
- A decimal string as a JSON number's text, for venues that send prices as numbers.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import re

from simulator.trades import MarketTrade

SEQUENCE_STRIDE = 8
"""Order-feed events per trade, on average: a trade's sequence is about trade_id * SEQUENCE_STRIDE."""


@functools.lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    """'2014-11-07T08:19:27' for Unix `seconds` (UTC); cached because trades share their second."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_time_ms(time_ms: int) -> str:
    """Unix milliseconds -> '2014-11-07T08:19:27.028000Z' (microsecond precision)."""
    return f"{_iso_seconds(time_ms // 1000)}.{time_ms % 1000:03d}000Z"


def iso_time_ns(time_ns: int) -> str:
    """Unix nanoseconds -> '2014-11-07T08:19:27.028459Z' (truncated to microseconds)."""
    return f"{_iso_seconds(time_ns // 1_000_000_000)}.{time_ns // 1000 % 1_000_000:06d}Z"


def order_sequence(trade_id: int) -> int:
    """The order-feed sequence of the match with `trade_id`: strictly increasing with the id, and between
    consecutive ids it grows by 4 to 12 (never by 1), like a feed that carries other order events."""
    return trade_id * SEQUENCE_STRIDE + (trade_id * 7919) % 5


def taker_side(trade: MarketTrade) -> str:
    """'buy' if the taker (the aggressor) bought."""
    return "sell" if trade.is_buyer_maker else "buy"


def maker_side(trade: MarketTrade) -> str:
    """'buy' if the resting (maker) order was a buy, i.e. the taker sold."""
    return "buy" if trade.is_buyer_maker else "sell"


def _uuid(key: bytes) -> str:
    digest = hashlib.blake2b(key, digest_size=16).hexdigest()
    variant = "89ab"[int(digest[16], 16) & 3]
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-{variant}{digest[17:20]}-{digest[20:32]}"


def maker_order_id(trade: MarketTrade) -> str:
    """A version-4-shaped UUID unique to the trade's resting (maker) order."""
    return _uuid(f"maker:{trade.symbol}:{trade.trade_id}".encode())


def taker_order_id(trade: MarketTrade) -> str:
    """A UUID for the taker order: fills of one symbol, side and millisecond share it (one sweep)."""
    return _uuid(f"taker:{trade.symbol}:{trade.time_ms}:{trade.is_buyer_maker}".encode())


def taker_order_type(trade: MarketTrade) -> str:
    """'market' or 'limit': the taker order's type, about one fill in four from a limit order."""
    return "limit" if (trade.trade_id * 2654435761) % 4 == 0 else "market"


def connection_uuid(conn_id: int) -> str:
    """A UUID string naming connection `conn_id` (stable for the server's lifetime)."""
    return _uuid(f"connection:{conn_id}".encode())


_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def json_number(text: str) -> str:
    """`text` as JSON: unchanged when it is a JSON number ('0.10000000' stays exactly that), else as a JSON
    string, so a replayed value that is not a number makes a wrong type, never an undecodable message."""
    return text if _JSON_NUMBER.fullmatch(text) else f'"{text}"'
