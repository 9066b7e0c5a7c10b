"""Trade-id gap tracking per exchange symbol: pure, no I/O, no clock.

Exchanges whose trade ids increase by exactly one per trade within a symbol (Binance `t` and `a`) let
a collector prove completeness: an id above `last + 1` opens a gap, an id at or below `last` is a
duplicate unless it is one of the ids still missing. State lives as long as the tracker, so it spans
reconnects: the first trade after a reconnect reveals what was lost while disconnected.
"""

from __future__ import annotations

from enum import Enum

import msgspec


class Verdict(Enum):
    """Outcome of observing a trade id that did not open a gap."""

    NEW = "new"
    DUPLICATE = "duplicate"


NEW = Verdict.NEW
DUPLICATE = Verdict.DUPLICATE


class Gap(msgspec.Struct, frozen=True):
    """Trade ids `first`..`last` (inclusive) of `raw_symbol` that the live stream skipped."""

    raw_symbol: str
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


class GapTracker:
    """Last trade id and the ranges still missing, per raw symbol.

    `observe` classifies live ids; `fill` admits ids recovered over REST. Missing ranges are bounded per
    symbol (`max_ranges`): the oldest range is evicted first and can be read with `drain_evicted`.
    """

    def __init__(self, max_ranges: int = 100) -> None:
        if max_ranges < 1:
            raise ValueError("max_ranges must be at least 1")
        self._max_ranges = max_ranges
        self._last: dict[str, int] = {}
        self._missing: dict[str, list[list[int]]] = {}
        self._evicted: list[Gap] = []

    def last_id(self, raw_symbol: str) -> int | None:
        return self._last.get(raw_symbol)

    def observe(self, raw_symbol: str, trade_id: int) -> Verdict | Gap:
        """NEW (publish), DUPLICATE (drop), or the Gap just opened (repair it, then publish)."""
        last = self._last.get(raw_symbol)
        if last is None or trade_id == last + 1:
            self._last[raw_symbol] = trade_id
            return NEW
        if trade_id > last:
            self._last[raw_symbol] = trade_id
            gap = Gap(raw_symbol, last + 1, trade_id - 1)
            self._add_missing(gap)
            return gap
        return NEW if self._take(raw_symbol, trade_id) else DUPLICATE

    def fill(self, raw_symbol: str, trade_id: int) -> bool:
        """Admit a backfilled id: True when it was missing (publish it), False for a duplicate."""
        last = self._last.get(raw_symbol)
        if last is None or trade_id > last:
            return self.observe(raw_symbol, trade_id) is not DUPLICATE
        return self._take(raw_symbol, trade_id)

    def missing(self, raw_symbol: str | None = None) -> list[Gap]:
        """Ranges still missing (for one symbol or all), oldest first per symbol."""
        symbols = [raw_symbol] if raw_symbol is not None else list(self._missing)
        return [Gap(sym, lo, hi) for sym in symbols for lo, hi in self._missing.get(sym, ())]

    def missing_count(self) -> int:
        return sum(hi - lo + 1 for ranges in self._missing.values() for lo, hi in ranges)

    def abandon(self, gap: Gap) -> int:
        """Stop waiting for the ids of `gap`; returns how many were still missing."""
        ranges = self._missing.get(gap.raw_symbol)
        if not ranges:
            return 0
        dropped = 0
        kept: list[list[int]] = []
        for lo, hi in ranges:
            o_lo, o_hi = max(lo, gap.first), min(hi, gap.last)
            if o_lo > o_hi:
                kept.append([lo, hi])
                continue
            dropped += o_hi - o_lo + 1
            if lo < o_lo:
                kept.append([lo, o_lo - 1])
            if o_hi < hi:
                kept.append([o_hi + 1, hi])
        self._store(gap.raw_symbol, kept)
        return dropped

    def drain_evicted(self) -> list[Gap]:
        """Ranges dropped because a symbol had more than `max_ranges` open; cleared on read."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def _add_missing(self, gap: Gap) -> None:
        ranges = self._missing.setdefault(gap.raw_symbol, [])
        ranges.append([gap.first, gap.last])
        while len(ranges) > self._max_ranges:
            lo, hi = ranges.pop(0)
            self._evicted.append(Gap(gap.raw_symbol, lo, hi))

    def _take(self, raw_symbol: str, trade_id: int) -> bool:
        ranges = self._missing.get(raw_symbol)
        if not ranges:
            return False
        for index, (lo, hi) in enumerate(ranges):
            if lo <= trade_id <= hi:
                pieces = [[a, b] for a, b in ((lo, trade_id - 1), (trade_id + 1, hi)) if a <= b]
                ranges[index : index + 1] = pieces
                self._store(raw_symbol, ranges)
                return True
        return False

    def _store(self, raw_symbol: str, ranges: list[list[int]]) -> None:
        if ranges:
            self._missing[raw_symbol] = ranges
        else:
            self._missing.pop(raw_symbol, None)
