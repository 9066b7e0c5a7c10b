"""Coverage events in the processor, turned into bar holds (pure).

While a collector repairs a gap of a symbol, the trades it is fetching belong to bars that must not close
without them: a GAP event holds the symbol's bars at the gap's start (event time), and the REPAIRED or
ABANDONED event for the same sequence numbers lifts the hold (the repaired trades arrive before it, in
order on the bus). A hold is bounded: after `max_hold_s` seconds (monotonic, passed in by the caller) it
is lifted and returned by `expire`, so that a collector that died in mid-repair cannot stop a symbol's bars
for good. Counting and logging the events and the expired holds is the service's (processor/reporting.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from core.open_gaps import subtract
from core.types import CoverageEvent, CoverageKind
from processor.bars import BarAggregator

SymbolKey = tuple[str, str]
GapKey = tuple[int | None, int | None]


class ExpiredHold(NamedTuple):
    """A gap (first, last sequence) of a symbol still unrepaired after max_hold_s: its bars close."""

    exchange: str
    symbol: str
    gap: GapKey


class CoverageHolds:
    """Open gaps per symbol and the bar hold each symbol gets from them (the earliest gap start)."""

    def __init__(self, aggregator: BarAggregator, *, max_hold_s: float) -> None:
        self._aggregator = aggregator
        self.max_hold_s = max_hold_s
        self._open: dict[SymbolKey, dict[GapKey, tuple[int, float]]] = {}  # -> (start_ns, opened_at)

    def apply(self, events: Sequence[CoverageEvent], now: float) -> None:
        """Open or close the holds the events imply. `now`: monotonic seconds. Bars a lifted hold makes
        due close at the next trade or clock tick."""
        changed: set[SymbolKey] = set()
        for event in events:
            key = (event.exchange, event.symbol)
            gaps = self._open.setdefault(key, {})
            if event.kind is CoverageKind.GAP:
                gaps[(event.first_sequence, event.last_sequence)] = (event.start_ns, now)
            elif event.kind in (CoverageKind.REPAIRED, CoverageKind.ABANDONED):
                for gap in [g for g in gaps if _overlaps(g, event)]:
                    held = gaps.pop(gap)
                    for piece in _left_open(gap, event):  # a repair may resolve a gap piece by piece
                        gaps[piece] = held
            changed.add(key)
        for key in changed:
            self._rehold(key)

    def expire(self, now: float) -> list[ExpiredHold]:
        """Lift holds older than max_hold_s (monotonic seconds `now`); returns those lifted."""
        expired: list[ExpiredHold] = []
        for key, gaps in self._open.items():
            stale = [gap for gap, (_, opened) in gaps.items() if now - opened > self.max_hold_s]
            for gap in stale:
                del gaps[gap]
                expired.append(ExpiredHold(key[0], key[1], gap))
            if stale:
                self._rehold(key)
        return expired

    def _rehold(self, key: SymbolKey) -> None:
        gaps = self._open.get(key)
        until = min((start for start, _ in gaps.values()), default=None) if gaps else None
        self._aggregator.hold(key[0], key[1], until)


def _overlaps(gap: GapKey, event: CoverageEvent) -> bool:
    first, last = gap
    if first is None or last is None or event.first_sequence is None or event.last_sequence is None:
        return first == event.first_sequence and last == event.last_sequence
    return first <= event.last_sequence and event.first_sequence <= last


def _left_open(gap: GapKey, event: CoverageEvent) -> list[GapKey]:
    """What of `gap` an overlapping REPAIRED or ABANDONED `event` leaves unresolved."""
    first, last = gap
    lo, hi = event.first_sequence, event.last_sequence
    if first is None or last is None or lo is None or hi is None:
        return []
    return list(subtract(first, last, lo, hi))
