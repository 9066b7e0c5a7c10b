"""The state `processor.bars.BarAggregator` keeps per (exchange, symbol): open builders per timeframe level,
the event-time watermark and clock, a hold, and the cursors of the per-trade fast path (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from core.types import Trade
from processor.bar_builder import INF_NS, BarBuilder


class Cursor:
    """The newest open bucket of one leaf timeframe of one symbol: the per-trade fast path."""

    __slots__ = ("builder", "end", "level", "run", "start")

    def __init__(self, level: int) -> None:
        self.level = level
        self.start = 0
        self.end = 0
        self.builder: BarBuilder | None = None
        self.run: list[Trade] = []  # trades of a batch for this builder, not applied yet (add_many)


class SymbolState:
    """Open bars of one (exchange, symbol): per timeframe level, bucket start -> builder."""

    __slots__ = (
        "accounted",
        "clock",
        "closed_until",
        "cursors",
        "exchange",
        "hold",
        "lag",
        "next_due",
        "open",
        "replay_lag",
        "single",
        "symbol",
        "watermark",
    )

    def __init__(self, exchange: str, symbol: str, levels: int, leaves: Sequence[int]) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.watermark = -1
        self.clock = -1  # the latest close_due() time this symbol has seen: buckets due by then are closed
        # ts_recv - ts_event of the trade that set the watermark: wall clock -> event clock; None after a
        # warm-up until a new trade moves the watermark (replayed trades say nothing about the clock now)
        self.lag: int | None = 0
        self.replay_lag = 0  # the lag of the last trade replayed at a warm-up (settle)
        self.hold = (
            INF_NS  # no bar closes past this event time (a gap being repaired; see BarAggregator.hold)
        )
        self.next_due = INF_NS
        self.open: list[dict[int, BarBuilder]] = [{} for _ in range(levels)]
        self.closed_until = [-1] * levels
        self.accounted: list[int | None] = [None] * levels  # highest sequence in or before a closed bar
        self.cursors = [Cursor(level) for level in leaves]
        # the cursor of the one leaf timeframe (None with several): the fast path of add_many applies
        self.single = self.cursors[0] if len(self.cursors) == 1 else None
