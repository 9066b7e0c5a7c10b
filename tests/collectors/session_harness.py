"""What the session tests share: a recording sink, waiting helpers, and completeness against a simulated
venue's own history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from collectors.session import CollectorSession
from core.errors import BusError
from core.types import CoverageEvent, Trade
from monitoring.metrics import PlatformMetrics
from simulator.exchange import SimulatedExchange


class RecordingSink:
    """The test's observer: records what the session published; can refuse the first `fail` calls."""

    def __init__(self, fail: int = 0) -> None:
        self.trades: list[Trade] = []
        self.events: list[CoverageEvent] = []
        self.order: list[Trade | CoverageEvent] = []
        self.calls = 0
        self.fail = fail

    async def publish(self, trades: Sequence[Trade]) -> None:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise BusError("bus is down")
        self.trades.extend(trades)
        self.order.extend(trades)

    async def publish_events(self, events: Sequence[CoverageEvent]) -> None:
        self.events.extend(events)
        self.order.extend(events)

    def ids(self, symbol: str) -> list[int]:
        return [t.sequence for t in self.trades if t.raw_symbol == symbol]  # type: ignore[misc]


class StallingSink(RecordingSink):
    """A bus that takes nothing while `open` is clear (a Redis outage, an overloaded bus)."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.open.set()

    async def publish(self, trades: Sequence[Trade]) -> None:
        await self.open.wait()
        await super().publish(trades)

    async def publish_events(self, events: Sequence[CoverageEvent]) -> None:
        await self.open.wait()
        await super().publish_events(events)


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def assert_complete(sink: RecordingSink, sim: SimulatedExchange, symbol: str) -> None:
    """Every id the venue made between the first and the last one published was published once, with the
    exact price string, its id text the venue's own."""
    ids = sink.ids(symbol)
    assert ids, f"nothing published for {symbol}"
    assert len(ids) == len(set(ids)), "duplicates published"
    history = {t.trade_id: t for t in sim.history(symbol)}
    expected = [i for i in sorted(history) if min(ids) <= i <= max(ids)]
    assert sorted(ids) == expected, f"missing ids: {sorted(set(expected) - set(ids))[:10]}"
    for trade in sink.trades:
        if trade.raw_symbol == symbol:
            assert trade.price == history[trade.sequence].price  # type: ignore[index]
            assert trade.trade_id == str(trade.sequence)


class Sample:
    """Metric values of one venue's collector (exchange label fixed)."""

    def __init__(self, metrics: PlatformMetrics, exchange: str) -> None:
        self._metrics, self._exchange = metrics, exchange

    def __call__(self, name: str, **labels: str) -> float:
        return self._metrics.registry.get_sample_value(name, {"exchange": self._exchange, **labels}) or 0.0


class Running:
    def __init__(self, session: CollectorSession, task: asyncio.Task[None]) -> None:
        self.session, self.task = session, task

    async def stop(self) -> float:
        started = time.monotonic()
        self.session.stop()
        await asyncio.wait_for(self.task, 5.0)
        return time.monotonic() - started
