"""Stored 1m bars checked against the venue's own 1m candles, minute by minute (pure).

Each minute of the window is one of:
- equal: both sides have it and open/high/low/close/volume are equal as decimals ("1.50000000" == "1.5"),
  and so is the trade count where the venue gives one;
- empty on both sides: no stored bar and no candle, or a candle without trades (volume 0, which venues
  such as Binance serve for quiet minutes) and no stored bar: nothing to compare, counted as equal;
- `missing_stored`: the venue has trades in a minute the store has no bar for (trades never received);
- `missing_venue`: a stored bar the venue has no candle for;
- `differs`: both have it and at least one field differs; each differing field is listed with both
  values as they were written.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final

import msgspec

from core.types import Bar, Candle

PRICE_FIELDS: Final = ("open", "high", "low", "close", "volume")


class MinuteVerdict(StrEnum):
    """How a differing minute differs."""

    MISSING_STORED = "missing_stored"  # the venue has trades in it; the store has no bar
    MISSING_VENUE = "missing_venue"  # a stored bar; the venue has no candle
    DIFFERS = "differs"  # both have it; fields differ


class FieldDifference(msgspec.Struct, frozen=True):
    """One field of one minute: `stored` and `venue` as written ("" where that side has no value)."""

    field: str
    stored: str
    venue: str


class MinuteDifference(msgspec.Struct, frozen=True):
    """A minute (open_time, ns UTC) that is not equal on both sides, and how."""

    open_time: int
    verdict: MinuteVerdict
    fields: tuple[FieldDifference, ...] = ()


class Verification(msgspec.Struct, frozen=True):
    """The outcome over a window: minutes with a bar or a candle with trades (`compared`), how many of
    them are equal (`matched`), and every difference, oldest first."""

    compared: int
    matched: int
    differences: tuple[MinuteDifference, ...]

    @property
    def equal(self) -> bool:
        return not self.differences


def same_decimal(a: str, b: str) -> bool:
    """True when the two texts are the same decimal number (trailing zeros and exponents aside);
    unreadable text is equal only to the identical text."""
    if a == b:
        return True
    try:
        return Decimal(a) == Decimal(b)
    except (InvalidOperation, ValueError):
        return False


def is_empty_candle(candle: Candle) -> bool:
    """A candle of a minute without trades (volume zero, and a trade count of zero where given)."""
    return same_decimal(candle.volume, "0") and candle.trade_count in (None, 0)


def compare_minute(bar: Bar, candle: Candle) -> tuple[FieldDifference, ...]:
    """The fields of one minute that differ between a stored bar and the venue's candle."""
    found = [
        FieldDifference(name, getattr(bar, name), getattr(candle, name))
        for name in PRICE_FIELDS
        if not same_decimal(getattr(bar, name), getattr(candle, name))
    ]
    if candle.trade_count is not None and candle.trade_count != bar.trade_count:
        found.append(FieldDifference("trade_count", str(bar.trade_count), str(candle.trade_count)))
    return tuple(found)


def verify_bars(bars: Iterable[Bar], candles: Iterable[Candle]) -> Verification:
    """Every minute that has a stored 1m bar or a candle with trades, compared (see the module docstring).
    Callers pass the bars and candles of one window of one symbol."""
    stored = {b.open_time: b for b in bars}
    venue = {c.open_time: c for c in candles if not (is_empty_candle(c) and c.open_time not in stored)}
    differences: list[MinuteDifference] = []
    minutes = sorted(stored.keys() | venue.keys())
    for minute in minutes:
        bar, candle = stored.get(minute), venue.get(minute)
        if bar is None:
            assert candle is not None  # the minute comes from one side or the other
            differences.append(MinuteDifference(minute, MinuteVerdict.MISSING_STORED, _venue_only(candle)))
        elif candle is None:
            differences.append(MinuteDifference(minute, MinuteVerdict.MISSING_VENUE, _stored_only(bar)))
        else:
            fields = compare_minute(bar, candle)
            if fields:
                differences.append(MinuteDifference(minute, MinuteVerdict.DIFFERS, fields))
    return Verification(len(minutes), len(minutes) - len(differences), tuple(differences))


def _venue_only(candle: Candle) -> tuple[FieldDifference, ...]:
    """What the venue has in a minute the store has no bar for."""
    volume = FieldDifference("volume", "", candle.volume)
    if candle.trade_count is None:
        return (volume,)
    return (volume, FieldDifference("trade_count", "", str(candle.trade_count)))


def _stored_only(bar: Bar) -> tuple[FieldDifference, ...]:
    """What the store has in a minute the venue has no candle for."""
    count = FieldDifference("trade_count", str(bar.trade_count), "")
    return (FieldDifference("volume", bar.volume, ""), count)


_HEADLINES: Final = {
    MinuteVerdict.MISSING_STORED: "no stored bar, the venue has one",
    MinuteVerdict.MISSING_VENUE: "stored bar, the venue has no candle",
    MinuteVerdict.DIFFERS: "differs",
}


def combined(results: Iterable[Verification]) -> Verification:
    """The outcome of consecutive windows as one (their differences in the order given)."""
    parts = list(results)
    differences = tuple(d for part in parts for d in part.differences)
    return Verification(sum(p.compared for p in parts), sum(p.matched for p in parts), differences)


def describe(difference: MinuteDifference) -> str:
    """One line for a person, e.g. 'differs: volume stored 1.5 venue 1.25; trade_count stored 3 venue 4'
    or 'no stored bar, the venue has one: volume venue 2.5'."""
    parts = []
    for f in difference.fields:
        sides = [f"stored {f.stored}" if f.stored else "", f"venue {f.venue}" if f.venue else ""]
        parts.append(f"{f.field} " + " ".join(s for s in sides if s))
    return f"{_HEADLINES[difference.verdict]}: " + "; ".join(parts)
