"""A processor that crashes and rebuilds its open bars from what it stored emits exactly the bars an
uninterrupted one does, field by field: none twice, none missing, none different. The rebuild is the
service's (processor/warm_up.py): timeframes closed up to their newest stored bar, coarser open bars
merged from stored finer bars where no stored trade is missing from them (else every stored trade from
the oldest open bar replayed), then the stored trades after the newest closed bar, in stored order."""

from __future__ import annotations

import pytest

from core.types import Bar, Coverage, Trade
from processor.bars import BarAggregator
from tests.processor.test_bars_pandas import random_trades

TIMEFRAMES = ("1m", "5m", "15m", "1h")
GRACE = 2_000_000_000


def run(aggregator: BarAggregator, trades: list[Trade]) -> list[Bar]:
    return [bar for trade in trades for bar in aggregator.add(trade).closed]


def key(bar: Bar) -> tuple[str, int]:
    return (bar.timeframe, bar.open_time)


def rebuild(stored_bars: list[Bar], stored_trades: list[Trade]) -> tuple[BarAggregator, list[Bar], bool]:
    """A fresh aggregator warmed up as the service does it; the bars the warm-up closed; whether the
    quick way (stored finer bars merged) was taken."""
    after = BarAggregator(TIMEFRAMES, GRACE)
    for timeframe in TIMEFRAMES:
        mine = [b for b in stored_bars if b.timeframe == timeframe]
        if mine:
            last = max(mine, key=lambda b: b.open_time)
            after.mark_closed("binance", "BTC-USDT", timeframe, last.close_time, last.max_sequence)
    plan = after.warm_up_plan("binance", "BTC-USDT")
    since, quick = plan.full_replay_from_ns, False
    if plan.steps is not None:
        parts = {}
        for step in plan.steps:
            mine = [
                b
                for b in stored_bars
                if b.timeframe == step.source and step.start_ns <= b.open_time < step.end_ns
            ]
            count = sum(step.start_ns <= t.ts_event < step.end_ns for t in stored_trades)
            if sum(b.trade_count for b in mine) != count:
                break
            parts[step.timeframe] = mine
        else:
            for timeframe, mine in parts.items():
                after.restore("binance", "BTC-USDT", timeframe, mine)
            since, quick = plan.replay_from_ns, True
    replay = sorted(
        (t for t in stored_trades if t.ts_event >= (since or 0)), key=lambda t: (t.ts_event, t.ts_recv)
    )
    return after, run(after, replay), quick


@pytest.mark.parametrize("late_share", [0.0, 0.02])
@pytest.mark.parametrize("crash_at", [137, 5000, 11_111, 19_000])
def test_rebuild_after_a_crash_equals_the_uninterrupted_run(crash_at: int, late_share: float) -> None:
    trades = random_trades(20_000, seed=5, late_share=late_share, sequenced=True)  # in arrival order
    expected = run(BarAggregator(TIMEFRAMES, GRACE), trades)

    stored_bars = run(BarAggregator(TIMEFRAMES, GRACE), trades[:crash_at])
    after, rebuilt, quick = rebuild(stored_bars, trades[:crash_at])
    rebuilt += run(after, trades[crash_at:])

    emitted = stored_bars + rebuilt
    assert len({key(b) for b in emitted}) == len(emitted), "a bar was emitted twice"
    got, want = {key(b): b for b in emitted}, {key(b): b for b in expected}
    assert got.keys() == want.keys()
    for k, bar in want.items():
        assert got[k] == bar, k  # every field: exact volumes, ids, sequences, coverage
    if late_share == 0.0 and crash_at > 5000:
        assert quick, "no late trades: the open coarser bars come from stored finer bars"
    coverage = {b.coverage for b in expected}
    assert Coverage.COMPLETE in coverage and coverage <= {Coverage.COMPLETE, Coverage.INCOMPLETE}


def test_first_bars_and_bars_after_a_hole_are_incomplete_the_others_complete() -> None:
    trades = random_trades(5_000, seed=9, sequenced=True)
    missing = {t.sequence for t in trades[2000:2003]}
    bars = run(BarAggregator(TIMEFRAMES, GRACE), [t for t in trades if t.sequence not in missing])
    lost_at = min(t.ts_event for t in trades[2000:2003])
    for bar in bars:
        first = bar.min_sequence == min(t.sequence for t in trades if t.sequence is not None)  # type: ignore[type-var]
        hit = bar.open_time <= lost_at < bar.close_time
        want = Coverage.INCOMPLETE if first or hit else Coverage.COMPLETE
        assert bar.coverage is want, (bar.timeframe, bar.open_time)
