"""The processor service: bus -> store -> bars -> indicators -> store + cache -> acknowledge.

The I/O around the pure pipeline (processor/pipeline.py): reading the bus, storing, retrying, timing,
tracing and reporting (processor/reporting.py); a symbol's first sight is processor/warm_up.py.

Exactly-once by construction:
- the store de-duplicates trades (`insert_trades` returns only the new ones) and only new trades reach the
  bar aggregator, so a redelivered batch or a collector's duplicate never counts twice;
- a delivery is acknowledged only after its trades and the bars they closed are stored, so a crash at any
  point redelivers it;
- after a restart each symbol is warmed up from the store before any new trade is applied: open bars are
  rebuilt from the stored trades after the newest stored bar, indicators from the stored bars.
Outages of the store or the bus are retried with backoff; nothing is acknowledged meanwhile.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import NamedTuple, TypeVar

from loguru import logger

from core.clock import Clock, SystemClock
from core.errors import BusError, CircuitOpenError, PlatformError, RejectedData, StorageError
from core.ports import FeedBoard, MarketCache, MarketStore, TradeBus
from core.timeframes import NS_PER_SECOND
from core.types import Bar, ClosedBar, CoverageEvent, DeadLetter, Delivery, FeedStatus, Trade
from monitoring import tracing
from monitoring.metrics import METRICS, PlatformMetrics
from processor.pipeline import Pipeline, batches, caught_up, live_feeds
from processor.reporting import ProcessorReport, bar_attributes
from processor.warm_up import BOARD_ERRORS, Instruments, WarmUp

T = TypeVar("T")


class ShutdownAbandoned(PlatformError):
    """A dependency stayed down past the stop deadline; unacknowledged work remains on the bus."""


RETRYABLE = (StorageError, CircuitOpenError, BusError)
STORE_AHEAD = 2  # batches being stored while the apply stage works on an earlier one
# Retries are cheap while a circuit is open (refused locally), and each second of delay after a dependency
# returns is a second of market data waiting: keep the ceiling low.
MAX_RETRY_DELAY_S = 2.0
# The board is read at most this often (collectors write it once a second); not on every batch.
FEED_READ_INTERVAL_NS = NS_PER_SECOND // 2
MAX_BAR_EVENTS = 50  # bars named on one processor.store_bars span


class _Stored(NamedTuple):
    """A read's deliveries and, of their trades, those the store did not have before; or one delivery
    of coverage events (stored)."""

    deliveries: Sequence[Delivery]
    new_trades: list[Trade]
    events: Sequence[CoverageEvent] = ()
    read_at: float = 0.0  # a tick (no deliveries): when the read that found the bus empty began


StoredQueue = asyncio.Queue["asyncio.Future[_Stored] | None"]


class ProcessorService:
    """Consumes trades from the bus and produces stored, cached bars with indicators."""

    def __init__(
        self,
        bus: TradeBus,
        store: MarketStore,
        cache: MarketCache,
        *,
        timeframes: Sequence[str],
        grace_ns: int,
        consumer: str = "processor-1",
        read_batch: int = 200,
        store_batch: int = 20_000,
        tick_interval: float = 0.5,
        drain_on_stop: bool = False,
        stop_timeout: float = 6.0,
        max_hold: float = 300.0,
        feeds: FeedBoard | None = None,
        metrics: PlatformMetrics = METRICS,
        clock: Clock | None = None,
    ) -> None:
        self._bus, self._store, self._cache = bus, store, cache
        self._grace_ns = grace_ns
        self._consumer = consumer
        self._read_batch = read_batch
        self._store_batch = store_batch
        self._tick_ms = max(1, int(tick_interval * 1000))
        self._clock = clock or SystemClock()
        self._pipeline = Pipeline(timeframes, grace_ns, max_hold_s=max_hold)
        self._log = logger.bind(component="processor", consumer=consumer)
        self._report = ProcessorReport(metrics, self._log, self._pipeline.quality)
        self._instruments = Instruments(feeds, self._log)
        self._warming = WarmUp(
            store, self._pipeline, feeds_known=feeds is not None, clock=self._clock, log=self._log
        )
        self._feeds = feeds
        self._feed_statuses: list[FeedStatus] = []
        self._feeds_read_at = -FEED_READ_INTERVAL_NS  # clock ns of the last read of the feed board
        # exchanges whose source ended -> when (monotonic): their bars close once a read begun after that
        # finds the bus drained
        self._ended: dict[str, float] = {}
        self._stopping = asyncio.Event()
        self._drain_on_stop = drain_on_stop
        self._stop_timeout = stop_timeout
        self._give_up_at = float("inf")
        self.trades_applied = 0

    def source_ended(self, exchange: str) -> None:
        """The exchange's source has ended and everything it sent is on the bus (a finite replay played
        to its end): once the bus is drained, every open bar of the exchange is closed and stored."""
        self._ended.setdefault(exchange, time.monotonic())

    def stop(self) -> None:
        """Stop reading. The current batch is finished, stored and acknowledged before run() returns; with
        `drain_on_stop` (an in-process bus, which does not survive the process) everything already on the
        bus is processed first. Outages are waited out for at most `stop_timeout` seconds after this."""
        self._give_up_at = time.monotonic() + self._stop_timeout
        self._stopping.set()

    async def run(self) -> None:
        """Warm up the stored symbols, then run the two stages until stopped (see _run_stages)."""
        self._log.info("processor starting: timeframes {}", ",".join(self._pipeline.timeframes))
        try:
            await self._retry("warm_up", self._warm_up_known_symbols)
            await self._run_stages()
        except ShutdownAbandoned as exc:
            self._log.error("stopped with work unacknowledged (it stays on the bus): {}", exc)
        self._log.info("processor stopped after applying {} trades", self.trades_applied)

    async def _run_stages(self) -> None:
        """Two stages, so that the store's work overlaps aggregation: the store stage reads batches and
        starts storing their trades, each on its own pooled connection, and queues them (at most
        STORE_AHEAD waiting, so at most STORE_AHEAD + 2 inserts run at once); the apply stage takes the
        batches in read order, waits for each to be stored, aggregates, stores the bars and acknowledges.
        One task group owns both stages and every insert: a failure of any cancels the others (nothing
        they hold is acknowledged) and is raised."""
        stored: StoredQueue = asyncio.Queue(maxsize=STORE_AHEAD)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._store_stage(stored, group), name="processor-store")
                group.create_task(self._apply_stage(stored), name="processor-apply")
        except BaseExceptionGroup as failed:
            raise _one_failure(failed) from None

    async def _store_stage(self, stored: StoredQueue, group: asyncio.TaskGroup) -> None:
        while True:
            stopping = self._stopping.is_set()
            if stopping and not self._drain_on_stop:
                break
            read_at = time.monotonic()
            deliveries = await self._retry(
                "read",
                self._bus.read,
                self._consumer,
                max_count=self._read_batch,
                block_ms=1 if stopping else self._tick_ms,
            )
            if deliveries:
                for part in batches(deliveries, self._store_batch):
                    trades = [trade for delivery in part for trade in delivery.trades]
                    fresh = self._pipeline.unseen_symbols(trades)
                    if fresh:
                        await stored.join()  # a warm-up reads the store and feeds the aggregator: drain first
                        await self._warm_up_symbols(fresh)
                    insert = group.create_task(self._store_trades(part, trades), name="processor-insert")
                    await stored.put(insert)
            elif stopping:
                break
            else:  # a tick: the apply stage may close bars on the clock
                tick = asyncio.get_running_loop().create_future()
                tick.set_result(_Stored([], [], read_at=read_at))
                await stored.put(tick)
        await stored.put(None)

    async def _apply_stage(self, stored: StoredQueue) -> None:
        while (item := await stored.get()) is not None:
            try:
                await self._apply_stored(await item)
            finally:
                stored.task_done()

    async def process(self, deliveries: Sequence[Delivery]) -> None:
        """Store, aggregate and acknowledge one read's worth of deliveries (both stages, in turn)."""
        for part in batches(deliveries, self._store_batch):
            trades = [trade for delivery in part for trade in delivery.trades]
            await self._warm_up_symbols(self._pipeline.unseen_symbols(trades))
            await self._apply_stored(await self._store_trades(part, trades))

    async def _store_trades(self, deliveries: Sequence[Delivery], trades: list[Trade]) -> _Stored:
        traces = [d.trace for d in deliveries]
        attributes = {"trades": len(trades), "deliveries": len(deliveries)}
        with tracing.continue_traces(traces, "processor.store_trades", attributes) as span:
            events = [event for delivery in deliveries for event in delivery.events]
            if events:
                try:
                    await self._retry("insert_coverage", self._store.insert_coverage, events)
                except RejectedData as exc:
                    await self._set_aside(deliveries[0], [], f"coverage refused: {exc}")
            try:
                new_trades = await self._retry("insert_trades", self._store.insert_trades, trades)
            except RejectedData:
                new_trades = await self._store_each_apart(deliveries, trades)
            if len(new_trades) < len(trades):
                self._report.duplicates(trades, new_trades)
            if span is not None and span.is_recording():
                span.set_attribute("new_trades", len(new_trades))
                self._log.debug("stored {} trades of {} deliveries", len(new_trades), len(deliveries))
            return _Stored(deliveries, new_trades, events)

    async def _store_each_apart(self, deliveries: Sequence[Delivery], trades: list[Trade]) -> list[Trade]:
        """The store refused something in `trades`: halve the batch until each refused trade is alone,
        store all the others, and set the refused ones aside as dead letters (not retried: the same
        data would be refused again). Returns the new trades among those stored, in order."""
        origin = {id(trade): delivery for delivery in deliveries for trade in delivery.trades}
        new: list[Trade] = []
        pending = [trades]
        while pending:
            part = pending.pop(0)
            try:
                new += await self._retry("insert_trades", self._store.insert_trades, part)
            except RejectedData as exc:
                if len(part) > 1:
                    half = len(part) // 2
                    pending[:0] = [part[:half], part[half:]]
                else:
                    await self._set_aside(origin[id(part[0])], part, f"store refused: {exc}")
        return new

    async def _set_aside(self, delivery: Delivery, trades: list[Trade], reason: str) -> None:
        letter = DeadLetter(delivery.stream, delivery.delivery_id, reason[:500], self._clock.now_ns(), trades)
        await self._retry("dead_letter", self._bus.dead_letter, [letter])

    async def _apply_stored(self, stored: _Stored) -> None:
        """Aggregate what was stored, store the bars it closed, acknowledge; then close bars on the clock
        if the bus is caught up."""
        if stored.deliveries:
            traces = [d.trace for d in stored.deliveries]
            attributes = {"trades": len(stored.new_trades), "deliveries": len(stored.deliveries)}
            with tracing.continue_traces(traces, "processor.apply", attributes):
                await self._apply_deliveries(stored)
        if caught_up(stored.deliveries, self._clock.now_ns(), self._grace_ns):
            await self.close_due()
        if self._ended and not stored.deliveries:  # a tick: the bus was drained when its read began
            await self._close_ended(stored.read_at)

    async def _close_ended(self, drained_at: float) -> None:
        """Close the open bars of each exchange whose source ended before the bus was found drained (a
        tick read earlier, still queued behind batches, says nothing about trades published since)."""
        for exchange in sorted(e for e, ended_at in self._ended.items() if ended_at < drained_at):
            del self._ended[exchange]
            bars = self._pipeline.aggregator.close_all(exchange)
            if bars:
                await self._retry("store_bars", self._persist, self._finish(bars))
            self._log.info("source of {} ended: closed its {} open bars", exchange, len(bars))

    async def _apply_deliveries(self, stored: _Stored) -> None:
        trades = stored.new_trades
        applied = self._pipeline.apply(trades)
        self._report.applied(trades, applied)
        self.trades_applied += len(trades)
        closed = self._finish(applied.closed)
        for event in stored.events:
            self._report.coverage(event)
        if stored.events:  # a lifted hold closes its bars at the next trade or tick
            self._pipeline.holds.apply(stored.events, time.monotonic())
        await self._retry("store_bars", self._persist, closed)
        revisions = self._pipeline.take_revisions()
        if revisions:
            self._report.revised(await self._retry("mark_incomplete", self._store.mark_incomplete, revisions))
        await self._retry("ack", self._bus.ack, stored.deliveries)

    async def close_due(self) -> None:
        """Close bars whose end plus grace has passed on the clock (a quiet market), after lifting holds
        that lasted too long."""
        holds = self._pipeline.holds
        self._report.expired(holds.expire(time.monotonic()), holds.max_hold_s)
        now = self._clock.now_ns()
        bars = self._pipeline.aggregator.close_due(now, await self._live_symbols(now))
        if bars:
            await self._retry("store_bars", self._persist, self._finish(bars))
        described = await self._instruments.described_guesses(now)
        if described:  # instruments stored from a guess, described by their collector since
            await self._retry("upsert_symbols", self._store.upsert_symbols, described)

    async def _live_symbols(self, now: int) -> set[tuple[str, str]] | None:
        """The symbols whose feed is live (pipeline.live_feeds): only their bars close on the clock. None
        (no feed board, as in tests of the processor alone): every symbol."""
        if self._feeds is None:
            return None
        if now - self._feeds_read_at >= FEED_READ_INTERVAL_NS:
            try:
                self._feed_statuses = await self._feeds.feeds()
            except BOARD_ERRORS as exc:
                self._log.warning("feed board unreadable, no bar closes on the clock: {}", exc)
                return set()
            self._feeds_read_at = now
        live = live_feeds(self._feed_statuses, now)
        self._pipeline.settle_quiet(live)
        return set(live)

    def _finish(self, bars: Iterable[Bar]) -> list[ClosedBar]:
        """Indicators, features and quality checks on closed bars (in close order). The indicator engine
        and the features are timed per bar, each as one call."""
        finished: list[ClosedBar] = []
        indicator_timer, feature_timer = self._report.indicator_timer, self._report.feature_timer
        studies, clock = self._pipeline.studies, time.perf_counter
        for bar in bars:
            engine, calculator = studies(bar)
            started = clock()
            indicators = engine.update(bar)
            computed = clock()
            features = calculator.update(bar, indicators)
            feature_timer.observe(clock() - computed)
            indicator_timer.observe(computed - started)
            finished.append(ClosedBar(bar=bar, indicators=indicators, features=features))
        if finished:
            self._report.features(len(finished))
            self._report.quality(self._pipeline.check_bars(finished))
        return finished

    async def _persist(self, closed: Sequence[ClosedBar]) -> None:
        if not closed:
            return
        with tracing.trace_operation("processor.store_bars", {"bars": len(closed)}) as span:
            if span is not None and span.is_recording():
                for item in closed[:MAX_BAR_EVENTS]:
                    span.add_event("bar_closed", bar_attributes(item.bar))
                self._log.debug("storing {} closed bars", len(closed))
            await self._store.upsert_bars(closed)
            self._report.stored_bars(closed, self._clock.now_ns())
            for item in closed:
                await self._publish(item)

    async def _publish(self, item: ClosedBar) -> None:
        """Cache and publish a stored bar. Best effort: the bar is already durable in the store."""
        try:
            await self._cache.put_bar(item)
        except (BusError, CircuitOpenError, StorageError, OSError) as exc:
            self._log.warning("could not cache bar: {}", exc, symbol=item.bar.symbol)

    async def _warm_up_known_symbols(self) -> None:
        """Every stored symbol this processor's shard owns: another shard's open bars, rebuilt here, would
        be closed here too and overwrite that shard's complete bars. A stored instrument that its collector
        describes otherwise (a row once written from a guess) is corrected first."""
        stored = await self._store.symbols()
        corrected = await self._instruments.corrected(stored)
        if corrected:
            await self._store.upsert_symbols(corrected)
            self._log.info("instruments corrected as their collectors describe them: {}", len(corrected))
        for info in stored:
            if self._bus.owns(info.exchange, info.symbol):
                await self._warm_up(info.exchange, info.symbol)

    async def _warm_up_symbols(self, fresh: dict[tuple[str, str], Trade]) -> None:
        """Register each new symbol's instrument, as its collector described it, and warm it up."""
        for (exchange, symbol), trade in fresh.items():
            info = await self._instruments.info(exchange, symbol, trade.raw_symbol)
            await self._retry("upsert_symbols", self._store.upsert_symbols, [info])
            await self._warm_up(exchange, symbol)

    async def _warm_up(self, exchange: str, symbol: str) -> None:
        reopened = await self._retry("warm_up", self._warming.symbol, exchange, symbol)
        if reopened:
            await self._retry("store_bars", self._persist, self._finish(reopened))

    async def _retry(
        self, operation: str, fn: Callable[..., Awaitable[T]], *args: object, **kwargs: object
    ) -> T:
        """Run an I/O step until it succeeds: outages are waited out, never skipped."""
        delay = 0.2
        while True:
            try:
                return await fn(*args, **kwargs)
            except RETRYABLE as exc:
                if time.monotonic() > self._give_up_at:
                    raise ShutdownAbandoned(f"{operation} still failing at shutdown: {exc}") from exc
                self._log.warning(
                    "{} failed, retrying in {:.1f}s: {}", operation, delay, exc, operation=operation
                )
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, MAX_RETRY_DELAY_S)


def _one_failure(failed: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure of the stage group as one exception where it is one: a stage that awaited a failed
    insert raises the insert's own exception, and several stages giving up at shutdown is one outcome."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [failed]
    while pending:
        error = pending.pop()
        if isinstance(error, BaseExceptionGroup):
            pending += error.exceptions
        elif all(error is not seen for seen in leaves):
            leaves.append(error)
    if len(leaves) == 1 or all(isinstance(error, ShutdownAbandoned) for error in leaves):
        return leaves[0]
    return failed
