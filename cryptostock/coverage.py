"""Coverage events in the processor: counted, and turned into bar holds.

While a collector repairs a gap of a symbol, the trades it is fetching belong to bars that must not close
without them: a GAP event holds the symbol's bars at the gap's start (event time), and the REPAIRED or
ABANDONED event for the same sequence numbers lifts the hold (the repaired trades arrive before it, in
order on the bus). A hold is bounded: after `max_hold_s` seconds (wall clock) it is lifted, counted in
`coverage_holds_expired_total` and logged, so that a collector that died in mid-repair cannot stop a
symbol's bars for good.
"""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger

from core.open_gaps import subtract
from core.timeframes import NS_PER_SECOND
from core.types import Bar, CoverageEvent, CoverageKind
from monitoring.metrics import PlatformMetrics
from processor.bars import BarAggregator

SymbolKey = tuple[str, str]
GapKey = tuple[int | None, int | None]


class CoverageHolds:
    """Open gaps per symbol and the bar hold each symbol gets from them (the earliest gap start)."""

    def __init__(self, aggregator: BarAggregator, metrics: PlatformMetrics, *, max_hold_s: float) -> None:
        self._aggregator = aggregator
        self._metrics = metrics
        self._max_hold_s = max_hold_s
        self._open: dict[SymbolKey, dict[GapKey, tuple[int, float]]] = {}  # -> (start_ns, opened_at)
        self._log = logger.bind(component="processor")

    def apply(self, events: Sequence[CoverageEvent], now: float) -> list[Bar]:
        """Count and log each event; open or close the holds they imply. `now`: monotonic seconds.
        Returns no bars: those a lifted hold makes due close at the next trade or clock tick."""
        changed: set[SymbolKey] = set()
        for event in events:
            self._count(event)
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
        return []

    def expire(self, now: float) -> list[Bar]:
        """Lift holds older than max_hold_s (monotonic seconds `now`)."""
        for key, gaps in self._open.items():
            stale = [gap for gap, (_, opened) in gaps.items() if now - opened > self._max_hold_s]
            for gap in stale:
                del gaps[gap]
                self._metrics.coverage_holds_expired.labels(key[0]).inc()
                self._log.warning(
                    "gap {}..{} still unrepaired after {:.0f}s: its bars close without it",
                    *gap,
                    self._max_hold_s,
                    exchange=key[0],
                    symbol=key[1],
                )
            if stale:
                self._rehold(key)
        return []

    def _rehold(self, key: SymbolKey) -> None:
        gaps = self._open.get(key)
        until = min((start for start, _ in gaps.values()), default=None) if gaps else None
        self._aggregator.hold(key[0], key[1], until)

    def _count(self, event: CoverageEvent) -> None:
        self._metrics.coverage_events.labels(event.exchange, event.kind.value).inc()
        seconds = max(event.end_ns - event.start_ns, 0) / NS_PER_SECOND
        if event.kind is CoverageKind.UNVERIFIED:
            self._metrics.unverified_seconds.labels(event.exchange).inc(seconds)
        level = "INFO" if event.kind is CoverageKind.REPAIRED else "WARNING"
        self._log.log(
            level,
            "coverage {}: sequence {}..{}, {} trades, {:.3f}s of event time ({})",
            event.kind.value,
            event.first_sequence,
            event.last_sequence,
            event.trades,
            seconds,
            event.detail or "no detail",
            exchange=event.exchange,
            symbol=event.symbol,
        )


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
