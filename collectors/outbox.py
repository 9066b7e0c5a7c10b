"""The collector's outbox: what the session hands on (trades and coverage events), in order, bounded,
delivered to the bus by one task of its own, so that reading the websocket never waits on the bus.

When the bus is slow or down, trades wait here, up to `max_trades`; beyond that `put` refuses them and
the caller accounts for them (the session marks them missing, to be repaired over REST once the bus
takes trades again, or records them as unverified). Coverage events are always queued (they are few).
Delivery failures are retried with backoff; once stopping, what the sink still refuses after a few
bounded attempts ends in `unpublished` (the caller spools it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from loguru import logger

from collectors.session_metrics import PUBLISH_ABANDONED, PUBLISH_FAILED, SessionMetrics
from core.types import BusItem, CoverageEvent, Trade
from monitoring import tracing

MAX_BATCH = 10_000  # trades handed to the sink in one publish
STOP_ATTEMPTS = 3
STOP_ATTEMPT_TIMEOUT_S = 1.0  # once stopping: a bus waiting for room must not hold the stop


class TradeSink(Protocol):
    """Where trades and coverage events go (core.ports.TradeBus satisfies it). May raise when down; it
    is retried."""

    async def publish(self, trades: Sequence[Trade]) -> None: ...

    async def publish_events(self, events: Sequence[CoverageEvent]) -> None: ...


class Outbox:
    """Trades (at most `max_trades` waiting) and events, delivered in order by `run()`."""

    def __init__(
        self,
        sink: TradeSink,
        metrics: SessionMetrics,
        *,
        max_trades: int = 200_000,
        retry_max: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self.max_trades = max_trades
        self._retry_max = retry_max
        self._sleep = sleep
        self._items: deque[BusItem] = deque()
        self._trades = 0
        self._ready = asyncio.Event()
        self._stopping = False
        self._delivering = False
        self.unpublished: list[BusItem] = []
        self._log = logger.bind(component="collector", exchange=metrics.exchange)

    @property
    def waiting(self) -> int:
        """Trades queued and not yet taken by the sink."""
        return self._trades

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being delivered: everything put so far is on the sink."""
        return not self._items and not self._delivering

    def put(self, trades: list[Trade]) -> list[Trade]:
        """Queue trades in order; returns those beyond the bound, which are not queued."""
        room = self.max_trades - self._trades
        if room <= 0:
            return trades
        taken, refused = (trades, []) if room >= len(trades) else (trades[:room], trades[room:])
        if taken:
            trace = tracing.current_traceparent() if tracing.ENABLED else ""
            self._items.append(BusItem(trades=taken, trace=trace))
            self._trades += len(taken)
            self._ready.set()
        return refused

    def put_events(self, events: list[CoverageEvent]) -> None:
        if events:
            self._items.append(BusItem(events=events))
            self._ready.set()

    def stop(self) -> None:
        """Deliver what is queued (bounded attempts), then let run() return."""
        self._stopping = True
        self._ready.set()

    async def run(self) -> None:
        """Deliver queued items in order until stopped and empty (or the sink refuses at stop)."""
        while True:
            if not self._items:
                if self._stopping:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            item = self._next_batch()
            self._delivering = True
            try:
                if item.trace and tracing.ENABLED:
                    delivered = await self._deliver_traced(item)
                else:
                    delivered = await self._deliver(item)
            finally:
                self._delivering = False
            if not delivered:
                self.unpublished += [item, *self._items]
                self._items.clear()
                self._trades = 0
                return

    def _next_batch(self) -> BusItem:
        """The next item; consecutive trade items are merged (up to MAX_BATCH) into one publish, which
        carries on the trace of the first that has one."""
        item = self._items.popleft()
        if item.trades:
            trades = list(item.trades)
            trace = item.trace
            while self._items and self._items[0].trades and len(trades) < MAX_BATCH:
                merged = self._items.popleft()
                trades += merged.trades
                trace = trace or merged.trace
            self._trades -= len(trades)
            return BusItem(trades=trades, trace=trace)
        return item

    async def _deliver_traced(self, item: BusItem) -> bool:
        """`_deliver` in a span continuing the trace of the batch the trades came in with; the bus
        carries this span's context on its entries."""
        attributes = {"trades": len(item.trades), "exchange": self._metrics.exchange}
        with tracing.continue_trace(item.trace, "collector.publish", attributes):
            return await self._deliver(item)

    async def _deliver(self, item: BusItem) -> bool:
        """Publish until the sink takes it (True); False only when stopping and it still refuses."""
        delay, failures = 0.05, 0
        while True:
            try:
                send = (
                    self._sink.publish(item.trades) if item.trades else self._sink.publish_events(item.events)
                )
                await (asyncio.wait_for(send, STOP_ATTEMPT_TIMEOUT_S) if self._stopping else send)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                # The outbox holds the only copy of these trades and the sink may be any TradeBus (Redis,
                # in-process, a test double): whatever it raises is counted, logged (rate limited) and
                # retried with backoff; dropping trades is not an option. CancelledError is re-raised above.
                failures += 1
                self._metrics.error(PUBLISH_FAILED)
                what = f"{len(item.trades)} trades" if item.trades else f"{len(item.events)} events"
                if self._metrics.should_log(PUBLISH_FAILED):
                    self._log.warning("publish of {} failed ({}x): {!r}", what, failures, exc)
                if self._stopping and failures >= STOP_ATTEMPTS:
                    self._metrics.error(PUBLISH_ABANDONED)
                    self._log.error("stopping: {} and what follows not published, kept for the spool", what)
                    return False
                await self._sleep(min(delay, 0.1) if self._stopping else delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if item.trades:
                self._metrics.published(item.trades)
            return True
