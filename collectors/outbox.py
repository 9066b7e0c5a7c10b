"""The collector's outbox: what the session hands on (trades and coverage events), in order, bounded,
delivered to the bus by one task of its own, so that reading the websocket never waits on the bus.

When the bus is slow or down, trades wait here, up to `max_trades`; beyond that `put` refuses them and
the caller accounts for them (the session marks them missing, to be repaired over REST once the bus
takes trades again, or records them as unverified). Coverage events are always queued (they are few).
Delivery failures are retried with backoff; once stopping, what the publisher still refuses after a few
bounded attempts ends in `unpublished` (the caller spools it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from loguru import logger

from collectors.session_metrics import PUBLISH_ABANDONED, PUBLISH_FAILED, SessionMetrics
from core.errors import PlatformError
from core.types import BusItem, CoverageEvent, Trade
from monitoring import tracing

MAX_BATCH = 10_000  # trades handed to the publisher in one publish
STOP_ATTEMPTS = 3
STOP_ATTEMPT_TIMEOUT_S = 1.0  # once stopping: a bus waiting for room must not hold the stop


class TradePublisher(Protocol):
    """What the collector hands its trades and coverage events to (core.ports.TradeBus satisfies it).
    Raises a PlatformError (or OSError) when down: the outbox retries those; anything else is a bug and
    stops the collector, with what the outbox held kept for the spool."""

    async def publish(self, trades: Sequence[Trade]) -> None: ...

    async def publish_events(self, events: Sequence[CoverageEvent]) -> None: ...


class Outbox:
    """Trades (at most `max_trades` waiting) and events, delivered in order by `run()`."""

    def __init__(
        self,
        publisher: TradePublisher,
        metrics: SessionMetrics,
        *,
        max_trades: int = 200_000,
        retry_max: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._publisher = publisher
        self._metrics = metrics
        self.max_trades = max_trades
        self._retry_max = retry_max
        self._sleep = sleep
        self._items: deque[BusItem] = deque()
        self._trades = 0
        self._ready = asyncio.Event()
        self._stopping = False
        self._delivering = False
        self._kept: list[BusItem] = []  # refused at stop, or held when run() was cancelled or failed
        self._log = logger.bind(component="collector", exchange=metrics.exchange)

    @property
    def unpublished(self) -> list[BusItem]:
        """Once run() ended: what the publisher did not take, in order (for the spool), including what was
        put after run() ended."""
        return [*self._kept, *self._items]

    @property
    def waiting(self) -> int:
        """Trades queued and not yet taken by the publisher."""
        return self._trades

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being delivered: everything put so far is on the publisher."""
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
        """Deliver queued items in order until stopped and empty (or the publisher refuses at stop). If
        this is cancelled or fails, what it held (the item in flight included) ends in `unpublished`."""
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
                delivered = await self._deliver_item(item)
            except BaseException:  # cancelled at the stop deadline, or a bug: kept for the spool, not lost
                self._keep(item)
                raise
            finally:
                self._delivering = False
            if not delivered:
                self._keep(item)
                return

    async def _deliver_item(self, item: BusItem) -> bool:
        if item.trace and tracing.ENABLED:
            return await self._deliver_traced(item)
        return await self._deliver(item)

    def _keep(self, item: BusItem) -> None:
        """`item` and everything queued after it go to `unpublished`, in order."""
        self._kept += [item, *self._items]
        self._items.clear()
        self._trades = 0

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
        """Publish until the publisher takes it (True); False only when stopping and it still refuses."""
        delay, failures = 0.05, 0
        while True:
            try:
                await self._send(item)
            except (PlatformError, OSError) as exc:  # the bus is down or slow (TimeoutError is an OSError)
                failures += 1
                self._failed(item, failures, exc)
                if self._stopping and failures >= STOP_ATTEMPTS:
                    self._abandon(item)
                    return False
                await self._sleep(min(delay, 0.1) if self._stopping else delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if item.trades:
                self._metrics.published(item.trades)
            return True

    async def _send(self, item: BusItem) -> None:
        send = (
            self._publisher.publish(item.trades)
            if item.trades
            else self._publisher.publish_events(item.events)
        )
        # once stopping, a bus waiting for room must not hold the stop
        await (asyncio.wait_for(send, STOP_ATTEMPT_TIMEOUT_S) if self._stopping else send)

    def _failed(self, item: BusItem, failures: int, exc: Exception) -> None:
        self._metrics.error(PUBLISH_FAILED)
        if self._metrics.should_log(PUBLISH_FAILED):
            self._log.warning("publish of {} failed ({}x): {!r}", _what(item), failures, exc)

    def _abandon(self, item: BusItem) -> None:
        self._metrics.error(PUBLISH_ABANDONED)
        self._log.error("stopping: {} and what follows not published, kept for the spool", _what(item))


def _what(item: BusItem) -> str:
    return f"{len(item.trades)} trades" if item.trades else f"{len(item.events)} events"
