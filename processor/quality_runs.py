"""The parts of `processor.quality.QualityMonitor.check_trades` that work on a run of one symbol's trades
at once, in C calls over the run (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from operator import ge, truediv
from typing import cast

from core.types import Trade


def runs_by_symbol(trades: Iterable[Trade]) -> Iterable[tuple[tuple[str, str], list[Trade]]]:
    """Each (exchange, symbol)'s trades, in order, as one run: the checks of one symbol never depend on
    another's, so trades of symbols that alternate (an in-process batch of a read's frames) are checked
    in one run per symbol rather than in runs of one trade."""
    runs: dict[tuple[str, str], list[Trade]] = {}
    exchange: str | None = None  # (no trade's: the first trade always starts a run)
    symbol: str | None = None
    run: list[Trade] = []
    for trade in trades:
        if trade.symbol != symbol or trade.exchange != exchange:  # (rare in a batch from the bus)
            exchange, symbol = trade.exchange, trade.symbol
            run = runs.setdefault((exchange, symbol), [])
        run.append(trade)
    return runs.items()


def all_positive(values: list[float]) -> bool:
    """Every value finite and > 0 (a NaN or inf makes the sum NaN or inf)."""
    return min(values) > 0.0 and math.isfinite(sum(values))


def price_jumps(last_price: float | None, prices: list[float], spike_ratio: float) -> int | None:
    """How many price jumps the run's live, valid prices make (each against the one before, the first
    against `last_price`), None if one is beyond `spike_ratio`."""
    before = prices[:-1] if last_price is None else [last_price, *prices[:-1]]
    if not before:
        return 0
    ratios = list(map(truediv, prices[-len(before) :], before))
    if max(ratios) - 1.0 > spike_ratio or 1.0 - min(ratios) > spike_ratio:
        return None
    return len(before)


def order_checks(last_sequence: int | None, sequences: list[int | None]) -> int | None:
    """How many order checks the run's live trades make (0 when none has a sequence), None if one fails
    or only some have a sequence."""
    if sequences[0] is None:
        return 0 if sequences.count(None) == len(sequences) else None
    known = cast("list[int]", sequences)  # a None among them makes the comparison raise TypeError
    before = known[:-1] if last_sequence is None else [last_sequence, *known[:-1]]
    try:
        if any(map(ge, before, known[-len(before) :] if before else ())):
            return None
    except TypeError:  # a trade without a sequence
        return None
    return len(before)
