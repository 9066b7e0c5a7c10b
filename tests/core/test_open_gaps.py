"""core.open_gaps: which gaps remain open after a run's coverage events (pure)."""

from __future__ import annotations

from core.open_gaps import MAX_OPEN_PER_SYMBOL, OpenGaps
from core.types import CoverageEvent, CoverageKind

GAP, REPAIRED, ABANDONED, UNVERIFIED = (
    CoverageKind.GAP,
    CoverageKind.REPAIRED,
    CoverageKind.ABANDONED,
    CoverageKind.UNVERIFIED,
)


def event(kind: CoverageKind, first: int | None, last: int | None, raw: str = "BTCUSDT") -> CoverageEvent:
    return CoverageEvent("binance", "BTC-USDT", raw, kind, 1, 2, 3, first, last)


def ranges(gaps: OpenGaps) -> list[tuple[str, int | None, int | None]]:
    return [(e.raw_symbol, e.first_sequence, e.last_sequence) for e in gaps.events()]


def test_a_repair_closes_what_it_overlaps_and_leaves_the_rest_open() -> None:
    gaps = OpenGaps([event(GAP, 10, 30)])
    assert gaps.apply(event(REPAIRED, 15, 19))
    assert ranges(gaps) == [("BTCUSDT", 10, 14), ("BTCUSDT", 20, 30)]
    assert [e.trades for e in gaps.events()] == [5, 11]
    assert gaps.apply(event(ABANDONED, 0, 14))
    assert not gaps.apply(event(REPAIRED, 100, 200))  # overlaps nothing
    assert ranges(gaps) == [("BTCUSDT", 20, 30)]
    assert gaps.apply(event(REPAIRED, 20, 30))
    assert gaps.events() == []


def test_symbols_and_exchanges_are_apart() -> None:
    gaps = OpenGaps([event(GAP, 1, 5), event(GAP, 1, 5, raw="ETHUSDT")])
    gaps.apply(event(REPAIRED, 1, 5, raw="ETHUSDT"))
    assert ranges(gaps) == [("BTCUSDT", 1, 5)]
    assert gaps.events("okx") == []
    assert gaps.of("binance", "BTCUSDT") == gaps.events("binance")


def test_events_without_a_sequence_range_change_nothing() -> None:
    gaps = OpenGaps([event(GAP, 1, 5)])
    assert not gaps.apply(event(UNVERIFIED, None, None))
    assert not gaps.apply(event(GAP, None, None))
    assert not gaps.apply(event(REPAIRED, None, None))
    assert ranges(gaps) == [("BTCUSDT", 1, 5)]


def test_open_gaps_per_symbol_are_bounded_oldest_forgotten_first() -> None:
    gaps = OpenGaps(event(GAP, i * 10, i * 10 + 1) for i in range(MAX_OPEN_PER_SYMBOL + 5))
    kept = ranges(gaps)
    assert len(kept) == MAX_OPEN_PER_SYMBOL and kept[0][1] == 50
