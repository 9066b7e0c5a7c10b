"""Which gaps of a venue are still open, from the coverage events its collector published: pure, no I/O.

A GAP event opens its sequence range; a REPAIRED or ABANDONED event of the same symbol closes the part of
every open range it overlaps (a repair can resolve a gap piece by piece). What remains open when a
collector stops is what its successor must still repair: the Redis bus keeps it beside the streams, and
a store can recompute it from its coverage table.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from core.types import CoverageEvent, CoverageKind

_RESOLVING = (CoverageKind.REPAIRED, CoverageKind.ABANDONED)
MAX_OPEN_PER_SYMBOL = 100  # the oldest beyond this are forgotten (a collector's GapTracker keeps as many)
# A store recomputes open gaps from the coverage events of the week before its newest one: no venue's REST
# reaches further back, and the table grows for good.
OPEN_GAPS_LOOKBACK_NS = 7 * 86_400 * 1_000_000_000


class OpenGaps:
    """The open GAP events (sequence ranges) per (exchange, raw symbol)."""

    def __init__(self, events: Iterable[CoverageEvent] = ()) -> None:
        self._open: dict[tuple[str, str], list[CoverageEvent]] = {}
        for event in events:
            self.apply(event)

    def apply(self, event: CoverageEvent) -> bool:
        """Take one event into account; True if it changed what is open for its symbol."""
        if event.first_sequence is None or event.last_sequence is None:
            return False  # only sequence ranges can be repaired again later
        key = (event.exchange, event.raw_symbol)
        if event.kind is CoverageKind.GAP:
            ranges = self._open.setdefault(key, [])
            ranges.append(event)
            del ranges[:-MAX_OPEN_PER_SYMBOL]
            return True
        if event.kind not in _RESOLVING or key not in self._open:
            return False
        lo, hi = event.first_sequence, event.last_sequence
        before = self._open[key]
        after = [piece for gap in before for piece in _minus(gap, lo, hi)]
        if after == before:
            return False
        if after:
            self._open[key] = after
        else:
            del self._open[key]
        return True

    def of(self, exchange: str, raw_symbol: str) -> list[CoverageEvent]:
        return list(self._open.get((exchange, raw_symbol), ()))

    def events(self, exchange: str | None = None) -> list[CoverageEvent]:
        """Every open gap (of `exchange`), oldest first per symbol."""
        return [e for (venue, _), gaps in self._open.items() if exchange in (None, venue) for e in gaps]


def subtract(first: int, last: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """What is left of the sequence range [first, last] once [lo, hi] is taken out: none, one or two
    ranges (the range itself when they do not overlap)."""
    if hi < first or lo > last:
        return [(first, last)]
    return [(a, b) for a, b in ((first, lo - 1), (hi + 1, last)) if a <= b]


def _minus(gap: CoverageEvent, lo: int, hi: int) -> list[CoverageEvent]:
    """What is left of `gap`'s range once [lo, hi] is resolved."""
    first, last = gap.first_sequence, gap.last_sequence
    assert first is not None and last is not None
    if hi < first or lo > last:
        return [gap]
    return [
        msgspec.structs.replace(gap, first_sequence=a, last_sequence=b, trades=b - a + 1)
        for a, b in subtract(first, last, lo, hi)
    ]
