"""Stored bars against venue candles, minute by minute (pure): exact decimal equality whatever the
trailing zeros, each kind of difference, empty candles, and the lines a person reads."""

from __future__ import annotations

import msgspec
import pytest

from core.types import Bar, Candle, Coverage
from processor.verification import (
    FieldDifference,
    MinuteVerdict,
    describe,
    is_empty_candle,
    same_decimal,
    verify_bars,
)

MINUTE = 60 * 10**9
T0 = 1_704_067_200 * 10**9


def bar(k: int, **changes: object) -> Bar:
    base = Bar(
        "binance", "BTC-USDT", "1m", T0 + k * MINUTE, T0 + (k + 1) * MINUTE, "42000.5", "42010", "41990.25",
        "42001", "1.5", "63001.5", 42001.0, 3, "1", "0.5", "10", "12", coverage=Coverage.COMPLETE,
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def candle(k: int, **changes: object) -> Candle:
    base = Candle(T0 + k * MINUTE, "42000.50000000", "42010.00000000", "41990.25000000", "42001.00000000",
                  "1.50000000", 3)  # fmt: skip
    return msgspec.structs.replace(base, **changes)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("1.50000000", "1.5", True),
        ("1", "1.000", True),
        ("0.00001", "1E-5", True),
        ("0", "0.00000000", True),
        ("1.5", "1.50000001", False),
        ("1.5", "15", False),
        ("abc", "abc", True),
        ("abc", "1", False),
    ],
)
def test_decimals_compare_exactly_whatever_their_trailing_zeros(a: str, b: str, equal: bool) -> None:
    assert same_decimal(a, b) is equal


def test_equal_minutes_trailing_zeros_aside() -> None:
    result = verify_bars([bar(0), bar(1)], [candle(0), candle(1)])
    assert result.equal and (result.compared, result.matched) == (2, 2)


def test_every_differing_field_is_named_with_both_values() -> None:
    stored = bar(0, volume="1.25", trade_count=2)
    result = verify_bars([stored, bar(1)], [candle(0), candle(1, high="42011")])
    assert [(d.open_time, d.verdict) for d in result.differences] == [
        (T0, MinuteVerdict.DIFFERS),
        (T0 + MINUTE, MinuteVerdict.DIFFERS),
    ]
    assert result.differences[0].fields == (
        FieldDifference("volume", "1.25", "1.50000000"),
        FieldDifference("trade_count", "2", "3"),
    )
    assert result.differences[1].fields == (FieldDifference("high", "42010", "42011"),)
    assert describe(result.differences[0]) == (
        "differs: volume stored 1.25 venue 1.50000000; trade_count stored 2 venue 3"
    )
    assert (result.compared, result.matched) == (2, 0)


def test_the_trade_count_is_compared_only_where_the_venue_gives_it() -> None:
    assert verify_bars([bar(0, trade_count=99)], [candle(0, trade_count=None)]).equal


def test_missing_on_either_side() -> None:
    result = verify_bars([bar(0), bar(2)], [candle(0), candle(1, trade_count=4)])
    missing_stored, missing_venue = result.differences
    assert missing_stored.verdict is MinuteVerdict.MISSING_STORED and missing_stored.open_time == T0 + MINUTE
    assert missing_venue.verdict is MinuteVerdict.MISSING_VENUE and missing_venue.open_time == T0 + 2 * MINUTE
    assert describe(missing_stored) == (
        "no stored bar, the venue has one: volume venue 1.50000000; trade_count venue 4"
    )
    assert describe(missing_venue) == (
        "stored bar, the venue has no candle: volume stored 1.5; trade_count stored 3"
    )
    assert (result.compared, result.matched) == (3, 1)


def test_a_candle_without_trades_matches_no_bar_but_not_a_bar() -> None:
    empty = candle(1, volume="0.00000000", trade_count=0)
    assert is_empty_candle(empty) and not is_empty_candle(candle(0))
    quiet = verify_bars([bar(0)], [candle(0), empty])
    assert quiet.equal and quiet.compared == 1  # a quiet minute is nothing to compare
    result = verify_bars([bar(0), bar(1)], [candle(0), empty])
    assert [d.verdict for d in result.differences] == [MinuteVerdict.DIFFERS]
    assert ("volume", "1.5", "0.00000000") in [
        (f.field, f.stored, f.venue) for f in result.differences[0].fields
    ]


def test_nothing_on_either_side_is_equal() -> None:
    result = verify_bars([], [])
    assert result.equal and result.compared == 0
