"""What `processor.bars.BarAggregator` returns: the outcome of adding trades, and a restart's warm-up plan
(pure data)."""

from __future__ import annotations

import msgspec

from core.types import Bar, Trade


class AddResult(msgspec.Struct, frozen=True, gc=False):
    """What one `BarAggregator.add` did: bars it closed (time order per key) and the timeframes for
    which the trade came too late (its bar had already closed; the trade was not applied there)."""

    closed: tuple[Bar, ...] = ()
    late_timeframes: tuple[str, ...] = ()

    @property
    def late(self) -> bool:
        return bool(self.late_timeframes)


class LateTrade(msgspec.Struct, frozen=True, gc=False):
    """A trade that was late for some timeframes (see `AddResult.late_timeframes`)."""

    trade: Trade
    timeframes: tuple[str, ...]


class BatchResult(msgspec.Struct, gc=False):
    """What `BarAggregator.add_many` did: closed bars (time order per key), the late trades, and the trades
    left out because their price or quantity is not a plain decimal (see processor.decimals)."""

    closed: list[Bar]
    late: list[LateTrade]
    unreadable: list[Trade] = msgspec.field(default_factory=list)


class WarmUpStep(msgspec.Struct, frozen=True, gc=False):
    """Part of a restart's warm-up: the stored (closed) bars of `source` with open_time in
    [start_ns, end_ns) are the parts of the open bars of `timeframe` (BarAggregator.restore)."""

    timeframe: str
    source: str
    start_ns: int
    end_ns: int


class WarmUpPlan(msgspec.Struct, frozen=True, gc=False):
    """How to rebuild a symbol's open bars after a restart (BarAggregator.warm_up_plan).

    The quick way: restore each step's stored bars, then replay stored trades from `replay_from_ns`. It is
    exact only when no stored trade in a step's range is missing from the step's bars (a trade that came
    after its finer bar closed went to the coarser bar alone): the caller checks that by counting. If it
    fails, or `steps` is None (a timeframe with no stored bar above one that has some), replaying every
    stored trade from `full_replay_from_ns` rebuilds the same bars, more slowly. None: from the start."""

    steps: tuple[WarmUpStep, ...] | None
    replay_from_ns: int | None
    full_replay_from_ns: int | None
