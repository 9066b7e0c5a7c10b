"""What every adapter's klines support shares (pure): checked venue-neutral candles, and the windows in
which shared code asks for them.

A venue's REST candles are read into `core.types.Candle`s: open time in ns at a whole minute, prices
positive plain decimals, volume a non-negative plain decimal (a minute without trades has volume 0), the
trade count a non-negative integer where the venue gives one. Anything else is ParseError(INVALID_VALUE).
Venues that send JSON numbers (Coinbase) are decoded to `Decimal` (exact: msgspec keeps the digits) and
written back as plain text with `number_text`.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from collectors.adapter import INVALID_VALUE
from collectors.values import MAX_TIME_NS, is_positive_decimal
from core.errors import ParseError
from core.timeframes import NS_PER_MINUTE
from core.types import MAX_DECIMAL_CHARS, Candle


def is_plain_decimal(text: str) -> bool:
    """A plain non-negative decimal string (digits, at most one point; '0' and '0.000' included)."""
    digits = text.replace(".", "", 1)
    return 0 < len(text) <= MAX_DECIMAL_CHARS and digits.isdigit() and digits.isascii()


def number_text(value: Decimal) -> str:
    """A JSON number decoded as Decimal, as plain text without an exponent: Decimal('1E-5') -> '0.00001'."""
    return format(value, "f")


def make_candle(
    open_ns: int, open_: str, high: str, low: str, close: str, volume: str, trade_count: int | None = None
) -> Candle:
    """A checked Candle (see the module docstring); ParseError(INVALID_VALUE) naming what is wrong."""
    if not (0 < open_ns <= MAX_TIME_NS and open_ns % NS_PER_MINUTE == 0):
        raise ParseError(f"candle open time {open_ns} ns is not a whole minute", error_type=INVALID_VALUE)
    for name, price in (("open", open_), ("high", high), ("low", low), ("close", close)):
        if not is_positive_decimal(price):
            raise ParseError(f"candle {name} {price[:40]!r} is not a price", error_type=INVALID_VALUE)
    if not is_plain_decimal(volume):
        raise ParseError(f"candle volume {volume[:40]!r} is not a size", error_type=INVALID_VALUE)
    if trade_count is not None and not 0 <= trade_count < 2**63:
        raise ParseError(f"candle trade count {trade_count} out of range", error_type=INVALID_VALUE)
    return Candle(open_ns, open_, high, low, close, volume, trade_count)


def minute_windows(start_ns: int, end_ns: int, page_minutes: int) -> Iterator[tuple[int, int]]:
    """[start_ns, end_ns) (aligned down / up to whole minutes) in consecutive windows of at most
    `page_minutes` minutes, oldest first."""
    start = start_ns - start_ns % NS_PER_MINUTE
    end = -(-end_ns // NS_PER_MINUTE) * NS_PER_MINUTE
    width = max(page_minutes, 1) * NS_PER_MINUTE
    while start < end:
        upto = min(start + width, end)
        yield start, upto
        start = upto


def oldest_first(candles: list[Candle]) -> list[Candle]:
    """Candles sorted by open time, one per minute (a repeated minute keeps its last row)."""
    return sorted({c.open_time: c for c in candles}.values(), key=lambda c: c.open_time)
