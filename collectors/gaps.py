"""Sequence gap tracking per venue symbol: pure, no I/O, no clock.

Venues whose trades carry a contiguous sequence (`Trade.sequence`, Capabilities.sequence CONTIGUOUS) let a
collector prove completeness: a sequence above `last + 1` opens a gap, one at or below `last` is a
duplicate unless it is one of those still missing. State lives as long as the tracker, so it spans
reconnects: the first trade after a reconnect reveals what was lost while disconnected. Each gap keeps
the event times of the trades on either side of it, for venues that repair by time.
"""

from __future__ import annotations

from enum import Enum

from collectors.adapter import Gap
from core.open_gaps import MAX_OPEN_PER_SYMBOL, subtract


class Verdict(Enum):
    """Outcome of observing a sequence number that did not open a gap."""

    NEW = "new"
    FILLED = "filled"  # one of the sequences still missing, arriving live after all
    DUPLICATE = "duplicate"
    RESTARTED = "restarted"  # far below where the symbol was resumed: the venue's sequence started over


NEW = Verdict.NEW
FILLED = Verdict.FILLED
DUPLICATE = Verdict.DUPLICATE
RESTARTED = Verdict.RESTARTED
# A live sequence this far below the resume point is not a replay of recent trades (a subscription
# snapshot repeats at most a few dozen) but a sequence that started over: a venue, or a simulator, reset.
RESTART_DISTANCE = 1000

# A missing range: [first, last, after_ns, before_ns] (a list: its bounds shrink as sequences come in).
_Range = list[int]


class GapTracker:
    """Last sequence number (and its event time) and the ranges still missing, per raw symbol.

    `observe` classifies live sequences; `fill` admits sequences recovered over REST. Missing ranges are
    bounded per symbol (`max_ranges`): the oldest range is evicted first and can be read with
    `drain_evicted`. `resume` seeds a symbol's last sequence (e.g. the last one stored before a restart),
    so that the first live trade reveals what was missed while the collector was away.
    """

    def __init__(self, max_ranges: int = MAX_OPEN_PER_SYMBOL) -> None:
        if max_ranges < 1:
            raise ValueError("max_ranges must be at least 1")
        self._max_ranges = max_ranges
        self._last: dict[str, int] = {}
        self._last_ns: dict[str, int] = {}
        self._missing: dict[str, list[_Range]] = {}
        self._evicted: list[Gap] = []
        self._resumed: set[str] = set()

    def last_sequence(self, raw_symbol: str) -> int | None:
        return self._last.get(raw_symbol)

    def resume(self, raw_symbol: str, sequence: int, ts_event: int = 0) -> None:
        """Continue from `sequence` (seen before, e.g. stored) unless the tracker already knows more."""
        last = self._last.get(raw_symbol)
        if last is None or sequence > last:
            self._last[raw_symbol] = sequence
            self._last_ns[raw_symbol] = ts_event
            self._resumed.add(raw_symbol)

    def observe(self, raw_symbol: str, sequence: int, ts_event: int = 0) -> Verdict | Gap:
        """NEW (publish), FILLED (publish: a missing sequence arriving late, no longer missing), DUPLICATE
        (drop), RESTARTED (publish: the first sequence after a resume lies RESTART_DISTANCE or more below
        the resume point, so tracking starts over from it), or the Gap just opened (repair it, then
        publish)."""
        last = self._last.get(raw_symbol)
        if self._resumed and raw_symbol in self._resumed:
            self._resumed.discard(raw_symbol)
            if last is not None and sequence <= last - RESTART_DISTANCE:
                self._last[raw_symbol] = sequence
                self._last_ns[raw_symbol] = ts_event
                return RESTARTED
        if last is None or sequence == last + 1:
            self._last[raw_symbol] = sequence
            self._last_ns[raw_symbol] = ts_event
            return NEW
        if sequence > last:
            gap = Gap(raw_symbol, last + 1, sequence - 1, self._last_ns.get(raw_symbol, 0), ts_event)
            self._last[raw_symbol] = sequence
            self._last_ns[raw_symbol] = ts_event
            self._add_missing(gap)
            return gap
        return FILLED if self._take(raw_symbol, sequence) else DUPLICATE

    def fill(self, raw_symbol: str, sequence: int, ts_event: int = 0) -> bool:
        """Admit a backfilled sequence: True when it was missing (publish it), False for a duplicate."""
        last = self._last.get(raw_symbol)
        if last is None or sequence > last:
            return self.observe(raw_symbol, sequence, ts_event) is not DUPLICATE
        return self._take(raw_symbol, sequence)

    def forget(self, raw_symbol: str, sequences: list[int], after_ns: int, before_ns: int) -> list[Gap]:
        """Sequences admitted as new but never handed on (they were shed): missing again, to be repaired.
        Consecutive ones make one range, joined to the newest missing range when it ends right before."""
        gaps: list[Gap] = []
        for first, last in _runs(sorted(sequences)):
            ranges = self._missing.get(raw_symbol)
            if ranges and ranges[-1][1] == first - 1:
                ranges[-1][1] = last
                ranges[-1][3] = before_ns
                gaps.append(Gap(raw_symbol, *ranges[-1]))
            else:
                gap = Gap(raw_symbol, first, last, after_ns, before_ns)
                self._add_missing(gap)
                gaps.append(gap)
        return gaps

    def missing(self, raw_symbol: str | None = None) -> list[Gap]:
        """Ranges still missing (for one symbol or all), oldest first per symbol."""
        symbols = [raw_symbol] if raw_symbol is not None else list(self._missing)
        return [Gap(sym, *r) for sym in symbols for r in self._missing.get(sym, ())]

    def missing_count(self) -> int:
        return sum(r[1] - r[0] + 1 for ranges in self._missing.values() for r in ranges)

    def abandon(self, gap: Gap) -> int:
        """Stop waiting for the sequences of `gap`; returns how many were still missing."""
        ranges = self._missing.get(gap.raw_symbol)
        if not ranges:
            return 0
        dropped = 0
        kept: list[_Range] = []
        for lo, hi, after_ns, before_ns in ranges:
            o_lo, o_hi = max(lo, gap.first), min(hi, gap.last)
            if o_lo > o_hi:
                kept.append([lo, hi, after_ns, before_ns])
                continue
            dropped += o_hi - o_lo + 1
            if lo < o_lo:
                kept.append([lo, o_lo - 1, after_ns, before_ns])
            if o_hi < hi:
                kept.append([o_hi + 1, hi, after_ns, before_ns])
        self._store(gap.raw_symbol, kept)
        return dropped

    def reopen(self, gap: Gap) -> bool:
        """A range an earlier run found missing and did not resolve (read back at a start): missing
        again unless it overlaps what is already known missing. False if it was not added."""
        ranges = self._missing.get(gap.raw_symbol, [])
        if any(lo <= gap.last and gap.first <= hi for lo, hi, _, _ in ranges):
            return False
        self._add_missing(gap)
        return True

    def drain_evicted(self) -> list[Gap]:
        """Ranges dropped because a symbol had more than `max_ranges` open; cleared on read."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def _add_missing(self, gap: Gap) -> None:
        ranges = self._missing.setdefault(gap.raw_symbol, [])
        ranges.append([gap.first, gap.last, gap.after_ns, gap.before_ns])
        while len(ranges) > self._max_ranges:
            self._evicted.append(Gap(gap.raw_symbol, *ranges.pop(0)))

    def _take(self, raw_symbol: str, sequence: int) -> bool:
        ranges = self._missing.get(raw_symbol)
        if not ranges:
            return False
        for index, (lo, hi, after_ns, before_ns) in enumerate(ranges):
            if lo <= sequence <= hi:
                pieces = [[a, b, after_ns, before_ns] for a, b in subtract(lo, hi, sequence, sequence)]
                ranges[index : index + 1] = pieces
                self._store(raw_symbol, ranges)
                return True
        return False

    def _store(self, raw_symbol: str, ranges: list[_Range]) -> None:
        if ranges:
            self._missing[raw_symbol] = ranges
        else:
            self._missing.pop(raw_symbol, None)


def _runs(ascending: list[int]) -> list[tuple[int, int]]:
    """[3, 4, 5, 9, 10] -> [(3, 5), (9, 10)]."""
    runs: list[tuple[int, int]] = []
    for value in ascending:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs
