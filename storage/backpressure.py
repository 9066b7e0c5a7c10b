"""What both buses do with a batch being published: wait for room in a bounded holding place (counting
the wait), admit the batch in chunks that fit, and keep trades grouped per symbol in arrival order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from prometheus_client import Counter

from core.types import Trade


class RoomGate:
    """Admits trades while `room()` is positive; publishers wait on `freed()` otherwise. `bus_backpressure`
    (`waits`) counts each publish that had to wait. `check_open()` raises once the holder is closed, so a
    publisher waiting for room is not left waiting forever."""

    def __init__(self, waits: Counter) -> None:
        self._waits = waits
        self._freed = asyncio.Event()

    async def admit(
        self,
        trades: Sequence[Trade],
        *,
        room: Callable[[], int],
        take: Callable[[Sequence[Trade]], None],
        check_open: Callable[[], None],
    ) -> None:
        waited = False
        start = 0
        while start < len(trades):
            check_open()
            space = room()
            if space <= 0:
                if not waited:
                    self._waits.inc()
                    waited = True
                self._freed.clear()
                await self._freed.wait()
                continue
            chunk = trades[start : start + space]
            take(chunk)
            start += len(chunk)

    def freed(self) -> None:
        """Room was made (trades written or acknowledged) or the holder closed: wake waiting publishers."""
        self._freed.set()


def group_by_symbol(trades: Sequence[Trade]) -> dict[tuple[str, str], list[Trade]]:
    """Trades per (exchange, symbol), each list in arrival order. Runs of one symbol are the rule, so
    the dictionary is consulted once per run, not once per trade."""
    groups: dict[tuple[str, str], list[Trade]] = {}
    exchange = symbol = ""
    group: list[Trade] = []
    for t in trades:
        if t.symbol != symbol or t.exchange != exchange:
            exchange, symbol = t.exchange, t.symbol
            group = groups.setdefault((exchange, symbol), [])
        group.append(t)
    return groups
