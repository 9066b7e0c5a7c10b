"""Clocks, injected into pure logic so that tests control time. All times are integer ns UTC."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Wall-clock time, integer nanoseconds since the Unix epoch (UTC)."""
        ...


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


class ManualClock:
    """A clock that only moves when told to: for tests and replays."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, now_ns: int) -> None:
        self._now = now_ns

    def advance(self, delta_ns: int) -> None:
        self._now += delta_ns


def receive_time_ns(clock: Clock) -> int:
    """`clock`'s time truncated to whole microseconds: a trade's `ts_recv`. Every store keeps microseconds,
    so a receive time read back after a restart orders trades exactly as it did when they arrived."""
    now = clock.now_ns()
    return now - now % 1000
